"""The files of a job's output folder: written by the runner and the job, read by reports and sweeps."""

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
PER_CLASS_FILE = "per_class.md"
CONFUSION_FILE = "confusion_matrix.png"
JOB_STATUS_FILE = "job_status.json"
