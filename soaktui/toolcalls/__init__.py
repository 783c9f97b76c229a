"""Tool calling: finding the calls a model made (detect) in whatever format it wrote them."""

from __future__ import annotations

from soaktui.toolcalls.calls import DetectedCall, Detection
from soaktui.toolcalls.detect import FORMATS, detect, strip_think

__all__ = ["FORMATS", "DetectedCall", "Detection", "detect", "strip_think"]
