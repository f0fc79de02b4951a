"""MLflow tracking: runs per job (mlflow_runs), the sweep parent run (sweep), reports and summaries."""
