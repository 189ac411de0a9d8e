"""The main file of a spark step's SparkApplication: the aq runtime, as ``python -m aq_airflow.runtime``.

A SparkApplication's driver runs a ``.py`` file (spark-submit's primary resource), not a module,
so the image holds this one (``runners.spark_application``: the profile's ``spark_launcher``,
by default ``/opt/aq-airflow/spark_main.py``, a link to this file) and the driver runs it with
the runtime's arguments (``--function module:function``, or ``--script FILE -- args``). It is a
file of the installed aq-airflow, so it is always the version of the runtime it starts.
"""

import runpy

if __name__ == "__main__":
    # the runtime reads sys.argv[1:], which spark-submit set to the application's arguments
    runpy.run_module("aq_airflow.runtime", run_name="__main__", alter_sys=True)
