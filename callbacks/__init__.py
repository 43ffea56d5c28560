"""One module per panel: pure compute_* functions plus register(app, context)."""
