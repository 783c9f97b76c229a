"""Fold a run's events into the report: one aggregate shared by every view of a run.

`soaktui report`, the end-of-run report, the live `test_summary.json` and the dashboard all feed
events to a `RunAggregate` and read `snapshot()`, so a figure means the same thing everywhere. The
work is done by the folds in report/folds/, one per section; each declares the event kinds it reads
(`KINDS`), and `feed` routes every event to those folds: a table lookup and a few appends per event,
the folds then reading a batch each in turn (bench/report_1m.py folds a million request events in
seconds). A fold that reads a kind for some scenarios only (`ONLY_SCENARIOS`) is not called for the
others. An event whose fields have the wrong types is counted as malformed and skipped; unknown
kinds are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, TypeVar

from soaktui.report import rankings
from soaktui.report.capabilities import CapabilityReducer
from soaktui.report.folds.common import is_num
from soaktui.report.folds.control import ControlFold
from soaktui.report.folds.engine_errors import EngineErrorFold
from soaktui.report.folds.failover import FailoverFold
from soaktui.report.folds.hardware import HardwareFold
from soaktui.report.folds.merging import add_counts
from soaktui.report.folds.outages import OutageFold
from soaktui.report.folds.requests import RequestFold
from soaktui.report.folds.run import RunFold
from soaktui.report.folds.scaling import CONTEXT_ORDER, ConcurrencyFold, ContextFold
from soaktui.report.folds.server_truth import ServerTruthFold
from soaktui.report.folds.timeline import timeline as over_time
from soaktui.report.names import short_names
from soaktui.report.snapshot import Snapshot, Totals
from soaktui.report.verdict import decide

T = TypeVar("T")
Route = Callable[[dict[str, Any]], None]
FLUSH_EVENTS = 256  # events held before the folds read them (RunAggregate._flush)
MAX_SCENARIO_ROUTES = 256  # distinct scenario names whose routes are kept (a hostile log has more)

DEFINITIONS = {
    "e2e_ms": "request sent -> response complete, successful requests only",
    "ttft_ms": "request sent -> first content chunk, successful streamed requests only; requests that "
    "waited for a cold model load are left out (see cold loads)",
    "itl_p50_ms": "median of per-request ITL p50 (each request's median gap between content chunks), "
    "successful streamed requests only",
    "gen_tps": "output tokens after the first / time from first to last content chunk "
    "(generation phase), successful streamed requests only",
    "gen_tps_nonstream": "output tokens / end-to-end time, successful non-streamed requests only",
    "prompt_tps": "prompt tokens the server processed (cache hits left out) / TTFT, successful warm "
    "streamed requests with a known prompt size",
    "cold": "a request sent while the server said its model was not loaded: it waited for the load, "
    "so its TTFT, latency and prompt speed are kept out of those figures",
    "stalled": "a stream silent for thresholds.stall_s or longer between two tokens: a failure "
    "(error class stalled) even when it finished",
    "prompt_truncated": "the server counted fewer prompt tokens than the text sent can make (one per 6 "
    "characters, or 80% of what the model's own earlier documents predict), or exactly as many as for "
    "a clearly shorter prompt: it cut the prompt silently (error class prompt_truncated)",
    "server_gen_tps": "the server's own generation speed (llama.cpp timings.predicted_per_second), "
    "compared with soaktui's gen_tps over the same requests; flagged over 25% apart",
    "success": "k/n with a Wilson 95% score interval",
    "tests": "one scenario run (scenario_result event); its success rule is the scenario's",
    "concurrency": "aggregate tokens/s and per-request p50 latency are medians over batches in which "
    "every request succeeded; partial and failed batches are counted, not averaged",
    "context": "large_context requests bucketed by prompt tokens (the target size when the server did "
    "not report prompt tokens); k = 1024 tokens",
}


class RunAggregate:
    """Feed events in log order; `snapshot()` gives the report data (JSON-able) at any time."""

    def __init__(
        self, *, min_requests: int = 5, min_tests: int = 5, exact: bool = True, later: bool = False
    ) -> None:
        # exact (the report: `soaktui report`, the end of a run): every value kept, 8 bytes each.
        # Not exact (the live views: test_summary.json and the viewer): bounded memory, percentiles
        # within sketch.ALPHA (1%) of the exact ones (folds/common.new_sample, docs/report.md).
        self.min_requests = min_requests  # rankings: successful streamed requests needed
        self.min_tests = min_tests  # rankings: tests needed
        self.events = 0
        self.malformed = 0  # events of a known kind whose fields had the wrong type
        self._kinds: dict[Any, int] = {}  # events other than request / scenario_result, by kind
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._first_mono: int | None = None
        self._last_mono: int | None = None
        self._first_run_id: str | None = None
        self.requests = RequestFold(exact=exact)
        self.run = RunFold()
        self.control = ControlFold()
        self.engine_errors = EngineErrorFold()
        self.concurrency = ConcurrencyFold(exact=exact)
        self.context = ContextFold(exact=exact)
        self.failover = FailoverFold(exact=exact)
        self.hardware = HardwareFold(later=later)  # telemetry, thermal guard, energy
        self.truth = ServerTruthFold(exact=exact)  # cold loads, stalls, cut prompts, the server's own speed
        self.capabilities = CapabilityReducer()
        self.outages = OutageFold()  # providers that were down, as periods
        folds = (
            self.requests,
            self.run,
            self.control,
            self.engine_errors,
            self.concurrency,
            self.context,
            self.failover,
            self.hardware,
            self.truth,
            self.capabilities,
            self.outages,
        )
        # These folds join the state of a later stretch of the log (report/split.py): `merge`, or
        # for the hardware fold `joined`; the others read rare kinds only, and a later stretch's
        # events of those kinds are kept as they are (`replayed`) for the earlier stretch's
        # aggregate to feed on after its own. The routes keep the fold order either way.
        self._merged: tuple[Any, ...] = (
            self.requests,
            self.concurrency,
            self.context,
            self.failover,
            self.hardware,  # joined by folds/hardware_join.py (HardwareFold.joined)
            self.truth,
            self.capabilities,
        )
        replayed = (self.run, self.control, self.engine_errors, self.outages)
        assert len(self._merged) + len(replayed) == len(folds)
        replayed_kinds = {kind for f in replayed for kind in f.KINDS}
        self.replayed: list[dict[str, Any]] = []
        self.unmergeable: str | None = None  # why this later stretch cannot be joined exactly
        # kind -> [(method, the scenarios it reads or None for all)], in fold order
        routes: dict[str, list[tuple[Route, tuple[str, ...] | None]]] = {}
        for fold in self._merged if later else folds:
            only = getattr(fold, "ONLY_SCENARIOS", {})
            for kind, method in fold.KINDS.items():
                routes.setdefault(kind, []).append((getattr(fold, method), only.get(kind)))
        if later:
            for kind in replayed_kinds:
                keep = self._keep_mixed if kind in routes else self._keep  # one group: log order
                routes.setdefault(kind, []).insert(0, (keep, None))
        self._all_routes = {kind: tuple(fn for fn, _ in pairs) for kind, pairs in routes.items()}
        self._filters = {kind: pairs for kind, pairs in routes.items() if any(s for _, s in pairs)}
        self._order = list(self._merged if later else folds)  # the folds, in fold order
        self._build_groups()

    def _build_groups(self) -> None:
        """The groups the events wait in for their folds, and the routes to them.

        Events reach the folds a batch at a time, fold by fold (`_flush`): each fold then reads
        its events while its own state is in the CPU's cache. Event by event through every fold,
        each fold found its state evicted by the others' (the hardware fold's most: the sensors
        log of bench/report_1m.py folded 20% slower). One group per method owner, in an order
        every route keeps (a later stretch's keepers, this aggregate's own methods, first; then the
        folds in fold order), so a fold that raises on an event still keeps it from the folds after
        it."""
        self._groups: list[tuple[list[dict[str, Any]], dict[Any, Route]]] = []
        self._append_of: list[tuple[Any, Route]] = []  # (owner, its group's appender): identity, not ids
        for owner in (self, *self._order):
            methods = {k: fn for k, fns in self._all_routes.items() for fn in fns if _owner(fn) is owner}
            if not methods:
                continue  # this aggregate keeps nothing unless it folds a later stretch
            pending: list[dict[str, Any]] = []
            self._groups.append((pending, methods))
            self._append_of.append((owner, pending.append))
        # kind -> the appenders of the groups that read it, or, for a kind some method reads for
        # some scenarios only, a dict scenario -> those appenders (filled as scenarios are met)
        self._routes: dict[Any, tuple[Route, ...] | dict[Any, tuple[Route, ...]]] = {
            kind: {} if kind in self._filters else self._appenders(fns)
            for kind, fns in self._all_routes.items()
        }

    # The groups are made again by a copy (pickle: report/split.py's child sends its aggregate;
    # copy.deepcopy): a copy would share a list's bound `append` with the original.
    _ROUTING = ("_groups", "_append_of", "_routes")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._ROUTING}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_groups()

    def _appenders(self, fns: tuple[Route, ...]) -> tuple[Route, ...]:
        """The pending lists' appenders of the groups of `fns` (one method per group and kind)."""
        return tuple(next(a for o, a in self._append_of if o is _owner(fn)) for fn in fns)

    def _scenario_routes(self, kind: Any, scenario: Any) -> tuple[Route, ...]:
        """The appenders of the groups whose methods read `kind` events of `scenario`, in fold
        order (kept for next time)."""
        by_scenario = self._routes[kind]
        assert type(by_scenario) is dict
        try:
            hash(scenario)
        except TypeError:  # no scenario name: every method sees it, and decides
            return self._appenders(self._all_routes[kind])
        found = self._appenders(
            tuple(fn for fn, only in self._filters[kind] if only is None or scenario in only)
        )
        if len(by_scenario) < MAX_SCENARIO_ROUTES:
            by_scenario[scenario] = found
        return found

    def _keep(self, ev: dict[str, Any]) -> None:
        """A later stretch's event of a kind only replayed folds read, kept for the earlier
        stretch's aggregate to feed on after its own."""
        self.replayed.append(ev)

    def _keep_mixed(self, ev: dict[str, Any]) -> None:
        """A later stretch's event of a kind both merged and replayed folds read (run_started): the
        order between the two would be lost, so this stretch is folded again in order instead."""
        self.replayed.append(ev)
        if self.unmergeable is None:
            self.unmergeable = f"a {ev.get('kind')} event"

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, ev: dict[str, Any]) -> None:
        """Fold one event into every fold that reads its kind."""
        self.feed_all((ev,))

    def feed_all(self, events: Iterable[dict[str, Any]]) -> RunAggregate:
        """Fold `events` in order, each into every fold that reads its kind: FLUSH_EVENTS at a
        time, each batch read by every fold before the next (`_feed_batch`)."""
        if type(events) is list or type(events) is tuple:
            for lo in range(0, len(events), FLUSH_EVENTS):
                self._feed_batch(events[lo : lo + FLUSH_EVENTS] if len(events) > FLUSH_EVENTS else events)
        else:
            it = iter(events)
            while True:
                batch: list[dict[str, Any]] = []
                try:
                    for ev in islice(it, FLUSH_EVENTS):
                        batch.append(ev)
                finally:  # what the iterable gave before it raised is folded all the same
                    if batch:
                        self._feed_batch(batch)
                if len(batch) < FLUSH_EVENTS:
                    break
        return self

    def _feed_batch(self, events: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> None:
        """Route each event to the groups that read it, then let each group fold its share.

        The loop `soaktui report` runs over every event of a log, so the per-event work is a
        table lookup and the appends; the run's first and last times are read once a batch."""
        if len(events) > 1 and len(set(map(id, events))) < len(events):
            for ev in events:  # one event object twice: each time an event of its own (malformed)
                self._feed_batch((ev,))
            return
        self._times(events)
        routes_of, kinds = self._routes, self._kinds
        n = malformed = 0
        try:
            for ev in events:
                n += 1
                kind = ev.get("kind")
                try:
                    routes = routes_of.get(kind)
                except TypeError:  # a kind no writer makes (a list, an object): nothing reads it
                    malformed += 1
                    continue
                if kind != "request" and kind != "scenario_result":  # counted by the request fold
                    kinds[kind] = kinds.get(kind, 0) + 1
                if routes is None:
                    continue
                if type(routes) is dict:  # some folds read only some scenarios of this kind
                    scenario = ev.get("scenario")
                    try:
                        routes = routes[scenario]
                    except (KeyError, TypeError):
                        routes = self._scenario_routes(kind, scenario)
                for append in routes:
                    append(ev)
        finally:
            try:
                malformed += self._flush()  # every event routed is folded before this returns
            finally:
                self.events += n
                self.malformed += malformed

    def _times(self, events: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> None:
        """The run's first and last time (`t`, a number) and monotonic clock (`mono_ns`, an int),
        from a batch: its first event with each while none was seen yet, and its last."""
        if self._first_t is None:
            for ev in events:
                t = ev.get("t")
                if type(t) is float or type(t) is int:  # a time, not whatever a log put there
                    self._first_t, self._first_run_id = t, ev.get("run_id")
                    break
        if self._first_mono is None:
            for ev in events:
                if type(mono := ev.get("mono_ns")) is int:
                    self._first_mono = mono
                    break
        for ev in reversed(events):
            t = ev.get("t")
            if type(t) is float or type(t) is int:
                self._last_t = t
                break
        for ev in reversed(events):
            if type(mono := ev.get("mono_ns")) is int:
                self._last_mono = mono
                break

    def _flush(self) -> int:
        """Fold the events held, group by group; the number of events some fold raised on (each
        kept from the folds after the one that raised, as when folded one by one)."""
        bad: dict[int, dict[str, Any]] | None = None  # id -> event (kept alive: the ids stay unique)
        groups = self._groups
        try:
            for pending, methods in groups:
                if not pending:
                    continue
                for ev in [ev for ev in pending if id(ev) not in bad] if bad else pending:
                    try:
                        methods[ev["kind"]](ev)
                    except (TypeError, ValueError, AttributeError, OverflowError):
                        if bad is None:
                            bad = {}
                        bad[id(ev)] = ev
                pending.clear()
        except BaseException:
            for pending, _ in groups:
                pending.clear()  # an error no fold expects leaves no event for the next call
            raise
        return len(bad) if bad else 0

    # -- joining (report/split.py) -------------------------------------------------------------
    def cannot_merge(self, later: RunAggregate) -> str | None:
        """Why `merge(later)` would not give exactly one fold's figures, or None when it would."""
        reason, _ = self._plan(later)
        return reason

    def _plan(self, later: RunAggregate) -> tuple[str | None, HardwareFold | None]:
        """(why the join cannot be exact, None) or (None, the joined hardware fold): every check
        and the one costly join done before anything is changed."""
        if later.unmergeable is not None:
            return later.unmergeable, None
        for fold, theirs in zip(self._merged, later._merged, strict=True):
            reason = fold.cannot_merge(theirs) if hasattr(fold, "cannot_merge") else None
            if reason is not None:
                return f"{type(fold).__name__}: {reason}", None
        joined = self.hardware.joined(later.hardware)
        if isinstance(joined, str):
            return f"HardwareFold: {joined}", None
        return None, joined

    def merge(self, later: RunAggregate) -> RunAggregate:
        """Join the aggregate of the stretch of the log after this one's (made with `later=True`),
        as if this aggregate had read it. Raises ValueError, changing nothing, when the join would
        not be exact (`cannot_merge`)."""
        reason, hardware = self._plan(later)
        if reason is not None or hardware is None:
            raise ValueError(f"cannot merge: {reason}")
        self.events += later.events
        self.malformed += later.malformed
        add_counts(self._kinds, later._kinds)
        if self._first_t is None:
            self._first_t, self._first_run_id = later._first_t, later._first_run_id
        if self._first_mono is None:
            self._first_mono = later._first_mono
        if later._last_t is not None:
            self._last_t = later._last_t
        if later._last_mono is not None:
            self._last_mono = later._last_mono
        for fold, theirs in zip(self._merged, later._merged, strict=True):
            if fold is self.hardware:
                fold.adopt(hardware)
            else:
                fold.merge(theirs)
        for ev in later.replayed:  # kinds only folds without `merge` read: routes are plain tuples
            try:
                for fn in self._all_routes[ev["kind"]]:
                    fn(ev)
            except (TypeError, ValueError, AttributeError, OverflowError):
                self.malformed += 1
        return self

    # -- reading -------------------------------------------------------------------------------
    def kinds(self) -> dict[str, int]:
        """Events by kind (request and scenario_result counted through their buckets)."""
        out = {str(k): v for k, v in self._kinds.items()}
        tests, _, req_ok, req_failed = self.requests.counts()
        if req_ok + req_failed:
            out["request"] = req_ok + req_failed
        if tests:
            out["scenario_result"] = tests
        return dict(sorted(out.items()))

    @property
    def run_id(self) -> str | None:
        return self.run.run_id or self._first_run_id

    @property
    def cancelled_requests(self) -> int:
        return self.requests.cancelled_requests

    @property
    def cancelled_tests(self) -> int:
        return self.requests.cancelled_tests

    @property
    def tests(self) -> tuple[int, int]:
        """(tests, ok tests) so far: cheap, no snapshot needed."""
        n, k, _, _ = self.requests.counts()
        return n, k

    def elapsed_s(self) -> float | None:
        """Seconds from the first to the last event (monotonic clock when the log has it)."""
        if self._first_mono is not None and self._last_mono is not None:
            return round((self._last_mono - self._first_mono) / 1e9, 3)
        if self._first_t is not None and self._last_t is not None:
            return round(self._last_t - self._first_t, 3)
        return None

    def _usable_context(self, key: str, info: dict[str, Any] | None) -> Any:
        """The runtime context the server reported for the loaded model, else discovery's."""
        learned = self.truth.runtime_context(key)
        if learned and is_num(learned.get("context_length")):
            return learned["context_length"]
        return info.get("context_length") if info else None

    def _in_order(self, by_model: dict[str, T]) -> dict[str, T]:
        return {k: by_model[k] for k in self.run.order(by_model) if k in by_model}

    def snapshot(self) -> Snapshot:
        """The report data: plain dicts, lists, numbers and strings (JSON-able)."""
        self.requests.sort()
        run = self.run
        models = self.requests.models(
            run.order, set(run.selected), run.model_info.get, self._usable_context, self.control.turns
        )
        context = self._in_order(self.context.snapshot())
        capabilities = self.capabilities.matrix(models, self.requests.streaming_ttft(), context)
        header = run.header(
            run_id=self.run_id,
            first_t=self._first_t,
            last_t=self._last_t,
            elapsed_s=self.elapsed_s(),
            max_rss=self.control.max_rss,
        )
        totals: Totals = {
            **self.requests.totals(),
            "events": self.events,
            "malformed_events": self.malformed,
            "kinds": self.kinds(),
        }
        ranks, recommendations = rankings.rank(
            models,
            min_requests=self.min_requests,
            min_tests=self.min_tests,
            capabilities=capabilities["models"],
        )
        names = short_names(models)
        started = header["started_t"] if is_num(header["started_t"]) else None  # a log's text "time"
        timeline = over_time(self.requests.time_cells(), started, self._last_t)
        by_class = self.requests.errors_by_class()
        verdict = decide(
            models,
            capabilities["models"],
            [(e["model"], e["score"], e["evidence"]) for e in ranks["balance"]],
            by_class,
            timeline["drift"],
            outages=self.outages.snapshot(),
            log_lost=sum(e["count"] for e in self.engine_errors.snapshot() if e["error_class"] == "log_lost"),
            duration_s=header["duration_s"],
            min_tests=self.min_tests,
            min_requests=self.min_requests,
            names=names,
        )
        return {
            "schema": 1,
            "run": header,
            "totals": totals,
            "models": models,
            "scenarios": self.requests.scenarios(),
            "errors": {"by_class": by_class, "engine": self.engine_errors.snapshot()},
            "scaling": {"concurrency": self._in_order(self.concurrency.snapshot()), "context": context},
            "capabilities": capabilities,
            "failover": self.failover.snapshot(),
            "control": self.control.snapshot(self._last_mono, self._last_t),
            "hardware": self.hardware.snapshot(_time_or((run.finished or {}).get("t"), self._last_t)),
            "server_truth": self.truth.snapshot({k: m["ttft_ms"]["p50"] for k, m in models.items()}),
            "definitions": dict(DEFINITIONS),
            "rankings": ranks,
            "recommendations": recommendations,
            "verdict": verdict,
            "names": names,
            "timeline": timeline,
            "outages": self.outages.snapshot(),
        }


def _owner(fn: Route) -> Any:
    """What a route is a method of: a fold, or a later stretch's keeper (the aggregate itself)."""
    return fn.__self__  # type: ignore[attr-defined]


def _time_or(t: Any, default: Any) -> Any:
    """`t` when it is a number, else `default` (a log may hold anything where a time belongs)."""
    return t if is_num(t) else default


def fold(events: Iterable[dict[str, Any]], **kwargs: Any) -> RunAggregate:
    """A RunAggregate fed with every event of `events`."""
    return RunAggregate(**kwargs).feed_all(events)


__all__ = ["CONTEXT_ORDER", "DEFINITIONS", "RunAggregate", "fold"]
