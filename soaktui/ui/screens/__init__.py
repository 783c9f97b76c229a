"""The viewer's screens: the dashboard, the report, help, and the quit dialogs."""
