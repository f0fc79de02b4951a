"""Convert, optimize, run and evaluate PaddleNLP ERNIE classifiers as Hydra experiments tracked in MLflow."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
