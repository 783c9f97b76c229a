"""The dashboard's panes, in the order of their numbers: key N maximises pane N, Esc restores.

One table for the dashboard (which composes the panes and numbers their titles), the keys and the
command palette (which offer "zoom" per pane by name). Textual-free.
"""

from __future__ import annotations

PANES: tuple[tuple[str, str], ...] = (  # (widget id, title)
    ("rotation", "Model rotation"),
    ("scenarios", "Scenarios"),
    ("throughput", "Throughput"),
    ("thermal", "Thermal & fans"),
    ("toolcalls", "Tool calls"),
    ("errors", "Errors"),
)

__all__ = ["PANES"]
