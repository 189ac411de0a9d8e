"""aq-airflow loader, shard 0 of 1 (written by `aq-airflow init`).

Builds the *.aq.yaml pipelines under this folder whose path hashes into this shard. Airflow
parses the shards in parallel; a new spec is picked up by its shard at the next parse.
"""

from aq_airflow.live_dags import load_dags

load_dags(globals(), shard=(0, 1))
