"""The capability database: per-model profiles that accumulate across runs, in the user data dir.

One night's run says little about a model; ten say more. Each run's final report adds one row per
(run id, model key) to an SQLite file (stdlib sqlite3) with that run's figures as counts (k of n,
never bare rates), so a profile over many runs is re-aggregated exactly. Percentiles cannot be
merged, so TTFT and tokens/s keep each run's own median and a profile shows their range over runs.

A profile is keyed by server kind and model id ("lmstudio/qwen2.5-7b-instruct"), not by the run's
model key, whose provider part carries host:port ("lmstudio@127.0.0.1:1234/..."): a port changes
with every demo run and with some restarts, and would split one model's history. Each row keeps
the run's full model key too.

Safe against two runs finishing at once: WAL mode, a busy timeout, and one short `BEGIN IMMEDIATE`
transaction per run that first deletes the run's rows and then inserts them, so writing a run again
(`soaktui report RUN_DIR`) replaces it instead of counting it twice. A database failure is one
warning line for the caller to print: it never costs the report, which is already written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from soaktui.errors import SetupError
from soaktui.locations import data_dir
from soaktui.report.capabilities import KINDS, SO_MODES, TOOL_MODES, cap_rate, rates
from soaktui.report.snapshot import CapabilityRow, SampledRate, Snapshot

DB_FILE = "capabilities.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 15.0

_CREATE = """
CREATE TABLE IF NOT EXISTS model_runs (
    run_id      TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    profile     TEXT    NOT NULL,
    started_at  TEXT,
    ended_at    TEXT,
    ended_t     REAL,
    finished    INTEGER NOT NULL,
    demo        INTEGER NOT NULL,
    recorded_at REAL    NOT NULL,
    tests       INTEGER NOT NULL,
    ok_tests    INTEGER NOT NULL,
    figures     TEXT    NOT NULL,
    PRIMARY KEY (run_id, model)
)
"""
_COLUMNS = (
    "run_id",
    "model",
    "profile",
    "started_at",
    "ended_at",
    "ended_t",
    "finished",
    "demo",
    "recorded_at",
    "tests",
    "ok_tests",
    "figures",
)


def db_path(env: Mapping[str, str] | None = None) -> Path:
    return data_dir(env) / DB_FILE


def _use_wal(con: sqlite3.Connection) -> None:
    """Switch the file to WAL mode (once per database file; a no-op after that).

    SQLite does not call the busy handler for this switch: when another process has the file open
    at that moment it answers "database is locked" at once. So it is retried here, within the same
    budget as every other lock wait.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            con.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database in WAL mode with a busy timeout; autocommit mode,
    so every write states its own transaction."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this soaktui understands ({SCHEMA_VERSION})"
            )
        _use_wal(con)
        con.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            con.execute("BEGIN IMMEDIATE")
            con.execute(_CREATE)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("COMMIT")
    except BaseException:
        con.close()
        raise
    return con


# -- one run's figures, as counts ------------------------------------------------------------------
def _pairs(rates: dict[str, SampledRate]) -> dict[str, list[int]]:
    return {name: [r["k"], r["n"]] for name, r in rates.items() if r["n"]}


def run_figures(row: CapabilityRow) -> dict[str, Any]:
    """The counts of one capability-matrix row (report.capabilities) that a profile is built from."""
    tc, so, pc = row["tool_calling"], row["structured_output"], row["prompt_checks"]
    rel = row["reliability"]
    return {
        "tests": [rel["tests"]["k"], rel["tests"]["n"]],
        "request_errors": [rel["request_errors"]["k"], rel["request_errors"]["n"]],
        "tool_calling": None
        if tc is None
        else {
            "overall": [tc["overall"]["k"], tc["overall"]["n"]],
            "by_kind": _pairs(tc["by_kind"]),
            "by_mode": _pairs(tc["by_mode"]),
            "request_failed": tc["request_failed"],
        },
        "structured_output": None
        if so is None
        else {
            "parsed": [so["parsed"]["k"], so["parsed"]["n"]],
            "schema_valid": [so["schema_valid"]["k"], so["schema_valid"]["n"]],
            "by_mode": _pairs(so["by_mode"]),
            "failures": dict(so["failures"]),
            "request_failed": so["request_failed"],
        },
        "prompt_checks": None if pc is None else {"passed": [pc["passed"]["k"], pc["passed"]["n"]]},
        "streaming_ttft_ms": row["streaming_ttft_ms"],
        "gen_tps": row["gen_tps"],
        "large_context": row["large_context"],
    }


