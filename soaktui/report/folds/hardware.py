"""The report's hardware section: what the machine did while the models were soaked.

RunAggregate hands this fold the `run_started`, `telemetry`, `thermal_guard`, successful `request`
and `scenario_result` events. Its state is bounded whatever the length of the run: a timeline of
at most BUCKETS buckets whose width doubles when the run outgrows it, value histograms (for peaks
and p95: exact values up to HIST_KEYS distinct ones, then values at a resolution), counters, and a
short window of power readings.

Methods (the section states them too):
- A reading holds from its time until the next reading, for at most MAX_GAP_S: a gap in the
  readings is time unknown, never time cool or time at zero watts.
- "Over a limit" is the thermal guard's own judgement (engine.thermal_guard.judge) against the
  run's `[thermal]` settings, so the report and the guard agree.
- Energy per output token: `power_w` (the sampler's sum of non-overlapping sources) integrated over
  the spans of a model's tests (scenario_result time minus its duration; tests run one at a time,
  so no joule is counted twice), divided by the output tokens of those tests' successful requests.
  A test counts only when power readings cover its whole span.
- Sustained duty under the limits: stretches in which no reading was over a limit; the measured
  duty (time inside tests / wall time) of the longest stretch, and the highest duty over any
  stretch of at least SUSTAIN_MIN_S.
- A reading family the machine could not give is reported with the sampler's reason (the
  reading's `unavailable` map), never as 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

from soaktui.config import Thermal
from soaktui.report.folds.merging import add_counts
from soaktui.report.snapshot import Family, Hardware, Histogram, ModelEnergy, Series, Temperature
from soaktui.thermal import OK, READING_KEYS, STATE_RANK, THERMAL_PRESSURE_LEVELS, judge, pressure_level

BUCKETS = 240  # timeline buckets, however long the run
FIRST_BUCKET_S = 2.0  # the first width; it doubles whenever the run outgrows BUCKETS
MAX_GAP_S = 15.0  # a reading holds for at most this long
SUSTAIN_MIN_S = 600.0  # a stretch under the limits must last this long to count as sustained
MAX_HISTORY = 100  # thermal_guard changes kept verbatim (all are counted)
MAX_NAMES = 32  # distinct sources / throttle reasons / unavailable families kept
MAX_MODELS = 200
MAX_POWER_POINTS = 4096  # power readings kept for integrating over a test (over 2 h at 2 s)
MAX_PENDING = 256  # tests whose requests arrived but whose scenario_result has not yet
HIST_KEYS = 4000  # a histogram coarsens its resolution beyond this many distinct values
# Every sum of this fold (readings for a mean, seconds, joules) is an int of 2**-52 units, each
# term rounded there once (exact for any term of magnitude 1 or more): an int sum does not depend
# on the order of its terms, so a figure on a rounding edge (sensor values have one decimal, readings
# come every 2 s) is the same however the log was folded (report/split.py joins two halves).
FIXED = float(1 << 52)


def _fx(x: float) -> int:
    """`x` in units of 1 / FIXED (see FIXED)."""
    return round(x * FIXED)


def _rx(units: int, nd: int = 1) -> float:
    """A sum in units of 1 / FIXED as the rounded figure."""
    return round(units / FIXED, nd)


SERIES = ("cpu_temp_c", "gpu_temp_c", "power_w", "fan_rpm", "gen_tps")
_CPU, _GPU, _POWER, _FAN, _TPS = range(len(SERIES))
FAMILIES = ("temps", "fans", "power", "gpu", "thermal_pressure", "cpu_throttle")
LIMIT_FAMILIES = ("cpu", "gpu", "pressure", "gpu_throttle")
_FAMILY_LISTS = {"temps": "temps", "fans": "fans", "power": "power", "gpu": "gpus"}  # family -> its list

METHODS = {
    "hold": f"a reading holds until the next one, for at most {MAX_GAP_S:g} s; gaps count as unknown",
    "over": "over a limit = the thermal guard's judgement against the run's [thermal] settings",
    "energy": "power_w integrated over each test's span (scenario_result time minus duration; tests "
    "run one at a time), divided by the output tokens of the test's successful requests; only "
    "tests whose whole span has power readings count",
    "duty": "measured duty = time inside tests / wall time",
    "sustained": "stretches with no reading over a limit; the longest one, and the highest duty "
    f"over any stretch of at least {SUSTAIN_MIN_S / 60:g} min",
    "series": "mean per time bucket; gen_tps = mean generation tokens/s of the successful streamed "
    "requests of the tests that ended in the bucket, output_tps = their output tokens / bucket width",
}


MAX_VALUE = 1e12  # no reading, time or power is this large: beyond it a value is not a number


def _num(x: Any) -> float | None:
    if type(x) is float:  # the usual case, first (false for inf and nan too)
        return x if -MAX_VALUE < x < MAX_VALUE else None
    if isinstance(x, (int, float)) and not isinstance(x, bool) and -MAX_VALUE < x < MAX_VALUE:
        return float(x)
    return None


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def limits_from_settings(settings: Any) -> tuple[Thermal, str]:
    """The run's `[thermal]` settings (run_started.settings.thermal) over the defaults."""
    base = Thermal()
    section = settings.get("thermal") if isinstance(settings, dict) else None
    if not isinstance(section, dict):
        return base, "defaults (the run did not record [thermal] settings)"
    known = {f.name for f in dataclasses.fields(Thermal)}
    values = {k: v for k, v in section.items() if k in known}
    if isinstance(values.get("gpu_throttle_reasons"), list):
        values["gpu_throttle_reasons"] = tuple(values["gpu_throttle_reasons"])
    for name, value in values.items():  # judge compares numbers with numbers: a "x" limit would raise
        default = getattr(base, name)
        wanted = (int, float) if type(default) is float else type(default)
        if not isinstance(value, wanted) or (type(value) is bool) != (type(default) is bool):
            return base, "defaults (the run's [thermal] settings could not be read)"
        if isinstance(value, tuple) and not all(type(r) is str for r in value):
            return base, "defaults (the run's [thermal] settings could not be read)"
    try:
        return dataclasses.replace(base, **values), "run settings"
    except (TypeError, ValueError):
        return base, "defaults (the run's [thermal] settings could not be read)"


