"""The example churn project: the Python code the example pipelines' steps call."""
