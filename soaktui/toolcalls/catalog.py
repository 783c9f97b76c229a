"""The tools the tool-calling scenario offers a model, in OpenAI's function format.

They are the kind of tools people wire local models to (metrics, host status, weather, logs,
tickets, a database, notifications, time, maintenance windows, currency), with real JSON Schemas:
types, enums, patterns, bounds, required arguments and `additionalProperties: false`, so a call
can be judged the way the Berkeley Function Calling Leaderboard judges it: does it validate, and
are its values the accepted ones. Nothing here runs: a tool's result is data the prompt bank
supplies (prompts/tools/*.jsonl).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

HOST_PATTERN = "^[a-z][a-z0-9]*-[0-9]{2,3}$"
TIMEZONE_PATTERN = "^(?:UTC|[A-Z][A-Za-z_]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?)$"
RECIPIENT_PATTERN = "^(?:#[a-z0-9._-]+|@[a-z0-9._-]+|[^@\\s]+@[^@\\s]+\\.[a-z]{2,}|\\+[0-9]{7,15})$"
SQL_PATTERN = "^\\s*(?:[Ss][Ee][Ll][Ee][Cc][Tt]|[Ww][Ii][Tt][Hh])\\s"
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK"]


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


TOOLS: list[dict[str, Any]] = [
    _tool(
        "calculate_metrics",
        "Calculate summary statistics (mean, median, percentiles, min, max, sum, standard deviation) "
        "over a list of numbers such as latencies or error counts.",
        {
            "values": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 1,
                "description": "The numbers to summarise, in the order given.",
            },
            "metrics": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["mean", "median", "p95", "p99", "min", "max", "sum", "stddev"],
                },
                "minItems": 1,
                "uniqueItems": True,
                "description": "Which statistics to compute.",
            },
            "unit": {"type": "string", "description": "Unit of the values (e.g. ms), used as a label."},
        },
        ["values", "metrics"],
    ),
    _tool(
        "get_system_status",
        "Get live readings of a host: CPU usage, memory usage, disk usage, load average or uptime.",
        {
            "host": {
                "type": "string",
                "pattern": HOST_PATTERN,
                "description": "Host name, such as web-01 or db-02.",
            },
            "metric": {
                "type": "string",
                "enum": ["cpu", "memory", "disk", "load", "uptime", "all"],
                "default": "all",
                "description": "Which reading to return; all returns every reading.",
            },
        },
        ["host"],
    ),
    _tool(
        "get_weather",
        "Get the current weather and today's forecast (temperature, rain, wind) for a city.",
        {
            "city": {"type": "string", "minLength": 1, "description": "City name, e.g. Paris."},
            "country_code": {
                "type": "string",
                "pattern": "^[A-Z]{2}$",
                "description": "ISO 3166-1 alpha-2 country code, e.g. FR.",
            },
            "units": {
                "type": "string",
                "enum": ["metric", "imperial"],
                "default": "metric",
                "description": "metric (Celsius, km/h) or imperial (Fahrenheit, mph).",
            },
        },
        ["city"],
    ),
    _tool(
        "search_logs",
        "Search application logs for lines containing a text, optionally filtered by service, "
        "level and a look-back window.",
        {
            "query": {"type": "string", "minLength": 1, "description": "Text to search for."},
            "service": {
                "type": "string",
                "enum": ["api-gateway", "auth", "billing", "checkout", "payments", "worker"],
                "description": "Only this service's logs.",
            },
            "level": {
                "type": "string",
                "enum": ["debug", "info", "warning", "error", "critical"],
                "description": "Only lines at this level.",
            },
            "since_minutes": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10080,
                "description": "Only lines from the last N minutes.",
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "default": 100,
                "description": "Maximum number of lines to return.",
            },
        },
        ["query"],
    ),
    _tool(
        "create_ticket",
        "Create an incident or task ticket in the issue tracker.",
        {
            "title": {"type": "string", "minLength": 3, "maxLength": 120, "description": "One-line summary."},
            "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
            "team": {
                "type": "string",
                "enum": ["platform", "database", "network", "security", "frontend", "payments"],
                "description": "The team that owns the ticket.",
            },
            "description": {"type": "string", "description": "Details for whoever picks it up."},
        },
        ["title", "priority"],
    ),
    _tool(
        "query_database",
        "Run a read-only SQL query against one of the company databases and return the rows.",
        {
            "database": {"type": "string", "enum": ["orders", "users", "inventory", "analytics"]},
            "sql": {
                "type": "string",
                "pattern": SQL_PATTERN,
                "description": "One read-only SELECT statement.",
            },
            "max_rows": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10000,
                "description": "Return at most this many rows.",
            },
        },
        ["database", "sql"],
    ),
    _tool(
        "send_notification",
        "Send a message to a person or team by email, Slack, SMS or PagerDuty.",
        {
            "channel": {"type": "string", "enum": ["email", "slack", "sms", "pagerduty"]},
            "recipient": {
                "type": "string",
                "pattern": RECIPIENT_PATTERN,
                "description": "An email address, a Slack channel (#name) or user (@name), or a phone "
                "number in international format (+4915112345678).",
            },
            "message": {"type": "string", "minLength": 1, "description": "The text to send."},
            "urgent": {"type": "boolean", "default": False, "description": "Page or flag it as urgent."},
        },
        ["channel", "recipient", "message"],
    ),
    _tool(
        "get_current_time",
        "Get the current date and clock time in a time zone.",
        {
            "timezone": {
                "type": "string",
                "pattern": TIMEZONE_PATTERN,
                "description": "IANA time zone name such as Europe/Berlin, or UTC.",
            },
            "format": {
                "type": "string",
                "enum": ["iso8601", "unix", "human"],
                "default": "iso8601",
                "description": "How to write the answer.",
            },
        },
        ["timezone"],
    ),
    _tool(
        "schedule_maintenance",
        "Schedule a maintenance window for a host; the host is drained before the window starts.",
        {
            "host": {"type": "string", "pattern": HOST_PATTERN, "description": "Host name, such as db-02."},
            "start_time": {
                "type": "string",
                "format": "date-time",
                "description": "Start of the window as an ISO 8601 date and time, UTC.",
            },
            "duration_minutes": {
                "type": "integer",
                "minimum": 5,
                "maximum": 1440,
                "description": "Length of the window in minutes.",
            },
            "reason": {"type": "string", "description": "Why the window is needed."},
        },
        ["host", "start_time", "duration_minutes"],
    ),
    _tool(
        "convert_currency",
        "Convert an amount of money from one currency to another at today's exchange rate.",
        {
            "amount": {"type": "number", "exclusiveMinimum": 0, "description": "The amount to convert."},
            "from_currency": {"type": "string", "enum": CURRENCIES, "description": "Currency of the amount."},
            "to_currency": {"type": "string", "enum": CURRENCIES, "description": "Currency wanted."},
        },
        ["amount", "from_currency", "to_currency"],
    ),
]

_BY_NAME = {t["function"]["name"]: t for t in TOOLS}
TOOL_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def tool(name: str) -> dict[str, Any]:
    """The tool definition named `name` (KeyError if there is none). Do not mutate it."""
    return _BY_NAME[name]


def parameters(name: str) -> dict[str, Any]:
    """The JSON Schema of `name`'s arguments."""
    return _BY_NAME[name]["function"]["parameters"]


def tools(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Fresh copies of the tool definitions to send (all, or the named ones in catalog order)."""
    wanted = None if names is None else set(names)
    return [copy.deepcopy(t) for t in TOOLS if wanted is None or t["function"]["name"] in wanted]
