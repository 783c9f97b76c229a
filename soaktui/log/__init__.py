"""The run log: the event model and bus, the JSONL writer, the readers, and the run directory.

The ground floor: it imports only the standard library and orjson, and everything else in soaktui
reads or writes runs through it.
"""
