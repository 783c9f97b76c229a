"""How fast the tool-call detector is: it runs on every answer of a tool-calling scenario, and on
answers of any length, so it must keep up with the engine and never stall on a long reply.

Prints: detections per second over the mixed corpus of tests/data/toolcalls/corpus.json (every
format, positive and negative cases, with native calls), MB/s on 100 kB of prose that mentions a
tool, the slowest of a set of adversarial 100 kB texts (unclosed markers, deep brackets,
unterminated JSON) as MB/s, and detect + score (BFCL-style, JSON Schema validation included) per
second over the tool prompt bank, one right and one wrong answer per prompt.

    .venv/bin/python bench/toolcall_detect.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from soaktui.toolcalls import detect
from soaktui.toolcalls.prompts import example_arguments, shipped_bank
from soaktui.toolcalls.scoring import score_calls

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "toolcalls" / "corpus.json"
SIZE = 100_000
ADVERSARIAL = [
    '{"a": [1, {"b": "c"}], "name": "x", ',
    "[[[[{{{{((((",
    '{"name": "get_weather", "arguments": {"city": "',
    "<tool_call>{",
    "[TOOL_CALLS]get_weather[ARGS]",
    '```json\n{"name": 1}\n',
    "[get_weather(city=",
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>x\n",
    ">>>get_weather\n{",
    '"\\"\\"\\"',
]
PROSE = (
    "The service answered within its budget for most of the night; operators can call get_weather "
    "or search_logs when they need context, and tickets are filed by hand. "
)


def fill(unit: str) -> str:
    return (unit * (SIZE // len(unit) + 1))[:SIZE]


def rate(fn, seconds: float) -> float:
    """Calls of `fn` per second over about `seconds`."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    one, five, fifteen = os.getloadavg()
    print(f"load average {one:.2f} {five:.2f} {fifteen:.2f}, {os.cpu_count()} CPUs")

    cases = json.loads(CORPUS.read_text())["cases"]
    inputs = [(c["content"], c["native"], tuple(c["tool_names"])) for c in cases]
    found = sum(len(detect(*i).calls) for i in inputs)

    def corpus_pass() -> None:
        for i in inputs:
            detect(*i)

    passes = rate(corpus_pass, args.seconds)
    mean_chars = sum(len(c or "") for c, _, _ in inputs) / len(inputs)
    print(
        f"mixed corpus: {len(inputs)} answers (mean {mean_chars:.0f} chars), {found} calls found per pass: "
        f"{passes * len(inputs):,.0f} detections/s, {passes * found:,.0f} calls/s"
    )

    names = ("get_weather", "get_time", "search_logs", "create_ticket", "calculate_metrics")
    prose = fill(PROSE)
    per_s = rate(lambda: detect(prose, None, names), args.seconds)
    print(f"100 kB prose (prose_mention): {per_s * SIZE / 1e6:,.1f} MB/s ({1000 / per_s:.2f} ms per answer)")

    worst = None
    for unit in ADVERSARIAL:
        text = fill(unit)
        per_s = min(rate(lambda t=text: detect(t, None, names), args.seconds / 4),
                    rate(lambda t=text: detect(t), args.seconds / 4))  # fmt: skip
        if worst is None or per_s < worst[0]:
            worst = (per_s, unit)
    assert worst is not None
    print(
        f"100 kB adversarial, slowest of {len(ADVERSARIAL)}: {worst[0] * SIZE / 1e6:,.1f} MB/s "
        f"({1000 / worst[0]:.2f} ms per answer; unit {worst[1]!r})"
    )

    answers = []
    for p in shipped_bank().prompts:
        calls = [(c.name, example_arguments(c)) for c in p.calls] or [("get_weather", {"city": "Oslo"})]
        right = "".join(f"<tool_call>{json.dumps({'name': n, 'arguments': a})}</tool_call>" for n, a in calls)
        wrong = json.dumps({"name": calls[0][0], "parameters": {**calls[0][1], "unexpected": 1}})
        answers += [(right if p.calls else "No tool applies.", p), (wrong, p)]

    def score_pass() -> None:
        for text, p in answers:
            score_calls(detect(text, None, p.tools), p)

    passes = rate(score_pass, args.seconds)
    print(f"tool bank: {len(answers)} answers, detect + score: {passes * len(answers):,.0f} answers/s")


if __name__ == "__main__":
    main()
