"""Reports derived from records: plots (and, later, tables and statistics)."""
