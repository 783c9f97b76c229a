"""Readings of the machine under test and of the servers: psutil, Linux sysfs sensors and RAPL,
NVIDIA (NVML), macOS (macmon, thermal pressure, ioreg, powermetrics), LLM server processes and
the servers' own metrics, merged by the sampler (sampler.py) on its own thread."""
