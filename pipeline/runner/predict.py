"""mode=predict: a corpus of one text per line -> predict.output (part files, _SUCCESS), streamed."""

from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path

from tqdm import tqdm

from pipeline.core.errors import ConfigError, WriteError
from pipeline.core.files import FolderInUse, atomic_write_text, sole_writer
from pipeline.core.job_folder import METRICS_FILE, update_job_record
from pipeline.options.config import Config
from pipeline.runner.record import add_tags, dataset_record
from pipeline.stages.predict import (
    SUCCESS_FILE,
    Chunk,
    InputPlan,
    PartPredictor,
    PredictorSpec,
    count_rows,
    finish,
    finished_parts,
    manifest,
    plan_input,
    prepare_output,
)
from pipeline.stages.prepare import check_vocabulary, model_tokenizer, prepare_model

log = logging.getLogger(__name__)


def predict_labels(config: Config) -> tuple[list[str], Path]:
    """The class names for mode=predict: predict.labels, else the dataset's label.txt."""
    if config.predict.labels:
        path = Path(config.predict.labels)
        return config.task.read_labels(path.parent, path.name), path
    data_dir = config.dataset_folder()
    return config.task.read_labels(data_dir), data_dir / "label.txt"


def output_folder(config: Config, job_dir: Path) -> Path:
    return Path(config.predict.output) if config.predict.output else job_dir / "predictions"


def predict_job(config: Config, job_dir: Path) -> dict:
    """predict.input -> the output folder's part files; returns the metrics also in metrics.json.

    One writer per output folder: a second prediction into a folder in use stops at once. A part
    that cannot be written (a full disk) stops the run with one line; the parts written are kept,
    and the same command resumes from them.
    """
    target = output_folder(config, job_dir)
    try:
        with sole_writer(target):
            return _predict_into(config, job_dir, target)
    except FolderInUse as holder:
        raise ConfigError(
            f"predict.output={target} is being written by {holder}; wait for it or choose another folder"
        ) from None
    except WriteError as exc:
        if not exc.path.absolute().is_relative_to(target.absolute()):
            raise
        kept = len(finished_parts(target))
        then = "run the same command again" + (
            f": it keeps the {kept} parts written and predicts the rest" if kept else ""
        )
        raise WriteError(exc.path, exc.why, exc.fix, then) from None


def _predict_into(config: Config, job_dir: Path, target: Path) -> dict:
    options = config.predict
    assert options.input is not None  # Config refuses mode=predict without predict.input
    labels, label_file = predict_labels(config)
    plan = plan_input(Path(options.input), options.chunk_lines, options.on_error, config.task.parse_input)
    update_job_record(
        job_dir,
        output=str(target.absolute()),
        dataset=dataset_record(f"predict/{plan.path.name}", plan.path, "predict", plan.n_lines),
    )
    tokenizer, tokenizer_source = model_tokenizer(config.model, config.infer.tokenizer)
    add_tags(job_dir, tokenizer=tokenizer_source)
    model = prepare_model(config, len(labels), tokenizer)
    check_vocabulary(config, model, tokenizer, tokenizer_source)
    spec = PredictorSpec(model.path, tokenizer_source, config, labels)
    done = prepare_output(target, manifest(plan, spec, options), options.overwrite)
    pending = [chunk for chunk in plan.chunks if chunk.index not in done]
    if pending:  # parts removed since a run that finished: it is not finished any more
        (target / SUCCESS_FILE).unlink(missing_ok=True)
    log.info(
        "predicting %s: %d lines, %d parts to do (%d done before)",
        plan.path,
        plan.n_lines,
        len(pending),
        len(done),
    )
    started = time.perf_counter()
    if options.executor == "ray":
        from pipeline.stages.predict_ray import predict_on_ray

        worker_rss = predict_on_ray(spec, plan, pending, target, label_file)
    else:
        worker_rss = predict_locally(spec, plan, pending, target, label_file)
    seconds = time.perf_counter() - started
    new_rows = sum(chunk.n_lines - len(chunk.bad_lines) for chunk in pending)
    metrics = {
        "rows": count_rows(target),
        "input_lines": plan.n_lines,
        "skipped_lines": plan.skipped_lines,
        "parts": len(plan.chunks),
        "parts_resumed": len(done),
        "wall_s": seconds,
        "lines_per_s": new_rows / seconds if seconds > 0 else 0.0,
        "peak_rss_mb": max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, *worker_rss]),
    }
    finish(target, {**metrics, "output": str(target.absolute())})
    atomic_write_text(job_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return {**metrics, "output": str(target.absolute())}


def predict_locally(
    spec: PredictorSpec, plan: InputPlan, pending: list[Chunk], target: Path, label_file: Path
) -> list[float]:
    """Every pending part in this process, in order; returns the workers' peak RSS (none here)."""
    predictor = PartPredictor(spec, label_file)
    with tqdm(total=sum(c.n_lines for c in pending), unit="line", desc="predict", smoothing=0.1) as bar:
        for chunk in pending:
            predictor.predict_chunk(plan.path, chunk, target, plan.version)
            bar.update(chunk.n_lines)
    return []
