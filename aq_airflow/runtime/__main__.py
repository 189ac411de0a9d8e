"""``python -m aq_airflow.runtime``: the command step pods run."""

import sys

sys.exit("aq-airflow runtime: running steps is not built yet in this version; the pod cannot run its step.")
