"""soaktui: soak-test local LLM servers for hours and report which models hold up."""

__version__ = "0.1.0"
