"""The per-model capability database across runs, and the `soaktui models` text."""
