"""The Textual viewer: follows a run directory's events.jsonl and steers its engine over the socket.

Only this package imports Textual (tests/test_import_hygiene.py enforces it), so headless runs never
pay for the UI. Entry point: `soaktui.ui.app.create_app(run_dir, theme=..., engine=..., clock=...)`.
"""
