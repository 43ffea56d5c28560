"""Loaders, schema, store and enrichment for fundatlas: everything below the dashboard."""
