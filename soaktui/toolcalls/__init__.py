"""Tool calling: the tools offered (catalog), the prompt bank (prompts), the tools described as text
for servers without `tools` (prompted), finding the calls a model made in whatever format it wrote
them (detect), and judging them against the expected calls (scoring)."""

from __future__ import annotations

from soaktui.toolcalls.calls import DetectedCall, Detection
from soaktui.toolcalls.detect import FORMATS, detect, strip_think

__all__ = ["FORMATS", "DetectedCall", "Detection", "detect", "strip_think"]
