"""One request's raw observations and the figures derived from them.

The client stamps `time.perf_counter_ns()` when bytes arrive, before any parsing; everything else
(TTFT, inter-token latency, tokens/s) is arithmetic on those stamps, done here and only here, so
the definitions are in one place:

- `ttft_ms`: request sent -> first chunk that carries content (or a tool-call delta). "Sent" is
  when the request starts going out on the wire (httpcore's trace hook), so time spent queueing
  inside the client (`client_queue_ms`, kept apart) is not counted against the server.
- `e2e_ms`: request sent -> last byte of the response.
- inter-token latency: gaps between consecutive content chunks (p50/p95 over this request).
- `gen_tps`: output tokens after the first, divided by the time from first to last content chunk
  (the generation phase; prompt processing is excluded). Non-streamed: output tokens / e2e.
- `prompt_tps`: prompt tokens the server actually processed / TTFT (prompt processing speed;
  streamed requests only). Tokens served from the server's prompt cache are not processed: the
  processed count is llama.cpp's `timings.prompt_n`, else `usage.prompt_tokens` minus
  `usage.prompt_tokens_details.cached_tokens`, else `usage.prompt_tokens`.
- `max_gap_ms`: the longest silence between two content chunks of a stream (a stall shows here,
  while the inter-token percentiles of a long answer barely move).
- `server_prompt_tps` / `server_gen_tps`: the server's own measurement (llama.cpp's `timings`
  `prompt_per_second` / `predicted_per_second`), a second opinion; None when the server does not say.

Token counts come from the server's `usage` when it sends one (`token_source="usage"`); otherwise
output tokens are the number of content chunks (`"chunks"`), prompt tokens stay unknown (None).
A `usage` with impossible counts is not believed (`usage_problem`): a negative or non-integer count,
`cached_tokens` above `prompt_tokens`, or more completion tokens than the answer could hold. The
whole object is dropped (a server that miscounts one figure is not trusted with the others) and the
source says why: `"chunks (usage rejected: negative completion_tokens)"` on a stream, `"unknown
(usage rejected: ...)"` on a whole answer, which has no chunks to count (values in log/events.py).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from soaktui.stats import percentile

MAX_CONTENT_CHARS = 2_000_000  # bounded: a runaway answer cannot eat the engine's memory

# A streamed chunk may carry a few tokens (servers batch under load), and a count may include a few
# tokens that show no text (end of turn, tool-call markers): beyond this, the count is impossible.
TOKENS_PER_CHUNK = 4
TOKENS_SLACK = 16


def _count(value: object) -> int | None | str:
    """A usage count as an int, None when absent, or what is wrong with it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "non-integer"
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and infinities
            return "non-integer"
        value = int(value)
    return value if value >= 0 else "negative"


def usage_counts(usage: dict[str, Any]) -> tuple[int | None, int | None, int | None] | str:
    """(prompt, completion, cached prompt) tokens of a `usage` object, or why it is impossible."""
    details = usage.get("prompt_tokens_details")  # llama.cpp, vLLM (--enable-prompt-tokens-details)
    fields = {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cached_tokens": details.get("cached_tokens") if isinstance(details, dict) else None,
    }
    counts: dict[str, int | None] = {}
    for name, raw in fields.items():
        n = _count(raw)
        if isinstance(n, str):
            return f"{n} {name}"
        counts[name] = n
    prompt, completion, cached = counts.values()
    if cached is not None and prompt is not None and cached > prompt:
        return "cached_tokens above prompt_tokens"
    return prompt, completion, cached


def completion_limit(chunks: int | None, text_chars: int) -> int:
    """The most completion tokens an answer can hold. Streamed (`chunks` counted): a few tokens a
    chunk, or a token a character when a server sends long pieces at once (a whole tool call).
    Whole: a token is at least one byte and a character at most four."""
    if chunks is not None:
        return max(TOKENS_PER_CHUNK * chunks, text_chars) + TOKENS_SLACK
    return 4 * text_chars + TOKENS_SLACK



_TIMING_KEYS = (
    "prompt_n",
    "cache_n",
    "prompt_ms",
    "prompt_per_second",
    "predicted_n",
    "predicted_ms",
    "predicted_per_second",
)


def server_timings(raw: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite, non-negative fields of llama.cpp's `timings` object that soaktui reads."""
    out: dict[str, float] = {}
    for key in _TIMING_KEYS:
        v = raw.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and v == v and v != float("inf"):
            out[key] = v
    return out


def _ms(a: int | None, b: int | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a) / 1e6, 3)


