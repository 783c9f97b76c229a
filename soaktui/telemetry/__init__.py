"""Readings of the machine under test (CPU and memory now; sensors come with the telemetry issue)."""
