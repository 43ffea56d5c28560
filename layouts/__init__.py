"""Functions that build the dashboard's component trees; no I/O."""