@dataclass
class RequestResult:
    """Raw observations of one chat request (filled by the client), plus derived figures."""

    model: str
    stream: bool
    ok: bool = False
    error_class: str | None = None
    error: str | None = None  # one line, human readable
    http_status: int | None = None
    body_excerpt: str | None = None  # bounded excerpt of an error body
    submit_ns: int | None = None  # handed to the HTTP client
    sent_ns: int | None = None  # the request started going out on the wire (httpcore trace)
    first_byte_ns: int | None = None  # first body byte received
    first_token_ns: int | None = None  # first content (or tool-call) chunk received
    last_token_ns: int | None = None  # last content chunk received
    end_ns: int | None = None  # response complete (or failure observed)
    last_byte_ns: int | None = None  # the newest body bytes so far (live: how long a request has been silent)
    token_ns: array = field(default_factory=lambda: array("q"))  # arrival of each content chunk
    content: str = ""
    reasoning: str = ""  # reasoning_content, when the server separates it
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # merged native tool calls
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    token_source: str | None = None  # "usage" | "chunks" | None, or a rejection (see the docstring)
    chunks: int = 0  # content-bearing chunks
    events: int = 0  # SSE data events seen
    response_id: str | None = None
    max_tokens: int | None = None
    content_truncated: bool = False  # we stopped keeping content at MAX_CONTENT_CHARS
    cached_prompt_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    server_timings: dict[str, float] | None = None  # llama.cpp `timings` (see server_timings())
    cold: bool = False  # set by the scenario layer: this request waited for its model to load
    connection_retries: int = 0  # sent again once: a pooled connection the server had closed
    read_timeout_s: float | None = None  # this request's silence limit when not the client's default

    # -- derived -------------------------------------------------------------------------------
    @property
    def ttft_ms(self) -> float | None:
        return _ms(self.sent_ns, self.first_token_ns) if self.stream else None

    @property
    def client_queue_ms(self) -> float | None:
        """Time inside the client before the request went out (connection pool, loop scheduling)."""
        return _ms(self.submit_ns, self.sent_ns)

    @property
    def first_byte_ms(self) -> float | None:
        return _ms(self.sent_ns, self.first_byte_ns)

    @property
    def e2e_ms(self) -> float | None:
        return _ms(self.sent_ns, self.end_ns)

    def itl_ms(self) -> list[float]:
        t = self.token_ns
        return [(t[i] - t[i - 1]) / 1e6 for i in range(1, len(t))]

    def itl_percentiles(self) -> tuple[float | None, float | None]:
        gaps = sorted(self.itl_ms())
        p50 = percentile(gaps, 50)
        p95 = percentile(gaps, 95)
        return (None if p50 is None else round(p50, 3), None if p95 is None else round(p95, 3))

    @property
    def gen_tps(self) -> float | None:
        if not self.output_tokens:
            return None
        if self.stream:
            if self.output_tokens < 2 or self.first_token_ns is None or self.last_token_ns is None:
                return None
            dt = (self.last_token_ns - self.first_token_ns) / 1e9
            return round((self.output_tokens - 1) / dt, 3) if dt > 0 else None
        e2e = self.e2e_ms
        return round(self.output_tokens / (e2e / 1e3), 3) if e2e else None

    @property
    def max_gap_ms(self) -> float | None:
        """Longest silence between consecutive content chunks; None with fewer than two."""
        t = self.token_ns
        if len(t) < 2:
            return None
        return round(max(t[i] - t[i - 1] for i in range(1, len(t))) / 1e6, 3)

    @property
    def prompt_tokens_processed(self) -> int | None:
        """Prompt tokens the server evaluated for this request (cache hits left out)."""
        timings = self.server_timings or {}
        n = timings.get("prompt_n")
        if n is not None:
            return int(n)
        if self.prompt_tokens is None:
            return None
        if self.cached_prompt_tokens is not None:
            return max(0, self.prompt_tokens - self.cached_prompt_tokens)
        return self.prompt_tokens

    @property
    def prompt_tps(self) -> float | None:
        ttft = self.ttft_ms
        processed = self.prompt_tokens_processed
        if not processed or not ttft:
            return None
        return round(processed / (ttft / 1e3), 3)

    @property
    def server_prompt_tps(self) -> float | None:
        v = (self.server_timings or {}).get("prompt_per_second")
        return round(v, 3) if v else None

    @property
    def server_gen_tps(self) -> float | None:
        v = (self.server_timings or {}).get("predicted_per_second")
        return round(v, 3) if v else None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def event_fields(self) -> dict[str, Any]:
        """The `request` event fields this result contributes (see docs/events.md)."""
        p50, p95 = self.itl_percentiles()
        return {
            "model": self.model,
            "stream": self.stream,
            "ok": self.ok,
            "error_class": self.error_class,
            "error": self.error,
            "http_status": self.http_status,
            "body_excerpt": self.body_excerpt,
            "ttft_ms": self.ttft_ms,
            "first_byte_ms": self.first_byte_ms,
            "e2e_ms": self.e2e_ms,
            "itl_p50_ms": p50,
            "itl_p95_ms": p95,
            "gen_tps": self.gen_tps,
            "prompt_tps": self.prompt_tps,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "token_source": self.token_source,
            "chunks": self.chunks,
            "finish_reason": self.finish_reason,
            "truncated": self.truncated,
            "max_tokens": self.max_tokens,
            "response_id": self.response_id,
            "tool_calls": len(self.tool_calls),
            "content_chars": len(self.content),
            "sent_mono_ns": self.sent_ns,
            "client_queue_ms": self.client_queue_ms,
            "max_gap_ms": self.max_gap_ms,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "server_prompt_tps": self.server_prompt_tps,
            "server_gen_tps": self.server_gen_tps,
            "connection_retries": self.connection_retries,
            "read_timeout_s": self.read_timeout_s,
        }
