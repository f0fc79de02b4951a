"""Every path a job's config names, checked up front (before conversion, data or inference)."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.files import names_a_path
from pipeline.core.model_files import find_model_files
from pipeline.core.paths import expect_file, expect_folder, expect_writable_folder
from pipeline.options.config import Config
from pipeline.options.tracking import sqlite_database


def check_paths(config: Config, job_dir: Path) -> None:
    """Inputs exist and are what they should be (a file, a folder); outputs can be written."""
    model = config.model
    if model.weights == "export" and model.path_prefix:
        find_model_files(model.path_prefix)  # says which of the exported files is missing
    if model.weights == "checkpoint" and model.checkpoint and names_a_path(model.checkpoint):
        expect_folder(
            Path(model.checkpoint), "model.checkpoint", "a checkpoint folder (model_state.pdparams)"
        )
    if names_a_path(model.name_or_path):
        expect_folder(Path(model.name_or_path), "model.name_or_path", "a tokenizer folder (save_pretrained)")
    if config.dataset.dir is not None:
        expect_folder(Path(config.dataset.dir), "dataset.dir", "a folder with label.txt and dev.txt/test.txt")
    if config.mode == "predict":
        _check_prediction_paths(config, job_dir)
    expect_writable_folder(Path(config.cache_dir), "cache_dir")
    database = sqlite_database(config.mlflow.tracking_uri) if config.mlflow.enabled else None
    if database is not None:
        expect_writable_folder(database.parent, "mlflow.tracking_uri")
        if database.is_dir():
            expect_file(database, "mlflow.tracking_uri", "a SQLite database file")


def _check_prediction_paths(config: Config, job_dir: Path) -> None:
    options = config.predict
    if options.input:
        expect_file(Path(options.input), "predict.input", "a text file of one text per line")
    if options.labels:
        expect_file(Path(options.labels), "predict.labels", "a label.txt of one label per line")
    if options.output:
        expect_writable_folder(Path(options.output), "predict.output")
    else:
        expect_writable_folder(job_dir / "predictions", "hydra.run.dir")
