"""Convert, optimize, run and evaluate PaddleNLP ERNIE classifiers as Hydra experiments tracked in MLflow.

Layers, bottom up (checked by import-linter, `make lint`): core -> runtimes -> options ->
stages | tracking -> runner | serving | demo -> job | sweep | cli. docs/architecture.md explains each.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The embedded default model (`make demo-model` writes it): export/, checkpoint/, tokenizer/.
DEMO_MODEL_DIR = PROJECT_ROOT / "assets" / "demo-model"
