"""Read a pipeline's runs and step outputs from its artifact store, from Python (a notebook):

    from aq_airflow.client import Store

    churn = Store(".demo/artifacts").pipeline("churn_scoring")
    churn.runs()                                  # newest first
    scores = churn.step("scores").read(as_="pandas")  # the latest run holding it committed
    churn.latest_run().step("train").manifest

Only pyarrow (and pandas or polars when asked for) is imported, never Airflow. See docs/client.md.
"""

from aq_airflow.client.outputs import MissingOutput, Pipeline, Run, StepOutput, Store
from aq_airflow.client.runs import RunFolder, StepFolder, list_runs

__all__ = ["MissingOutput", "Pipeline", "Run", "RunFolder", "StepFolder", "StepOutput", "Store", "list_runs"]
