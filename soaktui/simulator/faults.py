"""Fault injection for the simulator: which request fails, how, and where in the stream.

soaktui's worth is in how it classifies failures, so the simulator must produce each failure on
demand and reproducibly. A `FaultPlan` holds probabilities per fault kind and "every Nth request"
rules; `decide` turns a plan (global and per-model) into at most one fault for a request. Draws
come from a `random.Random` seeded with the run seed, the model and that model's own request number,
never from the wall clock or the server-wide count, so the same seed gives each model the same
faults however its requests interleave with other models'.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

HTTP_429 = "http_429"
HTTP_500 = "http_500"
HTTP_503 = "http_503"
DROP = "drop"  # the connection is closed mid-stream, after some tokens
STALL = "stall"  # no bytes for `stall_s` seconds mid-stream, then the stream goes on
MALFORMED = "malformed"  # one invalid JSON chunk in the stream (non-stream: a truncated body)
STREAM_ERROR = "stream_error"  # an error object inside the stream (non-stream: an HTTP 500)

FAULT_KINDS = (HTTP_429, HTTP_500, HTTP_503, DROP, STALL, MALFORMED, STREAM_ERROR)
HTTP_FAULTS = {HTTP_429: 429, HTTP_500: 500, HTTP_503: 503}
MID_STREAM = frozenset({DROP, STALL, MALFORMED, STREAM_ERROR})

_ALIASES = {"429": HTTP_429, "500": HTTP_500, "503": HTTP_503, "error": STREAM_ERROR}


def canonical_kind(name: str) -> str:
    """The fault kind for `name` (accepts `429` for `http_429`); ValueError if unknown."""
    kind = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {name!r} (known: {', '.join(FAULT_KINDS)})")
    return kind


@dataclass(frozen=True)
class FaultPlan:
    """Fault rates and rules for a server or for one persona.

    rates: kind -> probability per request (0..1).
    every: kind -> N, the fault hits every Nth request (counted per plan owner: all chat requests for
        the global plan, the persona's own requests for a persona plan).
    stall_s: length of a stall in real seconds (not divided by the speed factor: a stall exists to
        outlast a client's read timeout).
    after_tokens: how many content tokens go out before a mid-stream fault; None draws it.
    """

    rates: dict[str, float] = field(default_factory=dict)
    every: dict[str, int] = field(default_factory=dict)
    stall_s: float = 5.0
    after_tokens: int | None = None

    def __post_init__(self) -> None:
        rates = {canonical_kind(k): float(v) for k, v in self.rates.items()}
        every = {canonical_kind(k): int(v) for k, v in self.every.items()}
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate for {kind} must be between 0 and 1, got {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        for kind, n in every.items():
            if n < 1:
                raise ValueError(f"fault every-N for {kind} must be at least 1, got {n}")
        if self.stall_s < 0:
            raise ValueError("stall seconds must not be negative")
        if self.after_tokens is not None and self.after_tokens < 0:
            raise ValueError("after_tokens must not be negative")
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "every", every)

    @property
    def empty(self) -> bool:
        return not any(self.rates.values()) and not self.every


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request."""

    kind: str
    stall_s: float
    after_tokens: int | None  # None: draw a position when the length of the answer is known

    @property
    def http_status(self) -> int | None:
        return HTTP_FAULTS.get(self.kind)

    def position(self, rng: random.Random, n_tokens: int) -> int:
        """After how many content tokens a mid-stream fault strikes (at least one when possible)."""
        if self.after_tokens is not None:
            return min(self.after_tokens, n_tokens)
        if n_tokens <= 1:
            return n_tokens
        return rng.randint(1, n_tokens - 1)


def fault_rng(seed: int, model: str, counter: int) -> random.Random:
    """The generator for the fault draws of `model`'s request number `counter` (independent of
    timing, threads and other models' requests)."""
    return random.Random(f"soaktui-sim:{seed}:{model}:{counter}:fault")


def decide(
    rng: random.Random,
    global_plan: FaultPlan,
    global_n: int,
    persona_plan: FaultPlan,
    persona_n: int,
) -> Fault | None:
    """At most one fault for a request: every-N rules first (persona, then global), then rates.

    `global_n` and `persona_n` are 1-based request counts. Rates of the two plans add up per kind.
    """
    u = rng.random()  # always drawn, so a rule hit does not shift later draws
    for plan, n in ((persona_plan, persona_n), (global_plan, global_n)):
        for kind in FAULT_KINDS:
            every = plan.every.get(kind)
            if every and n % every == 0:
                return Fault(kind, plan.stall_s, plan.after_tokens)
    acc = 0.0
    for kind in FAULT_KINDS:
        p_rate = persona_plan.rates.get(kind, 0.0)
        acc += min(1.0, p_rate + global_plan.rates.get(kind, 0.0))
        if u < acc:
            owner = persona_plan if p_rate > 0 else global_plan
            return Fault(kind, owner.stall_s, owner.after_tokens)
    return None


def parse_fault_spec(spec: str) -> tuple[str, str, float]:
    """Parse a CLI fault spec: `KIND=RATE` (`drop=0.05`) or `KIND=every:N` (`http_503=every:4`).

    Returns (kind, "rate" | "every", value); raises ValueError with a one-line reason.
    """
    name, sep, value = spec.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(f"bad fault spec {spec!r}: expected KIND=RATE or KIND=every:N")
    kind = canonical_kind(name)
    value = value.strip().lower()
    if value.startswith("every:"):
        try:
            n = int(value[len("every:") :])
        except ValueError:
            raise ValueError(f"bad fault spec {spec!r}: every:N needs a whole number") from None
        if n < 1:
            raise ValueError(f"bad fault spec {spec!r}: every:N needs N >= 1")
        return kind, "every", float(n)
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"bad fault spec {spec!r}: RATE must be a number between 0 and 1") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"bad fault spec {spec!r}: RATE must be between 0 and 1")
    return kind, "rate", rate


def plan_from_specs(specs: list[str], stall_s: float = 5.0) -> FaultPlan:
    """A FaultPlan from CLI specs; raises ValueError with a one-line reason."""
    rates: dict[str, float] = {}
    every: dict[str, int] = {}
    for spec in specs:
        kind, how, value = parse_fault_spec(spec)
        if how == "every":
            every[kind] = int(value)
        else:
            rates[kind] = value
    return FaultPlan(rates=rates, every=every, stall_s=stall_s)
