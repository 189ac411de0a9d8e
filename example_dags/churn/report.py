"""A report written by a `command` step: reads the scores Parquet, writes a Markdown summary.

Run as ``python -m churn.report``; like any command step it finds its input and output folders in
``AQ_INPUT_SCORES`` and ``AQ_OUTPUT``.
"""

from __future__ import annotations

import os
import sys

import pyarrow.compute as pc
import pyarrow.dataset as ds


def main() -> int:
    scores = ds.dataset(os.environ["AQ_INPUT_SCORES"], format="parquet", exclude_invalid_files=True)
    table = scores.to_table(columns=["churn_probability"])
    probability = table["churn_probability"]
    high = pc.sum(pc.greater(probability, 0.5)).as_py()
    lines = [
        "# Churn report",
        "",
        f"- customers scored: {table.num_rows}",
        f"- mean churn probability: {pc.mean(probability).as_py():.3f}",
        f"- customers above 0.5: {high}",
    ]
    os.makedirs(os.environ["AQ_OUTPUT"], exist_ok=True)
    with open(os.path.join(os.environ["AQ_OUTPUT"], "report.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
