"""Every evaluate job is an MLflow 3 LoggedModel (the experiment's Models tab); the one a sweep or
a run registers gets its servable files (a pyfunc from code: pipeline/serving/classifier.py)
logged into that same model, so the champion is one of the candidates, not a second copy."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from pipeline import PROJECT_ROOT
from pipeline.core.cache import installed_version
from pipeline.core.errors import TrackingError
from pipeline.core.job_folder import JOB_FILE, read_json
from pipeline.options.tracking import MlflowConfig
from pipeline.tracking.store import NOTE_TAG, Store, store_errors

CHAMPION = "champion"
EXTERNAL_TAG = "mlflow.model.isExternal"  # what mlflow.create_external_model sets
CLASSIFIER_CODE = PROJECT_ROOT / "pipeline" / "serving" / "classifier.py"
# What the served model imports: the pipeline's core (tokenizer, runtime, infer), not paddle.
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
# The config keys a model's params show in the Models tab, under short names.
MODEL_PARAMS = {
    "task": ("task", "name"),
    "model": ("model", "name"),
    "precision": ("precision", "name"),
    "engine": ("engine", "name"),
    "device": ("device", "name"),
    "batch_size": ("batch_size",),
    "max_seq_length": ("max_seq_length",),
    "threads": ("device", "num_threads"),
}


def model_params(config: dict[str, Any], threads: int | None) -> dict[str, str]:
    """`threads`: what the job ran with (config.yaml may say null: one per physical core)."""
    params = {}
    for name, path in MODEL_PARAMS.items():
        value: Any = config
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        params[name] = str(value)
    if threads is not None:
        params["threads"] = str(threads)
    return params


def find_job_model(store: Store, run_id: str) -> Any | None:
    """The LoggedModel a job's run made (there is one per evaluate run), or None."""
    with store.writing(f"search the models of run {run_id}"):
        found = store.client.search_logged_models(
            [store.experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=1
        )
    return found[0] if found else None


def log_job_model(
    store: Store, run_id: str, job: dict[str, Any], config: dict[str, Any], tags: dict[str, str]
) -> str:
    """The job's LoggedModel (`job`: its job.json), created once: params, tags, its run; READY.

    It refers to the job's files instead of copying them (measured: 11 ms either way, but 0.6 KB
    instead of a copy of the model per job): a stub MLmodel makes it registrable, and registering
    it logs the servable files into it (`register_job_model`).
    """
    if (existing := find_job_model(store, run_id)) is not None:
        return existing.model_id
    from mlflow.entities import LoggedModelOutput
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.models.utils import get_external_mlflow_model_spec

    threads = ((job.get("model") or {}).get("settings") or {}).get("num_threads")
    model_file = (job.get("model") or {}).get("path", "")
    description = (
        f"{job['model_name']}: the model file {model_file}, run by job {tags.get('job_dir', '')}. "
        "Its files stay in the job's cache and folder; registering it copies the servable ones in."
    )
    with store.writing(f"log the model of run {run_id}"):
        model = store.client.create_logged_model(
            store.experiment_id,
            # MLflow refuses these characters in a model's name.
            name=re.sub(r"""[/:.%"']""", "_", job["model_name"]),
            source_run_id=run_id,
            params=model_params(config, threads),
            tags={**tags, EXTERNAL_TAG: "true", NOTE_TAG: description},
            model_type="onnx-text-classifier",
        )
        with tempfile.TemporaryDirectory(prefix="model-stub-") as stub:
            get_external_mlflow_model_spec(model).save(str(Path(stub) / MLMODEL_FILE_NAME))
            store.client.log_model_artifacts(model.model_id, stub)
        store.client.finalize_logged_model(model.model_id, "READY")
        store.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    return model.model_id


def serving_requirements() -> list[str]:
    return [f"{name}=={installed_version(name)}" for name in SERVING_REQUIREMENTS]


def log_servable_files(store: Store, model_id: str, job_dir: Path) -> None:
    """The pyfunc model's files (ONNX model, tokenizer, labels, settings, the code) into `model_id`."""
    import mlflow

    served = (read_json(Path(job_dir) / JOB_FILE) or {}).get("model") or {}
    if not served.get("servable"):
        raise TrackingError(
            f"{job_dir}: its model did not run on ONNX Runtime, the served model's runtime; "
            "engine=onnxruntime jobs can be registered"
        )
    label_file = Path(served["labels"])
    with tempfile.TemporaryDirectory(prefix="served-model-") as work:
        settings_file = Path(work) / "settings.json"
        settings_file.write_text(json.dumps(served["settings"], indent=2) + "\n", encoding="utf-8")
        saved = Path(work) / "model"
        with store_errors(store.uri, "build the served model"):
            mlflow.pyfunc.save_model(
                str(saved),
                python_model=str(CLASSIFIER_CODE),
                artifacts={
                    "model": served["path"],
                    "tokenizer": served["tokenizer"],
                    "labels": str(label_file),
                    "settings": str(settings_file),
                },
                code_paths=[str(PROJECT_ROOT / "pipeline")],
                pip_requirements=serving_requirements(),
                input_example=["很好用", "太差了"],
            )
        with store.writing(f"upload the served files of model {model_id}"):
            store.client.log_model_artifacts(model_id, str(saved))


def register_job_model(
    job_dir: Path, cfg: MlflowConfig, run_id: str, name: str, alias: str | None = None
) -> str:
    """Registers the job's own LoggedModel as a new version of `name` (its servable files logged into it
    first); points `alias` at it. Returns the version."""
    import mlflow

    store = Store(cfg)
    model = find_job_model(store, run_id)
    if model is None:
        raise TrackingError(f"run {run_id} ({job_dir}) has no logged model to register")
    if model.tags.get(EXTERNAL_TAG) == "true":
        log_servable_files(store, model.model_id, job_dir)
        with store.writing(f"mark model {model.model_id} servable"):
            store.client.set_logged_model_tags(model.model_id, {EXTERNAL_TAG: "false"})
    mlflow.set_tracking_uri(store.uri)
    with store_errors(store.uri, f"register model {model.model_id} as {name}"):
        version = mlflow.register_model(f"models:/{model.model_id}", name)
        if alias:
            store.client.set_registered_model_alias(name, alias, version.version)
    if version.version is None:
        raise TrackingError(f"{store.uri}: registering {name} gave no version")
    return str(version.version)
