"""Logs a job's model as an MLflow pyfunc model (from code) and registers it; picks a sweep's winner."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from pipeline.cache import installed_version
from pipeline.config import PROJECT_ROOT, Config
from pipeline.data import read_labels
from pipeline.errors import ConfigError, TrackingError
from pipeline.tracking.mlflow_runs import store_errors

MODEL_NAME = "model"  # the logged model's name within its run: runs:/<run_id>/model
CHAMPION = "champion"
# What the served model imports: the pipeline's core (config, tokenizer, engine), not paddle.
SERVING_REQUIREMENTS = (
    "onnxruntime",
    "tokenizers",
    "numpy",
    "pandas",
    "hydra-core",
    "omegaconf",
    "psutil",
    "tqdm",
    "filelock",
    "pyyaml",
    "mlflow",
)


def serving_requirements() -> list[str]:
    return [f"{name}=={installed_version(name)}" for name in SERVING_REQUIREMENTS]


def servable(config: Config) -> bool:
    """The served model runs on ONNX Runtime: only its jobs log a model."""
    return config.engine.name == "onnxruntime"


def check_servable(config: Config) -> None:
    if not servable(config):
        raise ConfigError(
            "mlflow.registered_model_name: the served model runs on ONNX Runtime; "
            f"engine={config.engine.name} jobs are measured but not registered (use engine=onnxruntime)"
        )


def log_served_model(
    config: Config,
    run_id: str,
    model_path: Path,
    tokenizer_dir: str,
    label_file: Path,
    texts: list[str],
    register_as: str | None,
) -> str | None:
    """Logs the pyfunc model into run `run_id`; returns the registered version (or None)."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    settings = {
        "batch_size": config.batch_size,
        "max_seq_length": config.max_seq_length,
        "padding": config.infer.padding,
        "tokenizer": "fast" if config.infer.tokenizer == "auto" else config.infer.tokenizer,
        "num_threads": int(config.device.num_threads or 1),
    }
    example = texts[:3]
    with tempfile.TemporaryDirectory(prefix="served-model-") as work:
        settings_file = Path(work) / "settings.json"
        settings_file.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        artifacts = {
            "model": str(model_path),
            "tokenizer": str(tokenizer_dir),
            "labels": str(label_file),
            "settings": str(settings_file),
        }
        labels = read_labels(label_file.parent, label_file.name)
        # One string column in (a list of texts, or a one-column frame); label, confidence and one
        # probability per label out.
        signature = ModelSignature(
            inputs=Schema([ColSpec(DataType.string)]),
            outputs=Schema(
                [
                    ColSpec(DataType.string, "label"),
                    ColSpec(DataType.double, "confidence"),
                    *(ColSpec(DataType.double, f"prob_{label}") for label in labels),
                ]
            ),
        )
        mlflow.set_tracking_uri(config.mlflow.tracking_uri)
        with (
            store_errors(config.mlflow.tracking_uri, "log the served model"),
            mlflow.start_run(run_id=run_id),
        ):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(Path(__file__).with_name("classifier.py")),
                artifacts=artifacts,
                code_paths=[str(PROJECT_ROOT / "pipeline")],
                pip_requirements=serving_requirements(),
                signature=signature,
                input_example=example,
                registered_model_name=register_as,
            )
    return str(info.registered_model_version) if register_as else None


def register_run_model(tracking_uri: str, run_id: str, name: str, alias: str = CHAMPION) -> str:
    """Registers the model a run logged as a new version of `name` and points `alias` at it."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    with store_errors(tracking_uri, f"register the model of run {run_id} as {name}"):
        version = mlflow.register_model(f"runs:/{run_id}/{MODEL_NAME}", name)
        mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version.version)
    if version.version is None:
        raise TrackingError(f"{tracking_uri}: registering {name} gave no version")
    return str(version.version)
