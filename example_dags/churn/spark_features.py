"""Churn features at scale: one row per customer from every order event, with Spark.

``build`` is the `features` step of ``churn_at_scale.aq.yaml``: it gets the step's SparkSession
(``spark``), the `order_events` step's output as a Spark DataFrame and the run's date, and returns
a DataFrame, which Spark writes as the step's Parquet output. The same function runs in a
SparkApplication on the cluster and in PySpark's local mode on a laptop.

The label is built the usual way for a churn model trained on history: features from the 90
days before a cutoff 30 days ago, ``churned`` when the customer placed no order in the 30 days
since (what the model then predicts for today's features).
"""

from __future__ import annotations

import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

WINDOW_DAYS = 90  # the features' look-back
LABEL_DAYS = 30  # the label's look-ahead: no order in it is a churn


def build(spark: SparkSession, order_events: DataFrame, as_of: str) -> DataFrame:
    end = datetime.date.fromisoformat(str(as_of)[:10])
    cutoff = end - datetime.timedelta(days=LABEL_DAYS)
    start = cutoff - datetime.timedelta(days=WINDOW_DAYS)
    at = F.col("event_time")
    is_order = F.col("event_type") == "order"
    history = order_events.where((at >= F.lit(start)) & (at < F.lit(cutoff)))
    features = history.groupBy("customer_id").agg(
        F.sum(is_order.cast("int")).alias("orders_90d"),
        F.sum(F.when(at >= F.lit(cutoff - datetime.timedelta(days=30)), is_order.cast("int")).otherwise(0)).alias(
            "orders_30d"
        ),
        F.coalesce(F.sum(F.when(is_order, F.col("amount"))), F.lit(0.0)).alias("spend_90d"),
        F.sum((F.col("event_type") == "return").cast("int")).alias("returns_90d"),
        F.sum((F.col("event_type") == "cancel").cast("int")).alias("cancels_90d"),
        F.avg(F.when(is_order, (F.col("channel") == "app").cast("double"))).alias("app_share"),
        F.max(F.when(is_order, at)).alias("last_order"),
    )
    later = (
        order_events.where((at >= F.lit(cutoff)) & (at < F.lit(end)) & is_order)
        .select("customer_id")
        .distinct()
        .withColumn("ordered_since", F.lit(True))
    )
    return (
        features.join(later, "customer_id", "left")
        .select(
            "customer_id",
            "orders_90d",
            "orders_30d",
            F.round("spend_90d", 2).alias("spend_90d"),
            F.round(F.col("spend_90d") / F.greatest(F.col("orders_90d"), F.lit(1)), 2).alias("avg_order_value"),
            (F.col("returns_90d") / F.greatest(F.col("orders_90d"), F.lit(1))).alias("return_rate"),
            "cancels_90d",
            F.coalesce("app_share", F.lit(0.0)).alias("app_share"),
            F.coalesce(F.datediff(F.lit(cutoff), F.to_date("last_order")), F.lit(WINDOW_DAYS)).alias(
                "days_since_last_order"
            ),
            F.col("ordered_since").isNull().alias("churned"),
        )
        .orderBy("customer_id")
    )
