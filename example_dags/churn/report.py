"""A report written by a `command` step: reads the scores Parquet, writes a Markdown summary.

Run as ``python -m churn.report``; like any command step it finds its input and output folders in
``AQ_INPUT_SCORES`` and ``AQ_OUTPUT``: local paths, or s3://, gs://, abfs:// URIs, opened here with
aq-airflow's ``filesystem`` (the cloud SDKs' standard variables, emulators included).
"""

from __future__ import annotations

import os
import posixpath
import sys

import pyarrow.compute as pc
import pyarrow.dataset as ds

from aq_airflow.artifacts.store import filesystem


def main() -> int:
    source_fs, source = filesystem(os.environ["AQ_INPUT_SCORES"])
    scores = ds.dataset(source, filesystem=source_fs, format="parquet", exclude_invalid_files=True)
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
    output_fs, output = filesystem(os.environ["AQ_OUTPUT"])
    output_fs.create_dir(output, recursive=True)
    with output_fs.open_output_stream(posixpath.join(output, "report.md")) as handle:
        handle.write(("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
