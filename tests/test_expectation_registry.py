"""validate's `expect:` lookup imports Great Expectations without its Spark support: pyspark's
SQL and ML packages were most of GX's import time, and pyspark's pandas FutureWarning reached
validate's output."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("pyspark")  # what made GX import Spark

PROBE = """
import sys
from aq_airflow.pipeline_spec.expectations import registry
known = registry()
assert "expect_column_values_to_not_be_null" in known and len(known) > 30, sorted(known)
print("pyspark imported:", "pyspark" in sys.modules)
import pyspark  # still importable afterwards, for whatever the process does next
print("pyspark then:", pyspark.__name__)
"""


def test_the_registry_does_not_import_pyspark_nor_print_its_warning():
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    assert "pyspark imported: False" in probe.stdout and "pyspark then: pyspark" in probe.stdout
    assert "FutureWarning" not in probe.stderr, probe.stderr
