"""The check and metric set bench/quality.py measures, on DuckDB and PostgreSQL alike: not-null,
unique, ranges, accepted values, row count, freshness and expressions, and six metrics. Its
own module so tests/test_quality_fused_postgres.py pins the results of the very set benchmarked."""

CHECKS = [
    {"name": "c0_not_null", "not_null": "c0"},
    {"name": "c1_not_null", "not_null": "c1"},
    {"name": "c0_unique", "unique": "c0"},
    {"name": "c1_range", "column": "c1", "between": [0, 1]},
    {"name": "c2_range", "column": "c2", "between": [0, 1]},
    {"name": "cat_values", "accepted_values": {"column": "cat", "values": ["a", "b", "c"]}},
    {"name": "rows", "row_count": {"min": 1000}},
    {"name": "fresh", "freshness": {"column": "ts", "max_age": "2d"}},
    {"name": "sum_below_2", "expression": "c1 + c2 < 2"},
    {"name": "c3_positive", "expression": "c3 >= 0", "mostly": 0.99},
    {"name": "c4_c5_not_null", "not_null": ["c4", "c5"]},
    {"name": "c6_range", "column": "c6", "between": [0, 1]},
]
METRICS = [
    {"name": "count", "count": "*"},
    {"name": "mean_c1", "mean": "c1"},
    {"name": "min_c2", "min": "c2"},
    {"name": "max_c3", "max": "c3"},
    {"name": "std_c4", "stddev": "c4"},
    {"name": "nulls_c5", "null_fraction": "c5"},
]
