"""Convert, optimize, run and evaluate PaddleNLP ERNIE classifiers as Hydra experiments tracked in MLflow."""
