"""The report's folds: one per section, each reading the event kinds it declares.

A fold keeps a compact state (counters, arrays of floats, bounded examples) fed one event at a
time, and gives its part of the report snapshot at any moment. `RunAggregate`
(report/aggregate.py) routes each event to the folds that declared its kind (`KINDS`: event kind ->
method name) and assembles their parts into the snapshot; `soaktui report`, the live summary and the
dashboard all use the same folds, so a figure means the same thing everywhere. A fold never raises
on an odd field: the aggregate counts the event as malformed and goes on.

A fold whose method reads only some scenarios' events of a kind may say so (`ONLY_SCENARIOS`: event
kind -> the scenario names its method reads); the aggregate then skips the call for other
scenarios. The method must return at once, untouched, for any other `scenario` (it still checks).
"""
