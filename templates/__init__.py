"""Templates of generated DAG files (shipped in the wheel as aq_airflow.templates)."""
