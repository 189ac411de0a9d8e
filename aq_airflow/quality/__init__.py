"""The quality layer: a step's checks and metrics compiled into one query per dataset (per
warehouse dialect, or DuckDB over Parquet), and their outcomes against bounds and history."""