def profile_key(key: str, kinds: Mapping[str, str] | None = None) -> str:
    """The profile a run's model key accumulates into: "<server kind>/<model id>"."""
    provider, sep, model_id = key.partition("/")
    if not sep:
        return key
    kind = (kinds or {}).get(provider) or provider.split("@", 1)[0]
    return f"{kind}/{model_id}"


def record_snapshot(snap: Snapshot, path: Path | None = None) -> str | None:
    """Add (or replace) this run's rows; returns a warning line on failure, None when recorded.

    Only models that were tested get a row. Never raises for a database problem.
    """
    run = snap.get("run") or {}
    run_id = run.get("run_id")
    rows = (snap.get("capabilities") or {}).get("models") or {}
    if not run_id:
        return "model profiles not updated: the event log has no run id"
    path = db_path() if path is None else path
    now = time.time()
    kinds = {p.get("name"): p.get("kind") for p in run.get("providers") or [] if p.get("name")}
    values = [
        (
            run_id,
            key,
            profile_key(key, kinds),
            run.get("started_at"),
            run.get("ended_at"),
            run.get("ended_t"),
            int(bool(run.get("finished"))),
            int(bool(run.get("demo"))),
            now,
            row["reliability"]["tests"]["n"],
            row["reliability"]["tests"]["k"],
            orjson.dumps(run_figures(row)).decode(),
        )
        for key, row in rows.items()
    ]
    try:
        con = connect(path)
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM model_runs WHERE run_id = ?", (run_id,))
                con.executemany(
                    f"INSERT INTO model_runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    values,
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()
    except (sqlite3.Error, OSError) as exc:
        return f"model profiles not updated ({path}: {exc}); the report itself is written"
    return None


# -- reading ---------------------------------------------------------------------------------------
def load_runs(path: Path | None = None) -> list[dict[str, Any]]:
    """Every stored (run, model) row, oldest run first, figures decoded; [] when there is no database.

    Raises SetupError (one clear line) when the file exists but cannot be read as the database.
    """
    path = db_path() if path is None else path
    if not path.exists():
        return []
    query = f"SELECT {', '.join(_COLUMNS)} FROM model_runs ORDER BY ended_t IS NULL, ended_t, run_id, model"
    try:
        con = connect(path)
        try:
            fetched = con.execute(query).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise SetupError(f"cannot read the capability database {path}: {exc}") from exc
    out = []
    for values in fetched:
        rec = dict(zip(_COLUMNS, values, strict=True))
        rec["finished"] = bool(rec["finished"])
        rec["demo"] = bool(rec["demo"])
        try:
            rec["figures"] = orjson.loads(rec["figures"])
        except orjson.JSONDecodeError:
            rec["figures"] = {}
        out.append(rec)
    return out


# -- profiles: runs combined -----------------------------------------------------------------------
def _add(into: dict[str, list[int]], pairs: dict[str, list[int]] | None) -> None:
    for name, (k, n) in (pairs or {}).items():
        row = into.setdefault(name, [0, 0])
        row[0] += k
        row[1] += n


def _spread(values: list[tuple[float, int]]) -> dict[str, Any] | None:
    """Per-run medians (value, n) -> their range over runs; None when no run measured it."""
    if not values:
        return None
    meds = [v for v, _ in values]
    return {"runs": len(values), "min_p50": min(meds), "max_p50": max(meds), "n": sum(n for _, n in values)}


def profile(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One profile's figures over the given runs (rows of load_runs with that profile)."""
    sums: dict[str, dict[str, list[int]]] = {
        "main": {},
        "tool": {},
        "tool_kind": {},
        "tool_mode": {},
        "so": {},
        "so_mode": {},
        "checks": {},
    }
    failures: dict[str, int] = {}
    tool_req_failed = so_req_failed = 0
    measured = {"tool": False, "so": False, "checks": False}
    ttft: list[tuple[float, int]] = []
    gen: list[tuple[float, int]] = []
    ctx_max: float | None = None
    ctx_ok = ctx_failed = 0
    ctx_runs = 0
    for rec in runs:
        f = rec["figures"]
        _add(sums["main"], {k: f[k] for k in ("tests", "request_errors") if f.get(k)})
        tc = f.get("tool_calling")
        if tc:
            measured["tool"] = True
            _add(sums["tool"], {"overall": tc["overall"]})
            _add(sums["tool_kind"], tc.get("by_kind"))
            _add(sums["tool_mode"], tc.get("by_mode"))
            tool_req_failed += tc.get("request_failed", 0)
        so = f.get("structured_output")
        if so:
            measured["so"] = True
            _add(sums["so"], {"parsed": so["parsed"], "schema_valid": so["schema_valid"]})
            _add(sums["so_mode"], so.get("by_mode"))
            for kind, n in (so.get("failures") or {}).items():
                failures[kind] = failures.get(kind, 0) + n
            so_req_failed += so.get("request_failed", 0)
        pc = f.get("prompt_checks")
        if pc:
            measured["checks"] = True
            _add(sums["checks"], {"passed": pc["passed"]})
        t = f.get("streaming_ttft_ms")
        if t and t.get("p50") is not None:
            ttft.append((t["p50"], t["n"]))
        g = f.get("gen_tps")
        if g and g.get("p50") is not None:
            gen.append((g["p50"], g["n"]))
        c = f.get("large_context")
        if c:
            ctx_runs += 1
            ctx_ok += c.get("requests_ok", 0)
            ctx_failed += c.get("requests_failed", 0)
            m = c.get("max_prompt_tokens")
            if m is not None and (ctx_max is None or m > ctx_max):
                ctx_max = m
    main = sums["main"]
    last = runs[-1] if runs else {}
    run_ids = list(dict.fromkeys(r["run_id"] for r in runs))
    return {
        "runs": len(run_ids),
        "run_ids": run_ids,
        "model_keys": sorted({r["model"] for r in runs}),
        "demo_runs": len({r["run_id"] for r in runs if r["demo"]}),
        "last_seen": last.get("ended_at") or last.get("started_at"),
        "tests": cap_rate(*main.get("tests", [0, 0])),
        "request_errors": cap_rate(*main.get("request_errors", [0, 0])),
        "tool_calling": {
            "overall": cap_rate(*sums["tool"]["overall"]),
            "by_kind": rates(sums["tool_kind"], KINDS),
            "by_mode": rates(sums["tool_mode"], TOOL_MODES),
            "request_failed": tool_req_failed,
        }
        if measured["tool"]
        else None,
        "structured_output": {
            "parsed": cap_rate(*sums["so"]["parsed"]),
            "schema_valid": cap_rate(*sums["so"]["schema_valid"]),
            "by_mode": rates(sums["so_mode"], SO_MODES),
            "failures": dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
            "request_failed": so_req_failed,
        }
        if measured["so"]
        else None,
        "prompt_checks": {"passed": cap_rate(*sums["checks"]["passed"])} if measured["checks"] else None,
        "streaming_ttft_p50_ms": _spread(ttft),
        "gen_tps_p50": _spread(gen),
        "large_context": {
            "max_prompt_tokens": ctx_max,
            "requests_ok": ctx_ok,
            "requests_failed": ctx_failed,
            "runs": ctx_runs,
        }
        if ctx_runs
        else None,
    }


def profiles(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{profile key: profile} over every row of load_runs, sorted by key."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for rec in runs:
        by_model.setdefault(rec["profile"], []).append(rec)
    return {key: profile(by_model[key]) for key in sorted(by_model)}


def find_model(profiles: dict[str, Any], query: str) -> str:
    """The model key `query` names: the key itself, else the one key ending in "/query", else the one
    key containing it (case-insensitive). SetupError when none or several match."""
    if query in profiles:
        return query
    q = query.lower()
    hits = [k for k in profiles if k.lower().endswith("/" + q)] or [k for k in profiles if q in k.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        known = f"; known: {', '.join(profiles)}" if profiles else " (no model profiles yet)"
        raise SetupError(f"no model profile matches {query!r}{known}")
    raise SetupError(f"{query!r} matches {len(hits)} models ({', '.join(hits)}): give the full key")


__all__ = [
    "DB_FILE",
    "connect",
    "db_path",
    "find_model",
    "load_runs",
    "profile",
    "profile_key",
    "profiles",
    "record_snapshot",
    "run_figures",
]
