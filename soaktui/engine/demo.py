"""`--demo`: the built-in simulator in compressed time, so a first run shows everything in a minute.

A new user's first run should fill every pane and give a report that decides something, not wait
minutes for one simulated model to write 10,000 tokens at a realistic 40 tokens/s. So the demo:

- runs the simulator SPEED times faster (every simulated delay divided by it: first tokens,
  generation, prompt processing, model loads), with the `flaky` personas: a mild fault mix (a few
  per cent of 429/500/503, dropped connections, malformed chunks, 3-second stalls) that still
  fills the error pane;
- asks for short answers and small documents (DEMO_THRESHOLDS) and moves to the next model every
  DEMO_ROTATION tests, so a minute covers several models and scenarios;
- ignores quiet hours: a simulator cannot disturb anyone's night.

The figures stay honest for what they measure (the simulator's own compressed timings); the report
says the run was a demo.
"""

from __future__ import annotations

import dataclasses

from soaktui.config import Settings

SPEED = 10.0  # simulated delays divided by this
DEMO_THRESHOLDS = {
    "simple_min_tokens": 50,
    "simple_max_tokens": 400,
    "large_context_min_tokens": 2_000,
    "large_context_max_tokens": 8_000,
    "stream_max_tokens": 200,
    "structured_max_tokens": 512,
    "tool_max_tokens": 256,
}
DEMO_ROTATION = (3, 4)  # tests per model: [min, max]


def simulator_args() -> list[str]:
    """The demo simulator's command-line arguments (soaktui.simulator.cli)."""
    return ["--flavor", "lmstudio", "--personas", "flaky", "--speed", f"{SPEED:g}"]


def demo_settings(s: Settings) -> Settings:
    """`s` for a demo run: quiet hours off, short answers and documents, a quick rotation."""
    thresholds = dataclasses.replace(
        s.thresholds, **{k: min(v, getattr(s.thresholds, k)) for k, v in DEMO_THRESHOLDS.items()}
    )
    rotation = dataclasses.replace(s.rotation, min_tests=DEMO_ROTATION[0], max_tests=DEMO_ROTATION[1])
    quiet = dataclasses.replace(s.quiet_hours, enabled=False)
    return dataclasses.replace(s, thresholds=thresholds, rotation=rotation, quiet_hours=quiet)


__all__ = ["DEMO_ROTATION", "DEMO_THRESHOLDS", "SPEED", "demo_settings", "simulator_args"]
