"""The viewer's Textual messages, in one place: what the worker threads tell the event loop.

The follower and the controller run on threads; they never touch widgets, they post one of these
and the handler (`on_log_progress`, `on_follow_error`, `on_control_reply` on the app,
`on_report_ready` on the report screen) runs on the event loop. Kept apart from the app and the
screens so that whoever posts a message needs only this module (and nothing of ui/app.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from soaktui.report.snapshot import Snapshot
    from soaktui.ui.controller import Reply


class LogProgress(Message):
    """The follower's progress; a newer one replaces a queued one (a burst costs one redraw)."""

    def __init__(self, loaded: bool, pct: int | None) -> None:
        super().__init__()
        self.loaded = loaded
        self.pct = pct

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogProgress)


class FollowError(Message):
    """The log became unreadable (said once per distinct error)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ControlReply(Message):
    """The engine's answer to a key or a status probe, or why nothing answered."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply


class ReportReady(Message):
    """A report snapshot folded on a thread worker, for the report screen to show."""

    def __init__(self, snap: Snapshot) -> None:
        super().__init__()
        self.snap = snap


__all__ = ["ControlReply", "FollowError", "LogProgress", "ReportReady"]