class _Cell:
    """One timeline bucket."""

    __slots__ = ("sums", "counts", "maxes", "busy_s", "tokens", "over", "guard", "early")

    def __init__(self) -> None:
        self.sums = [0] * len(SERIES)  # in units of 1 / FIXED
        self.counts = [0] * len(SERIES)
        self.maxes = [-math.inf] * len(SERIES)
        self.busy_s = 0  # 1 / FIXED units
        self.tokens = 0
        self.over = False
        self.guard = 0  # highest guard state seen (STATE_RANK)
        self.early = False  # a later stretch's reading before its first guard change (folds/hardware_join.py)

    def merge(self, o: _Cell) -> None:
        for i in range(len(SERIES)):
            self.sums[i] += o.sums[i]
            self.counts[i] += o.counts[i]
            self.maxes[i] = max(self.maxes[i], o.maxes[i])
        self.busy_s += o.busy_s
        self.tokens += o.tokens
        self.over = self.over or o.over
        self.guard = max(self.guard, o.guard)
        self.early = self.early or o.early


class Timeline:
    """At most `cap` buckets from `origin`; when time runs past the last, neighbours merge (width x2)."""

    def __init__(self, origin: float, width: float = FIRST_BUCKET_S, cap: int = BUCKETS) -> None:
        self.origin = origin
        self.width = width
        self.cap = cap
        self.cells: list[_Cell | None] = [None] * cap
        self.last_i = -1  # the index `cell` found last, and its cell (-1: none since a coarsening)
        self.last: _Cell | None = None

    def index(self, t: float) -> int:
        i = int((t - self.origin) // self.width)
        while i >= self.cap:
            self._coarsen()
            i = int((t - self.origin) // self.width)
        return max(0, i)

    def join(self, later: Timeline) -> None:
        """Add a later stretch's timeline (the same origin): its width is the one a single timeline
        would have reached, as the width depends only on the latest time seen."""
        while later.width < self.width:
            later._coarsen()
        while self.width < later.width:
            self._coarsen()
        for i, c in enumerate(later.cells):
            if c is not None:
                mine = self.cells[i]
                if mine is None:
                    self.cells[i] = c
                else:
                    mine.merge(c)

    def _coarsen(self) -> None:
        cells: list[_Cell | None] = [None] * self.cap
        for j in range(self.cap // 2):
            a, b = self.cells[2 * j], self.cells[2 * j + 1]
            if a is None:
                a, b = b, None
            if a is not None and b is not None:
                a.merge(b)
            cells[j] = a
        self.cells = cells
        self.width *= 2
        self.last_i, self.last = -1, None

    def cell(self, t: float) -> _Cell:
        i = self.index(t)
        c = self.cells[i]
        if c is None:
            c = self.cells[i] = _Cell()
        self.last_i, self.last = i, c
        return c

    def add_busy(self, a: float, b: float) -> None:
        """Spread the test span [a, b] over the buckets it covers."""
        o = self.origin
        if a < o:
            a = o
        if b <= a:
            return
        last = self.index(b)  # coarsens first if needed
        w = self.width
        if int((a - o) // w) == last:  # the usual case: one bucket
            c = self.cells[last]
            if c is None:
                c = self.cells[last] = _Cell()
            c.busy_s += _fx(b - a)
            return
        for i in range(self.index(a), last + 1):
            lo, hi = max(a, o + i * w), min(b, o + (i + 1) * w)
            if hi > lo:
                c = self.cells[i]
                if c is None:
                    c = self.cells[i] = _Cell()
                c.busy_s += _fx(hi - lo)

    def points(self, started_t: float) -> Series:
        """Per non-empty bucket: minutes since `started_t` and each series' mean (None = no reading)."""
        minutes: list[float] = []
        duty: list[float | None] = []
        output_tps: list[float | None] = []
        over: list[bool] = []
        guard: list[str | None] = []
        means: list[list[float | None]] = [[] for _ in SERIES]
        cpu_max: list[float | None] = []
        gpu_max: list[float | None] = []
        w = self.width
        for i, c in enumerate(self.cells):
            if c is None:
                continue
            minutes.append(round((self.origin + (i + 0.5) * w - started_t) / 60, 3))
            for k, column in enumerate(means):
                column.append(round(c.sums[k] / FIXED / c.counts[k], 1) if c.counts[k] else None)
            cpu_max.append(c.maxes[_CPU] if c.counts[_CPU] else None)
            gpu_max.append(c.maxes[_GPU] if c.counts[_GPU] else None)
            duty.append(round(100 * min(1.0, c.busy_s / FIXED / w), 1))
            output_tps.append(round(c.tokens / w, 1))
            over.append(c.over)
            guard.append([k for k, r in STATE_RANK.items() if r == c.guard][0])
        return {
            "bucket_s": w,
            "minutes": minutes,
            "duty_pct": duty,
            "output_tps": output_tps,
            "over": over,
            "guard": guard,
            "cpu_temp_c": means[_CPU],
            "gpu_temp_c": means[_GPU],
            "power_w": means[_POWER],
            "fan_rpm": means[_FAN],
            "gen_tps": means[_TPS],
            "cpu_temp_max_c": cpu_max,
            "gpu_temp_max_c": gpu_max,
        }


class _Hist:
    """The values of one series: exact counts of each value while there are at most HIST_KEYS
    distinct ones (a Counter, fed a timeline cell's readings at a time; sensors give one decimal, so
    a long log repeats a few hundred values), then counts of values rounded to a resolution, which
    doubles past HIST_KEYS keys. Binned once, or seen binned (`binned()`), the two are the same
    counts: with at most HIST_KEYS distinct values the resolution never doubled."""

    __slots__ = ("res", "base", "raw", "counts", "n", "total", "peak")

    def __init__(self, res: float) -> None:
        self.res = res
        self.base = res
        self.raw: Counter[float] | None = Counter()  # value -> readings, until binned (then None)
        # once binned: counts of round(value / res), the readings, their sum (1 / FIXED units), peak
        self.counts: dict[int, int] = {}
        self.n = 0
        self.total = 0
        self.peak = -math.inf

    def add(self, v: float) -> None:
        """Count `v` (a finite float)."""
        raw = self.raw
        if raw is not None:
            n = raw.get(v)
            if n is not None:
                raw[v] = n + 1
                return
            if len(raw) < HIST_KEYS:
                raw[v] = 1
                return
            self._bin()  # the binned counts one pass would hold now: none coarsened yet
        self.n += 1
        self.total += round(v * FIXED)
        if v > self.peak:
            self.peak = v
        k = round(v / self.res)
        counts = self.counts
        n = counts.get(k)
        if n is not None:
            counts[k] = n + 1
            return
        counts[k] = 1
        if len(counts) > HIST_KEYS:  # only a new key can take it past
            self.res *= 2
            merged: dict[int, int] = {}
            for key, n in self.counts.items():
                j = round(key / 2)
                merged[j] = merged.get(j, 0) + n
            self.counts = merged

    def add_many(self, values: list[float]) -> None:
        """`add` each of `values` (finite floats) in order: counted in one C-level pass while the
        exact counts stay within HIST_KEYS values, as one `add` at a time would count them."""
        raw = self.raw
        if raw is not None:
            raw.update(values)
            if len(raw) <= HIST_KEYS:
                return
            raw.subtract(values)  # one at a time, then: the counts past HIST_KEYS depend on order
            for v in [v for v, n in raw.items() if not n]:
                del raw[v]
        for v in values:
            self.add(v)

    def binned(self) -> tuple[dict[int, int], int, int, float]:
        """(counts, n, total, peak) at the resolution, whether or not binned yet."""
        raw = self.raw
        if raw is None:
            return self.counts, self.n, self.total, self.peak
        counts: dict[int, int] = {}
        res = self.res
        for v, n in raw.items():
            k = round(v / res)
            counts[k] = counts.get(k, 0) + n
        total = sum([round(v * FIXED) * n for v, n in raw.items()])
        return counts, sum(raw.values()), total, max(raw) if raw else -math.inf

    def _bin(self) -> None:
        self.counts, self.n, self.total, self.peak = self.binned()
        self.raw = None

    def join(self, later: _Hist) -> bool:
        """Add `later` (the same series over a later stretch of the log); False when the counts
        would depend on the order of the values (a resolution doubled, or would have)."""
        if self.raw is not None and later.raw is not None:
            add_counts(self.raw, later.raw)
            if len(self.raw) <= HIST_KEYS:
                return True
            self._bin()  # one pass binned them too, at some point: binned, the same counts
            return len(self.counts) <= HIST_KEYS
        for h in (self, later):
            if h.raw is not None:
                h._bin()
        if self.res != self.base or later.res != later.base:
            return False
        add_counts(self.counts, later.counts)
        self.n += later.n
        self.total += later.total
        self.peak = max(self.peak, later.peak)
        return len(self.counts) <= HIST_KEYS

    def describe(self) -> Histogram:
        counts, n, total, peak = self.binned()
        if not n:
            return {"n": 0, "mean": None, "p95": None, "peak": None, "resolution": self.res}
        rank = math.ceil(0.95 * n)  # nearest rank
        seen = 0
        p95 = None
        for k in sorted(counts):
            seen += counts[k]
            if seen >= rank:
                p95 = k * self.res
                break
        return {
            "n": n,
            "mean": _r(total / FIXED / n),
            "p95": _r(p95),
            "peak": _r(peak),
            "resolution": self.res,
        }


def energy_over(power: Sequence[tuple[float, float | None]], a: float, b: float) -> tuple[float, float]:
    """(joules, seconds covered) of the power readings `power` (in time order) over [a, b], each
    reading held up to MAX_GAP_S."""
    pt, w = power[-1]
    if pt < b and pt <= a:  # the usual case, a test shorter than a reading: the newest covers it
        if w is None:
            return 0.0, 0.0
        hi = min(b, pt + MAX_GAP_S)
        lo = max(pt, a)
        return (0.0 + w * (hi - lo), 0.0 + (hi - lo)) if hi > lo else (0.0, 0.0)  # as the loop sums
    pts: list[tuple[float, float | None]] = []
    for pt, w in reversed(power):
        if pt >= b:
            continue
        pts.append((pt, w))
        if pt <= a:
            break
    pts.reverse()
    joules = covered = 0.0
    for i, (pt, w) in enumerate(pts):
        if w is None:
            continue
        nxt = pts[i + 1][0] if i + 1 < len(pts) else b
        lo, hi = max(pt, a), min(nxt, b, pt + MAX_GAP_S)
        if hi > lo:
            joules += w * (hi - lo)
            covered += hi - lo
    return joules, covered


class _Judged(NamedTuple):
    """thermal.judge's verdicts on a reading, and what the time after it is credited to."""

    verdicts: dict[str, str]  # family -> verdict
    over: bool  # some family over a limit
    families: tuple[str, ...]  # the families judged (time known)
    over_families: tuple[str, ...]  # those over a limit (time over)


UNKNOWN = "unknown"  # a later stretch's guard state before its first thermal_guard event
MAX_EARLY = 4096  # a later stretch's request and result events kept until its first reading
_NO_REASONS: list[str] = []  # shared by every reading without GPU throttle reasons (never changed)
_PLAIN = (float, type(None))  # reading values _verdicts looks up as they are
MAX_JUDGED = 4096  # distinct judged readings remembered (a long log has a few hundred)
MAX_HELD = 4096  # readings whose values wait for `HardwareFold._settle` at most


def _bounded_add(names: dict[str, Any], key: str, value: Any) -> None:
    if key in names or len(names) < MAX_NAMES:
        names[key] = value


class LaterStretch:
    """What a fold over a later stretch of the log (report/split.py) cannot know of the stretch
    before it, kept for folds/hardware_join.py to settle when the two are joined."""

    __slots__ = (
        "early",
        "early_overflow",
        "first_sensing",
        "first_judged",
        "first_stretch_open",
        "provisional",
        "first_stretch_tests",
        "boundary",
        "first_guard_t",
        "power_head",
        "min_id",
        "results",
        "problem",
    )

    def __init__(self) -> None:
        # request and result events before the first reading (the earlier stretch's readings decide
        # what they count for); past MAX_EARLY only counted as overflow
        self.early: list[dict[str, Any]] = []
        self.early_overflow = False
        self.first_sensing: bool | None = (
            None  # whether the first reading made the fold sensing (None: none came)
        )
        self.first_judged: tuple[float, bool] | None = None  # (t, over) of the first judged reading
        self.first_stretch_open = True  # closing the first stretch is provisional: it may continue
        self.provisional: tuple[float, float, int] | None = None  # the first stretch (start, end, busy)
        self.first_stretch_tests: list[tuple[float, float]] = []  # tests begun before it: (start, end)
        # in order: results of tests begun before the first reading (their requests may be in the
        # earlier stretch, their energy needs its power readings) or whose requests this stretch
        # did not see: (test_id, t, start, span, model key, tokens, energy known, covered, readings
        # so far); and results not folded (a bad time or length), which still used up their
        # test's requests: (test_id, None, ...)
        self.boundary: list[tuple[Any, float | None, float, float, str, int, bool, bool, int]] = []
        # the smallest test_id of the results not in `boundary`: a test the earlier stretch left
        # unfinished must have a smaller id, or its result may be among them (the join refuses)
        self.min_id: int | None = None
        self.results = [0, 0]  # results whose test's requests were taken, and of those recorded
        self.first_guard_t: float | None = None  # before it the guard state is the earlier stretch's
        self.power_head: list[tuple[float, float | None]] = []  # the first MAX_POWER_POINTS readings
        self.problem: str | None = None  # why the two stretches cannot be joined exactly

    def keep_early(self, ev: dict[str, Any]) -> bool:
        """A request or result the fold does not read (not sensing), kept while no reading came;
        False once there is no more use in handing them over (a reading came, or too many)."""
        early = self.early
        if self.first_sensing is not None:
            return False
        if len(early) < MAX_EARLY:
            early.append(ev)
            return True
        self.early_overflow = True
        return False

    def note_id(self, test_id: Any) -> None:
        """A result not kept in `boundary`: its test_id bounds the earlier stretch's unfinished ones."""
        self.results[1] += 1
        if type(test_id) is not int:
            self.problem = "a test id that is not a whole number"
        elif self.min_id is None or test_id < self.min_id:
            self.min_id = test_id

    def discard(self, test_id: Any) -> None:
        """A result not folded (a bad time or length): it used up its test's requests all the same."""
        self.results[1] += 1
        self.boundary.append((test_id, None, 0.0, 0.0, "", 0, False, False, 0))

    def on_reading(self, t: float, power: float | None, sensing: bool) -> None:
        if self.first_sensing is None:
            self.first_sensing = sensing
        if len(self.power_head) < MAX_POWER_POINTS:
            self.power_head.append((t, power))


class HardwareFold:
    """Feed events in log order through the on_* methods; `snapshot()` gives the section's data."""

    KINDS: ClassVar[dict[str, str]] = {
        "run_started": "on_run_started",
        "telemetry": "on_telemetry",
        "thermal_guard": "on_guard",
        "request": "feed_request",
        "scenario_result": "on_result",
    }

    def __init__(self, *, later: bool = False) -> None:
        self.limits, self.limits_source = Thermal(), "defaults (no run_started event)"
        self._runs_started = 0
        self._thermal_reasons = frozenset(self.limits.gpu_throttle_reasons)
        self.readings = 0
        # Tests are folded (busy time, tokens, energy) only from the first hardware reading on: with
        # no temperature, power, fan or pressure reading there is nothing to set them against, and
        # skipping them keeps the report of a sensorless machine's long log fast.
        self.sensing = False
        self._origin: float | None = None
        self._started_t: float | None = None
        self._first_reading_t: float | None = None
        self._last_reading_t: float | None = None
        self._last_t: float | None = None
        self.timeline: Timeline | None = None
        self.hists = {
            "cpu_temp_c": _Hist(0.1),
            "gpu_temp_c": _Hist(0.1),
            "power_w": _Hist(0.1),
            "fan_rpm": _Hist(1.0),
        }
        self.family_readings = dict.fromkeys(FAMILIES, 0)
        self.unavailable: dict[str, str] = {}  # family -> the latest reason given
        self.sources: dict[str, dict[str, None]] = {f: {} for f in FAMILIES}
        # sums below are ints of 1 / FIXED units (see FIXED)
        self.time_known = dict.fromkeys(LIMIT_FAMILIES, 0)
        self.time_over = dict.fromkeys(LIMIT_FAMILIES, 0)
        self.time_any_over = 0
        self.pressure_time: dict[str, int] = {}
        self.gpu_reasons: dict[str, list[int]] = {}  # reason -> [readings, seconds (1 / FIXED)]
        self.cpu_throttle: dict[str, list[int]] = {}  # counter -> [last value, total increase]
        self.energy_j = 0
        self.energy_s = 0
        self._power: deque[tuple[float, float | None]] = deque(maxlen=MAX_POWER_POINTS)
        self._prev: tuple[float, _Judged, float | None, str | None, list[str]] | None = None
        self._judged: dict[tuple[Any, ...], _Judged] = {}  # a reading's judged values -> its verdicts
        self._family_verdicts: dict[tuple[str, Any], dict[str, str]] = {}  # (key, value) -> judge's
        self._by_verdicts: dict[tuple[tuple[str, str], ...], _Judged] = {}  # verdicts -> _Judged
        self._hist_list = [self.hists[name] for name in SERIES[:_TPS]]  # by series index
        # The readings' values not yet in their timeline cell's sums and the histograms, by series
        # (`_settle`): a reading only appends its values, and a cell's are added up in C-level passes
        # when the readings move to another cell, or MAX_HELD readings on. Those values were all
        # read in the cell of time `_held_t` (a cell can only merge with others, never split).
        self._held: tuple[list[float], ...] = ([], [], [], [])
        self._held_n = 0  # readings since the last _settle
        self._held_t = 0.0
        self._held_i, self._held_w = -1, 0.0  # the cell's index, and the timeline's width then
        self._pending: dict[Any, list[Any]] = {}  # test_id -> [output tokens, sum gen_tps (FIXED), n]
        self.per_model: dict[
            str, list[int]
        ] = {}  # key -> [joules, seconds (1 / FIXED), tokens, covered, uncovered]
        self.busy_s = 0
        self.tests = 0
        # the guard
        self.guard_state = UNKNOWN if later else OK
        self._guard_since: float | None = None
        self.guard_time = dict.fromkeys([*STATE_RANK, UNKNOWN] if later else STATE_RANK, 0)
        self.guard_busy = dict.fromkeys([*STATE_RANK, UNKNOWN] if later else STATE_RANK, 0)
        self.guard_entries = dict.fromkeys(STATE_RANK, 0)
        self.guard_events = 0
        self.guard_history: deque[dict[str, Any]] = deque(maxlen=MAX_HISTORY)
        # stretches under the limits
        self._stretch: list[Any] | None = None  # [start, last judged t, busy (1 / FIXED)]
        self.longest: tuple[float, int] | None = None  # (seconds, busy seconds in 1 / FIXED)
        self.best: tuple[float, float] | None = None  # (duty, seconds) over stretches >= SUSTAIN_MIN_S
        self.stretches = 0
        self._evicted = 0  # tests dropped from _pending unfinished
        self._readings_done = 0  # readings folded to the end (one that raised partway is not)
        self._pending_peak = 0  # the most tests _pending held at once
        self._throttle_first: dict[str, int] = {}  # each throttle counter's first value
        # A later stretch of the log (report/split.py) records what depends on the stretch before it,
        # for folds/hardware_join.py to settle: see LaterStretch.
        self.later = LaterStretch() if later else None
        # what a request or result not folded (not sensing) is handed to: the later stretch's
        # record until its first reading, or nothing (the usual case: one attribute test an event)
        self._keep_early: Callable[[dict[str, Any]], bool] | None = (
            self.later.keep_early if self.later else None
        )

    # -- time ----------------------------------------------------------------------------------------
    def _time(self, t: float) -> Timeline:
        tl = self.timeline
        if tl is None:
            origin = self._origin if self._origin is not None else t
            tl = self.timeline = Timeline(min(origin, t))
        if self._guard_since is None:
            self._guard_since = tl.origin
        self._last_t = t if self._last_t is None or t > self._last_t else self._last_t
        return tl

    # -- events ---------------------------------------------------------------------------------------
    def on_run_started(self, ev: dict[str, Any]) -> None:
        self._runs_started += 1
        self.limits, self.limits_source = limits_from_settings(ev.get("settings"))
        self._thermal_reasons = frozenset(self.limits.gpu_throttle_reasons)
        self._judged.clear()  # judged against the old limits
        self._family_verdicts.clear()
        self._by_verdicts.clear()
        t = _num(ev.get("t"))
        if t is not None:
            self._started_t = t
            if self.timeline is None:
                self._origin = t

    def on_telemetry(self, ev: dict[str, Any]) -> None:
        """One reading: the time since the previous one, then what this one read.

        Once per reading of a log that can hold hundreds of thousands, so written for speed: each
        field read once, a finite float taken without a call, the verdicts looked up by the values
        judge reads (`_verdicts`), the timeline cell found once.
        """
        get = ev.get
        t = get("t")
        if type(t) is not float or not -MAX_VALUE < t < MAX_VALUE:  # not a usual float: _num decides
            t = _num(t)
            if t is None:
                return
        tl = self.timeline
        if tl is None or self._guard_since is None:
            tl = self._time(t)
        elif self._last_t is None or t > self._last_t:
            self._last_t = t
        self.readings += 1
        later = self.later
        if self._first_reading_t is None:
            self._first_reading_t = t
        self._last_reading_t = t
        if self._prev is not None:
            self._hold_previous(t)
        una = get("unavailable")
        if una is not None and isinstance(una, dict):
            for fam, why in una.items():
                _bounded_add(self.unavailable, str(fam), str(why)[:200])
        cpu_raw, gpu_raw, power_raw, fan_raw = (
            get("cpu_temp_c"),
            get("gpu_temp_c"),
            get("power_w"),
            get("fan_rpm"),
        )
        pressure, reasons_raw = get("thermal_pressure"), get("gpu_throttle_reasons")
        # _num, its usual cases first: a finite float as it is, nothing as nothing
        cpu = cpu_raw if type(cpu_raw) is float and -MAX_VALUE < cpu_raw < MAX_VALUE else _num(cpu_raw)
        gpu = None if gpu_raw is None else _num(gpu_raw)
        power = power_raw if type(power_raw) is float and -MAX_VALUE < power_raw < MAX_VALUE else _num(power_raw)
        fan: float | None = None
        if type(fan_raw) is int and -MAX_VALUE < fan_raw < MAX_VALUE:  # rpm, a whole number usually
            fan = float(fan_raw)
        elif fan_raw is not None:
            fan = _num(fan_raw)
        if not self.sensing and (
            cpu is not None
            or gpu is not None
            or power is not None
            or fan is not None
            or pressure is not None
            or reasons_raw
        ):
            self.sensing = True
        if later is not None:
            later.on_reading(t, power, self.sensing)
            self._keep_early = None
        i = int((t - tl.origin) // tl.width)  # the timeline cell: the one before, usually
        cell = tl.last if i == tl.last_i and tl.last is not None else tl.cell(t)
        if i != self._held_i or tl.width != self._held_w or self._held_n >= MAX_HELD:
            self._settle()  # the values held were read in another cell
            self._held_i, self._held_w, self._held_t = i, tl.width, t
        held = self._held
        if cpu is not None:
            held[_CPU].append(cpu)
        if gpu is not None:
            held[_GPU].append(gpu)
        if power is not None:
            held[_POWER].append(power)
        if fan is not None:
            held[_FAN].append(fan)
        self._held_n += 1
        temps, fans = cpu is not None or gpu is not None, fan is not None
        throttle = get("cpu_throttle")
        if (
            pressure is None
            and throttle is None
            and get("temps") is None
            and get("fans") is None
            and get("power") is None
            and get("gpus") is None
        ):  # summary values only: nothing names a source, the families are counted
            readings = self.family_readings
            if temps:
                readings["temps"] += 1
            if fans:
                readings["fans"] += 1
            if power is not None:
                readings["power"] += 1
        else:
            self._families(ev, temps, power is not None, fans)
            if throttle is not None:
                self._counters(ev)
        judged = None  # _verdicts' lookup, for the usual reading (no pressure, no throttle reasons)
        if pressure is None and reasons_raw is None and type(cpu_raw) in _PLAIN and type(gpu_raw) in _PLAIN:
            judged = self._judged.get((cpu_raw, gpu_raw, None, None))
        if judged is None:
            judged = self._verdicts(cpu_raw, gpu_raw, pressure, reasons_raw)
        over = judged.over
        if over:
            cell.over = True
        if self.guard_state == UNKNOWN:  # a later stretch before its first guard change
            cell.early = True
        else:
            rank = STATE_RANK[self.guard_state]
            if rank > cell.guard:
                cell.guard = rank
        if judged.verdicts:
            st = self._stretch
            if later is None and st is not None and not over and t - st[1] <= MAX_GAP_S:
                st[1] = t  # _stretch_step's usual case: the stretch goes on
            else:
                self._stretch_step(t, over)
        if pressure is None and reasons_raw is None:
            level, reasons = None, _NO_REASONS
        else:
            level = None if pressure is None else pressure_level(pressure)
            reasons = [str(r) for r in reasons_raw] if type(reasons_raw) is list else _NO_REASONS
            for r in reasons:
                rec = self.gpu_reasons.get(r)
                if rec is None and len(self.gpu_reasons) < MAX_NAMES:
                    rec = self.gpu_reasons[r] = [0, 0]
                if rec is not None:
                    rec[0] += 1
        self._power.append((t, power))
        self._prev = (
            t,
            judged,
            power,
            None if level is None else THERMAL_PRESSURE_LEVELS[level],
            reasons,
        )
        self._readings_done += 1

    def _settle(self) -> None:
        """Add the values held (see `_held`) to their cell's sums, counts and peaks and to the
        histograms: the figures of adding them one reading at a time (int sums, the first peak)."""
        if not self._held_n:
            return
        self._held_n = 0
        assert self.timeline is not None  # a reading made one
        cell = self.timeline.cell(self._held_t)
        sums, counts, maxes = cell.sums, cell.counts, cell.maxes
        for idx, values in enumerate(self._held):
            if values:
                sums[idx] += sum(map(round, map(FIXED.__mul__, values)))
                counts[idx] += len(values)
                top = max(values)
                if top > maxes[idx]:
                    maxes[idx] = top
                self._hist_list[idx].add_many(values)
                values.clear()

    def _verdicts(self, cpu: Any, gpu: Any, pressure: Any, reasons: Any) -> _Judged:
        """thermal.judge's verdicts on a reading (the guard's rule), looked up by the values it
        reads (READING_KEYS, passed in as read from the reading), and for a new set of them family by family
        (`_family_verdict`): a long log repeats a few hundred temperatures, so judge runs once per
        distinct value."""
        # bools compare equal to 1 and 0 but judge reads no temperature from them: not looked up
        key = None
        if type(cpu) is not bool and type(gpu) is not bool:
            key = (cpu, gpu, pressure, tuple(reasons) if type(reasons) is list else reasons)
            try:
                found = self._judged.get(key)
            except TypeError:  # a value that cannot be a key (a list in the reasons, say)
                found = key = None
            if found is not None:
                return found
        verdicts: dict[str, str] = {}
        for name, value in zip(READING_KEYS, (cpu, gpu, pressure, reasons), strict=True):
            if value is not None:  # judge reads nothing from a missing value
                verdicts.update(self._family_verdict(name, value))
        vkey = tuple(verdicts.items())
        judged = self._by_verdicts.get(vkey)
        if judged is None:
            judged = _Judged(
                verdicts,
                any(v in ("over", "pause") for v in verdicts.values()),
                tuple(verdicts),
                tuple(f for f, v in verdicts.items() if v in ("over", "pause")),
            )
            if len(self._by_verdicts) < MAX_JUDGED:
                self._by_verdicts[vkey] = judged
        if key is not None and len(self._judged) < MAX_JUDGED:
            self._judged[key] = judged
        return judged

    def _family_verdict(self, name: str, value: Any) -> dict[str, str]:
        """judge's verdict on one value of a reading (its families each read one: READING_KEYS),
        looked up by the value. A machine with a GPU pairs a few hundred CPU temperatures with a few
        hundred GPU ones, so whole readings seldom repeat, but each value does."""
        key = None
        if type(value) is not bool:  # True == 1, but judge reads no temperature from a bool
            try:
                key = (name, tuple(value) if type(value) is list else value)
                found = self._family_verdicts.get(key)
            except TypeError:  # a value that cannot be a key (a list in the reasons, say)
                found = key = None
            if found is not None:
                return found
        got = {f: v for f, (v, _) in judge({name: value}, self.limits, self._thermal_reasons, explain=False).items()}
        if key is not None and len(self._family_verdicts) < MAX_JUDGED:
            self._family_verdicts[key] = got
        return got

    def _hold_previous(self, t: float) -> None:
        """Credit the time since the previous reading (at most MAX_GAP_S) to what it read."""
        prev = self._prev
        if prev is None:
            return
        pt, judged, power, pressure, reasons = prev
        dt = t - pt
        if dt <= 0:
            return
        if dt > MAX_GAP_S:
            dt = MAX_GAP_S
        fdt = round(dt * FIXED)
        known, over = self.time_known, self.time_over
        for fam in judged.families:
            known[fam] += fdt
        if judged.over_families:
            for fam in judged.over_families:
                over[fam] += fdt
            self.time_any_over += fdt
        if power is not None:
            self.energy_j += round(power * dt * FIXED)
            self.energy_s += fdt
        if pressure is not None:
            self.pressure_time[pressure] = self.pressure_time.get(pressure, 0) + fdt
        for r in reasons:
            rec = self.gpu_reasons.get(r)
            if rec is not None:
                rec[1] += fdt

    def _families(self, ev: dict[str, Any], temps: bool, power: bool, fans: bool) -> None:
        get = ev.get
        has = (  # in FAMILIES order
            temps or bool(get("temps")),
            fans or bool(get("fans")),
            power or bool(get("power")),
            bool(get("gpus")),
            get("thermal_pressure") is not None,
            isinstance(get("cpu_throttle"), dict),
        )
        lists = _FAMILY_LISTS
        for fam, present in zip(FAMILIES, has, strict=True):
            if not present:
                continue
            self.family_readings[fam] += 1
            src = self.sources[fam]
            if len(src) >= MAX_NAMES:
                continue
            if fam in lists:
                items = get(lists[fam])
                for item in items if isinstance(items, list) else ():
                    if isinstance(item, dict):
                        label = str(item.get("source") or "?")
                        name = item.get("sensor") or item.get("name")
                        if fam in ("power", "gpu") and name:
                            label = f"{name} ({label})"
                        _bounded_add(src, label, None)
                if fam == "power":  # a GPU's own power reading is summed into power_w too
                    gpus = get("gpus")
                    for g in gpus if isinstance(gpus, list) else ():
                        if isinstance(g, dict) and g.get("power_w") is not None:
                            _bounded_add(src, f"{g.get('name') or 'gpu'} ({g.get('source') or '?'})", None)
            elif fam == "thermal_pressure":
                _bounded_add(src, str(get("thermal_pressure_source") or "?"), None)
            else:
                _bounded_add(src, str(get("cpu_throttle", {}).get("source") or "?"), None)

    def _counters(self, ev: dict[str, Any]) -> None:
        ct = ev.get("cpu_throttle")
        if not isinstance(ct, dict):
            return
        for name in ("core_events", "package_events"):
            v = ct.get(name)
            if not isinstance(v, int) or isinstance(v, bool):
                continue
            rec = self.cpu_throttle.get(name)
            if rec is None:
                self.cpu_throttle[name] = [v, 0]
                self._throttle_first.setdefault(name, v)
            else:
                rec[1] += v - rec[0] if v >= rec[0] else v  # a smaller value: the counter restarted
                rec[0] = v

    def _stretch_step(self, t: float, over: bool) -> None:
        later = self.later
        if later is not None and later.first_judged is None:
            later.first_judged = (t, over)
            later.first_stretch_open = not over
        s = self._stretch
        if s is not None and (over or t - s[1] > MAX_GAP_S):
            end = t if over else s[1] + MAX_GAP_S  # a gap in the readings ends the stretch too
            self._close_stretch(s[0], end, s[2])
            s = self._stretch = None
        if over:
            return
        if s is None:
            self._stretch = [t, t, 0]
        else:
            s[1] = t

    def _close_stretch(self, start: float, end: float, busy: int) -> None:
        later = self.later
        if later is not None and later.first_stretch_open:  # it may continue the earlier stretch's
            later.first_stretch_open = False
            later.provisional = (start, end, busy)
            return
        length = end - start
        if length <= 0:
            return
        self.stretches += 1
        if self.longest is None or length > self.longest[0]:
            self.longest = (length, busy)
        if length >= SUSTAIN_MIN_S:
            duty = min(1.0, busy / FIXED / length)
            if self.best is None or duty > self.best[0]:
                self.best = (duty, length)

    def feed_request(self, ev: dict[str, Any]) -> None:
        """A successful request's output tokens and streamed speed, for the energy figures."""
        get = ev.get
        if self.sensing:
            if get("ok"):  # a cancelled request is never ok; nothing to do before readings
                self.on_request(
                    get("test_id"), get("output_tokens"), get("gen_tps") if get("stream") else None
                )
        elif self._keep_early is not None and not self._keep_early(ev):
            self._keep_early = None

    def on_request(self, test_id: Any, output_tokens: Any, stream_tps: Any) -> None:
        """A successful request (the aggregate passes what it already read): its output tokens and,
        when streamed, its tokens/s, kept with its test until the test ends.

        This runs for most events of a log, so it only adds to its test's record; the timeline
        and the energy figures are updated once per test, in on_result.
        """
        if not self.sensing:
            return
        rec = self._pending.get(test_id)
        if rec is None:
            pending = self._pending
            if len(pending) >= MAX_PENDING:
                pending.pop(next(iter(pending)))  # a test that never reported a result
                self._evicted += 1
            rec = pending[test_id] = [0, 0, 0]
            if len(pending) > self._pending_peak:
                self._pending_peak = len(pending)
        if output_tokens is not None:
            rec[0] += output_tokens
        if stream_tps is not None:
            rec[1] += round(stream_tps * FIXED)
            rec[2] += 1

    def on_result(self, ev: dict[str, Any]) -> None:
        """A test ended: its span is busy time, its energy and tokens go to its model (once per test,
        so written for speed: a log has about one result per two requests)."""
        if not self.sensing:
            if self._keep_early is not None and not self._keep_early(ev):
                self._keep_early = None
            return
        get: Callable[[str], Any] = ev.get
        pending = self._pending.pop(get("test_id"), None)
        if self.later is not None:  # a result that raises before it is recorded: the join refuses
            self.later.results[0] += 1
        t, ms = get("t"), get("duration_ms")
        try:  # float() as the rule, skipped for what is a float already
            t = t if type(t) is float else float(t)
            span = (ms if type(ms) is float else float(ms)) / 1000.0
        except (TypeError, ValueError):
            span = -1.0
        if not (0.0 <= span < 1e7 and -1e12 < t < 1e12):  # also NaN and infinities
            if self.later is not None:
                self.later.discard(get("test_id"))
            return
        tl = self.timeline if self.timeline is not None and self._last_t is not None else self._time(t)
        if t > self._last_t:
            self._last_t = t
        i = int((t - tl.origin) // tl.width)
        if not 0 <= i < tl.cap:  # before the first bucket, or past the last: Timeline.index decides
            i = tl.index(t)
        cell = tl.cells[i]
        if cell is None:
            cell = tl.cells[i] = _Cell()
        tokens = 0
        if pending is not None:
            tokens, tps_sum, tps_n = pending
            cell.tokens += tokens
            cell.sums[_TPS] += tps_sum
            cell.counts[_TPS] += tps_n
        a = t - span
        fspan = round(span * FIXED)
        if a >= tl.origin + i * tl.width:  # the usual case: the test fits in its end's bucket
            cell.busy_s += fspan
        else:
            tl.add_busy(a, t)
        self.tests += 1
        self.busy_s += fspan
        self.guard_busy[self.guard_state] += fspan
        later = self.later
        s = self._stretch
        if s is not None:
            s[2] += round(max(0.0, t - max(a, s[0])) * FIXED)
            if later is not None and a < s[0] and later.first_stretch_open:
                later.first_stretch_tests.append((a, t))
        elif later is not None and later.first_judged is None:
            later.problem = "a test between the first reading and the first judged one"
        key = get("key") or f"{get('provider')}/{get('model')}"
        rec = self.per_model.get(key)
        if rec is None:
            if len(self.per_model) >= MAX_MODELS:
                return  # a later stretch with a full table is not joined
            rec = self.per_model[key] = [0, 0, 0, 0, 0]
        if later is not None:
            if pending is None or a < self._first_reading_t:
                # its requests may be in the earlier stretch, its start before this one's readings
                known = a >= self._first_reading_t
                covered = self._credit(rec, a, t, span, tokens) if known else False
                later.boundary.append(
                    (get("test_id"), t, a, span, key, tokens, known, covered, self.readings)
                )
                later.results[1] += 1
                return
            later.note_id(get("test_id"))
        self._credit(rec, a, t, span, tokens)

    def _credit(self, rec: list[int], a: float, t: float, span: float, tokens: int) -> bool:
        """A test's energy and tokens to its model's record when power readings cover its span
        [a, t] (True), else counted as a test without power."""
        if self._power and span > 0:
            joules, covered = energy_over(self._power, a, t)
            if covered >= span * 0.999:
                rec[0] += round(joules * FIXED)
                rec[1] += round(span * FIXED)
                rec[2] += tokens
                rec[3] += 1
                return True
        rec[4] += 1
        return False

    def on_guard(self, ev: dict[str, Any]) -> None:
        t = _num(ev.get("t"))
        state = ev.get("state")
        if t is None or state not in STATE_RANK:
            return
        later = self.later
        if later is not None and later.first_guard_t is None:
            later.first_guard_t = t
            if later.first_sensing is None:
                later.problem = "a guard change before the first reading"
        tl = self._time(t)
        since = self._guard_since if self._guard_since is not None else t
        self.guard_time[self.guard_state] += round(max(0.0, t - since) * FIXED)
        self._guard_since = t
        self.guard_state = state
        self.guard_events += 1
        self.guard_entries[state] += 1
        cell = tl.cell(t)
        cell.guard = max(cell.guard, STATE_RANK[state])
        self.guard_history.append(
            {
                "t": t,
                "state": state,
                "previous": prev if type(prev := ev.get("previous")) is str else None,  # values, never
                "cap_pct": cap if type(cap := ev.get("cap_pct")) in (int, float) else None,  # structures
                "reason": str(ev.get("reason") or "")[:200],
            }
        )

    # -- joining (report/split.py) ---------------------------------------------------------------------
    @property
    def untouched(self) -> bool:
        """Nothing has been folded: no run_started, reading or guard change (requests and tests are
        not folded before a reading)."""
        return self.readings == 0 and self.guard_events == 0 and self._runs_started == 0

    def seed(self, run_started: dict[str, Any]) -> None:
        """A later stretch's fold starts from the run's run_started (the log's first line): the
        limits the readings are judged against, and the start its timeline counts from."""
        self.on_run_started(run_started)
        self._runs_started = 0

    def joined(self, later: HardwareFold) -> HardwareFold | str:
        """A new fold: this one with the fold of the stretch of the log after it joined on, as one
        fold would have read both; or why that cannot be exact (folds/hardware_join.py). Neither
        fold's figures are changed."""
        self._settle()
        later._settle()
        return _join(self, later)

    def adopt(self, joined: HardwareFold) -> None:
        """Become `joined` (from `joined()`), keeping this object: the aggregate's routes hold it."""
        self.__dict__.update(joined.__dict__)

    # -- reading ---------------------------------------------------------------------------------------
    def snapshot(self, end_t: float | None = None) -> Hardware:
        """The section's data (JSON-able); `end_t` is the run's end (the last event by default)."""
        self._settle()
        end = end_t if end_t is not None else self._last_t
        started = self._started_t if self._started_t is not None else self._origin
        if started is None and self.timeline is not None:
            started = self.timeline.origin
        u = FIXED  # sums are kept in 1 / FIXED units
        guard_time = {k: v / u for k, v in self.guard_time.items()}
        if self._guard_since is not None and end is not None:
            guard_time[self.guard_state] += max(0.0, end - self._guard_since)
        run_s = (end - started) if end is not None and started is not None else None
        families: dict[str, Family] = {}
        for fam in FAMILIES:
            n = self.family_readings[fam]
            families[fam] = {
                "readings": n,
                "sources": list(self.sources[fam]),
                "unavailable": self.unavailable.get(fam),
            }
        lim = self.limits
        temps: dict[str, Temperature] = {}
        for fam, key, limit in (
            ("cpu", "cpu_temp_c", lim.cpu_temp_limit_c),
            ("gpu", "gpu_temp_c", lim.gpu_temp_limit_c),
        ):
            temps[fam] = {
                **self.hists[key].describe(),
                "limit_c": limit,
                "time_over_s": _rx(self.time_over[fam]),
                "time_known_s": _rx(self.time_known[fam]),
            }
        models: dict[str, ModelEnergy] = {
            key: {
                "energy_j": _r(j),
                "energy_wh": _r(j / 3600, 3),
                "seconds": _r(s),
                "output_tokens": int(tok) if abs(tok) < 1 << 63 else float(tok),  # JSON ints are 64-bit
                "j_per_token": _r(j / tok, 3) if tok > 0 else None,
                "mean_power_w": _r(j / s) if s > 0 else None,
                "tests_with_power": int(cov),
                "tests_without_power": int(unc),
            }
            for key, (j, s, tok, cov, unc) in (
                (k, (r[0] / u, r[1] / u, *r[2:])) for k, r in self.per_model.items()
            )
        }
        stretch = self._stretch
        longest, best, stretches = self.longest, self.best, self.stretches
        if stretch is not None:  # the stretch still open at the end of the log
            length = stretch[1] - stretch[0]
            if length > 0:
                stretches += 1
                if longest is None or length > longest[0]:
                    longest = (length, stretch[2])
                if length >= SUSTAIN_MIN_S and (best is None or stretch[2] / u / length > best[0]):
                    best = (min(1.0, stretch[2] / u / length), length)
        intervened = self.guard_entries["reduced"] + self.guard_entries["paused"] > 0
        known = any(v > 0 for v in self.time_known.values()) or any(
            self.family_readings[f] for f in ("temps", "thermal_pressure")
        )
        first_read, last_read = self._first_reading_t, self._last_reading_t
        return {
            "readings": self.readings,
            "first_reading_t": self._first_reading_t,
            "last_reading_t": self._last_reading_t,
            "mean_interval_s": _r((last_read - first_read) / (self.readings - 1), 2)
            if self.readings > 1 and first_read is not None and last_read is not None
            else None,
            "families": families,
            "limits": {**dataclasses.asdict(lim), "gpu_throttle_reasons": list(lim.gpu_throttle_reasons)},
            "limits_source": self.limits_source,
            "temperatures": temps,
            "power_w": self.hists["power_w"].describe(),
            "fan_rpm": self.hists["fan_rpm"].describe(),
            "over_limits": {
                "time_over_s": {f: _rx(v) for f, v in self.time_over.items()},
                "time_known_s": {f: _rx(v) for f, v in self.time_known.items()},
                "time_any_over_s": _rx(self.time_any_over),
            },
            "thermal_pressure": {
                "time_s": {
                    k: _rx(v)
                    for k, v in sorted(
                        self.pressure_time.items(), key=lambda kv: THERMAL_PRESSURE_LEVELS.index(kv[0])
                    )
                },
                "limit": lim.pressure_limit,
            },
            "gpu_throttle": {
                r: {"readings": int(n), "time_s": _rx(s), "thermal": r in lim.gpu_throttle_reasons}
                for r, (n, s) in sorted(self.gpu_reasons.items())
            },
            "cpu_throttle": {name: total for name, (_, total) in self.cpu_throttle.items()} or None,
            "guard": {
                "enabled": lim.enabled,
                "intervened": intervened,
                "changes": self.guard_events,
                "entries": dict(self.guard_entries),
                "time_s": {k: _r(v) for k, v in guard_time.items()},
                "duty_pct": {  # tests are folded only once a hardware reading exists (see sensing)
                    k: _r(100 * self.guard_busy[k] / u / guard_time[k])
                    if guard_time[k] > 0 and self.sensing
                    else None
                    for k in STATE_RANK
                },
                "state_at_end": self.guard_state,
                "history": list(self.guard_history),
            },
            "energy": {
                "total_j": _rx(self.energy_j) if self.energy_s > 0 else None,
                "covered_s": _rx(self.energy_s),
                "mean_power_w": _r(self.energy_j / self.energy_s) if self.energy_s > 0 else None,
                "per_model": models,
            },
            "sustained": {
                "readings_known": bool(known),
                "exceeded": self.time_any_over > 0 or intervened,
                "run_s": _r(run_s),
                "busy_s": _rx(self.busy_s) if self.sensing else None,
                "run_duty_pct": _r(100 * self.busy_s / u / run_s) if run_s and self.sensing else None,
                "stretches": stretches,
                "longest_s": _r(longest[0]) if longest else None,
                "longest_duty_pct": _r(100 * min(1.0, longest[1] / u / longest[0])) if longest else None,
                "best_duty_pct": _r(100 * best[0]) if best else None,
                "best_s": _r(best[1]) if best else None,
                "min_stretch_s": SUSTAIN_MIN_S,
            },
            "series": self.timeline.points(started if started is not None else self.timeline.origin)
            if self.timeline is not None
            else None,
            "methods": dict(METHODS),
        }


def _join(first: HardwareFold, later: HardwareFold) -> HardwareFold | str:
    from soaktui.report.folds.hardware_join import join  # it builds on this module

    return join(first, later)


__all__ = [
    "BUCKETS",
    "MAX_GAP_S",
    "METHODS",
    "SUSTAIN_MIN_S",
    "HardwareFold",
    "Timeline",
    "limits_from_settings",
]
