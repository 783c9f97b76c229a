"""Structured-output tasks as data: a prompt and the JSON Schema its answer must match.

The tasks live in `prompts/structured/*.jsonl` (shipped inside the package), one JSON object a line
(lines starting with `//` are comments): `id` (also sent as the `json_schema` name, so letters,
digits, `_` and `-` only), `name`, `prompt` and `schema`. Each schema is checked against its JSON
Schema metaschema when loaded, and its validator is built once here. A bad line is a SetupError
naming its file and line, never skipped: a soak must not run for hours on a task that cannot score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from soaktui.datafiles import require, unique_entries
from soaktui.errors import SetupError
from soaktui.locations import package_data_dir

SUBDIR = "structured"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Formats jsonschema checks only with optional packages installed; the shipped schemas use them.
FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if "T" not in value.upper():
        raise ValueError("no time part")
    datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    return True


@dataclass(frozen=True)
class SchemaTask:
    id: str
    name: str
    prompt: str
    schema: dict[str, Any]
    validator: Any = field(compare=False, repr=False)  # a jsonschema validator of `schema`


def _parse(d: dict[str, Any], where: str) -> SchemaTask:
    require(d, ("id", "name", "prompt", "schema"), where)
    if not isinstance(d["id"], str) or not _ID.fullmatch(d["id"]):
        raise SetupError(f"{where}: id must be 1-64 letters, digits, '_' or '-', got {d['id']!r}")
    for key in ("name", "prompt"):
        if not isinstance(d[key], str) or not d[key].strip():
            raise SetupError(f"{where}: {key} must be a non-empty string")
    schema = d["schema"]
    if not isinstance(schema, dict) or schema.get("type") not in ("object", "array"):
        raise SetupError(f"{where}: schema must be a JSON Schema object whose type is object or array")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.path) or "(root)"
        raise SetupError(f"{where}: invalid JSON Schema at {at}: {exc.message}") from None
    return SchemaTask(
        d["id"], d["name"].strip(), d["prompt"].strip(), schema, cls(schema, format_checker=FORMAT_CHECKER)
    )


def load_tasks(dirs: list[Path] | None = None) -> list[SchemaTask]:
    """Every task in `dirs` (default: the shipped prompts/structured); ids unique across them."""
    if dirs is None:
        dirs = [package_data_dir("prompts") / SUBDIR]
    tasks = unique_entries(dirs, _parse, "task")
    if not tasks:
        raise SetupError(f"no structured-output tasks in {', '.join(str(d) for d in dirs)}")
    return tasks


@lru_cache(maxsize=1)
def shipped_tasks() -> tuple[SchemaTask, ...]:
    """The tasks soaktui ships, loaded and their schemas checked once per process."""
    return tuple(load_tasks())
