"""Varied, seeded text for prompts: writing topics and long documents for the large-context test.

Long prompts are built from many different kinds of material (incident notes, log lines, meeting
minutes, configuration, code, tables), with randomised names and figures, so a server's prompt
cache or a model's repetition handling is not what gets measured. A "needle" fact is hidden at a
random depth so the answer can show whether the model read the whole context.
"""

from __future__ import annotations

import random

TOPICS = (
    "the trade-offs of event sourcing for an order management system",
    "how to migrate a monolith's user service to its own database without downtime",
    "designing rate limiting for a public REST API used by mobile clients",
    "the causes of tail latency in a Kubernetes-hosted Java service and how to find them",
    "a capacity plan for a PostgreSQL cluster growing 40% per year",
    "how a blue-green deployment differs from a canary release, with failure modes",
    "securing a CI/CD pipeline against supply-chain attacks",
    "observability for a message queue: which metrics, logs and traces matter",
    "choosing between gRPC and REST for internal services",
    "a disaster recovery runbook for a multi-region web application",
    "cost optimisation of a cloud data warehouse with spiky workloads",
    "the design of an idempotent payment webhook handler",
    "how to run a blameless post-incident review",
    "caching strategies for a product catalogue with frequent price updates",
    "zero-trust network access for a hybrid workforce",
    "schema evolution in a Kafka-based data platform",
    "testing strategy for a React front end backed by GraphQL",
    "how to roll out feature flags safely across teams",
    "pricing model design for a B2B SaaS product with usage-based billing",
    "building a recommendation engine for an online bookstore",
)

_TEAMS = ("payments", "search", "identity", "billing", "platform", "data", "mobile", "checkout")
_SERVICES = ("api-gateway", "order-svc", "auth-svc", "ledger", "indexer", "notifier", "scheduler")
_PEOPLE = ("Amara", "Bjorn", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun")
_VERBS = ("reviewed", "escalated", "rolled back", "patched", "benchmarked", "documented", "deferred")
_ISSUES = (
    "connection pool exhaustion",
    "a memory leak in the JSON encoder",
    "stale DNS entries",
    "an expired TLS certificate",
    "a slow query on the invoices table",
    "disk pressure on the log volume",
    "clock skew between nodes",
    "a retry storm after a deploy",
)


def _incident(r: random.Random) -> str:
    return (
        f"Incident {r.randint(1000, 9999)}: the {r.choice(_TEAMS)} team saw {r.choice(_ISSUES)} in "
        f"{r.choice(_SERVICES)} at {r.randint(0, 23):02d}:{r.randint(0, 59):02d}. p99 latency rose from "
        f"{r.randint(80, 200)} ms to {r.randint(900, 4000)} ms; {r.choice(_PEOPLE)} {r.choice(_VERBS)} the "
        f"change and error rate fell back to {r.uniform(0.01, 0.5):.2f}% within {r.randint(3, 45)} minutes."
    )


def _logs(r: random.Random) -> str:
    lines = []
    for _ in range(r.randint(3, 6)):
        lvl = r.choice(("INFO", "WARN", "ERROR", "DEBUG"))
        lines.append(
            f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:"
            f"{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z {lvl} {r.choice(_SERVICES)} "
            f"req={r.getrandbits(32):08x} status={r.choice((200, 201, 204, 400, 404, 429, 500, 503))} "
            f"dur_ms={r.randint(1, 3000)}"
        )
    return "\n".join(lines)


def _minutes(r: random.Random) -> str:
    a, b = r.sample(_PEOPLE, 2)
    return (
        f"Meeting notes ({r.choice(_TEAMS)}): {a} proposed moving {r.choice(_SERVICES)} to a new "
        f"cluster by week {r.randint(1, 52)}. {b} asked for a load test at {r.randint(2, 20)}x current "
        f"traffic first. Decision: {r.choice(('approved', 'postponed', 'approved with conditions'))}. "
        f"Budget impact estimated at {r.randint(2, 90)}k per quarter."
    )


def _config(r: random.Random) -> str:
    return (
        f'[{r.choice(_SERVICES)}]\nreplicas = {r.randint(2, 24)}\ncpu_limit = "{r.randint(1, 8)}"\n'
        f'memory_limit = "{r.choice((512, 1024, 2048, 4096))}Mi"\ntimeout_ms = {r.randint(100, 30000)}\n'
        f"feature_{r.choice(_TEAMS)}_v{r.randint(2, 9)} = {r.choice(('true', 'false'))}"
    )


def _code(r: random.Random) -> str:
    n = r.randint(2, 9)
    return (
        f"def settle_batch_{r.randint(10, 99)}(entries, fee_bps={r.randint(5, 90)}):\n"
        f"    total = sum(e.amount for e in entries if e.currency == '{r.choice(('EUR', 'USD', 'JPY'))}')\n"
        f"    fee = total * fee_bps / 10_000\n"
        f"    return round(total - fee, {n % 4})"
    )


def _table(r: random.Random) -> str:
    rows = ["| region | requests | errors | p95 ms |", "|---|---|---|---|"]
    for region in r.sample(("eu-west", "us-east", "ap-south", "sa-east", "af-south", "eu-north"), 3):
        rows.append(
            f"| {region} | {r.randint(10_000, 9_000_000)} | {r.randint(0, 5000)} | {r.randint(40, 900)} |"
        )
    return "\n".join(rows)


_PARTS = (_incident, _logs, _minutes, _config, _code, _table)


def long_document(rng: random.Random, approx_chars: int, needle: str) -> str:
    """Varied text of about `approx_chars` characters with `needle` placed at a random depth."""
    chunks: list[str] = []
    size = 0
    while size < approx_chars:
        part = rng.choice(_PARTS)(rng)
        chunks.append(part)
        size += len(part) + 2
    chunks.insert(rng.randint(0, len(chunks)), needle)
    return "\n\n".join(chunks)


def make_needle(rng: random.Random) -> tuple[str, str]:
    """A fact to hide in a long document and the code that answers the question about it."""
    code = f"{rng.choice(('AMBER', 'COBALT', 'JUNIPER', 'SAFFRON', 'TUNDRA'))}-{rng.randint(1000, 9999)}"
    return f"Note for auditors: the escrow release code for the quarter is {code}.", code
