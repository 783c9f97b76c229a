"""Sinks: what the engine writes besides the log (text logs, the live summary, the console).

Each is derived from events and may fail without stopping a run (see log/events.py EventBus).
"""
