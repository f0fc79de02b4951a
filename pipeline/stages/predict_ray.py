"""predict.executor=ray: the pending parts as a Ray Data dataset, one PartPredictor actor per worker.

The dataset's rows are the chunks (line-aligned byte ranges of the input), not the lines: each
actor reads its chunk from the input (a path every node sees), predicts it with its own ONNX
Runtime session and writes the part file itself, so rows never travel through the object store,
line numbers and undecodable lines stay exact, and a rerun submits only the missing parts. The
output is the local engine's, part for part.

A user's error in an actor (the model's label count, an input changed while it is predicted, a full
disk) comes back pickled in its row's `error`, not raised: Ray would send back a traceback, not the
error. The driver raises it, so the run ends with the same one line as a local run.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from pipeline.core.errors import PipelineError, require_extra
from pipeline.core.ray_cluster import ray_init_options, start_ray, stop_ray
from pipeline.stages.predict import Chunk, InputPlan, InputVersion, PartPredictor, PredictorSpec

log = logging.getLogger(__name__)
# Ray Data's threads that fetch a dataset's rows for iter_rows (ray.data's iter_threaded); its block
# prefetcher thread waits for work, not in Ray, and is left to the garbage collector.
_ROW_FETCHER_THREAD = "iter_threaded"
_ROW_FETCHERS_SECONDS = 10


def _join_row_fetchers(threads: set[threading.Thread]) -> None:
    deadline = time.monotonic() + _ROW_FETCHERS_SECONDS
    for thread in threads:
        if thread.name == _ROW_FETCHER_THREAD:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


class ChunkActor:
    """Ray Data's class UDF: one engine per actor, reused for every chunk it is given."""

    def __init__(
        self, spec: PredictorSpec, label_file: str, input_path: str, output_dir: str, input_version: tuple
    ) -> None:
        self.input_path = Path(input_path)
        self.output_dir = Path(output_dir)
        self.version = InputVersion(*input_version)
        self.predictor: PartPredictor | None = None
        self.error = b""  # why this actor cannot predict (a model the task cannot feed), pickled
        try:
            self.predictor = PartPredictor(spec, Path(label_file))
        except PipelineError as exc:
            self.error = pickle.dumps(exc)

    def __call__(self, batch: dict) -> dict:
        done: dict[str, list] = {"part": [], "rows": [], "rss_mb": [], "error": []}
        for i in range(len(batch["index"])):
            numbers = {key: int(batch[key][i]) for key in ("index", "start", "end", "first_line", "n_lines")}
            chunk = Chunk(**numbers, bad_lines=tuple(int(v) for v in batch["bad_lines"][i]))
            rows, error = 0, self.error
            if self.predictor is not None:
                try:
                    rows = self.predictor.predict_chunk(
                        self.input_path, chunk, self.output_dir, self.version
                    )["rows"]
                except PipelineError as exc:
                    error = pickle.dumps(exc)
            done["part"].append(chunk.index)
            done["rows"].append(rows)
            done["error"].append(error)
            done["rss_mb"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        return done


def predict_on_ray(
    spec: PredictorSpec, plan: InputPlan, pending: list[Chunk], target: Path, label_file: Path
) -> list[float]:
    """Runs the pending parts on Ray Data; returns the workers' peak RSS (MB)."""
    if not pending:
        return []
    require_extra("ray", "predict.executor=ray")
    options = spec.config.predict
    # Before Ray is imported: it reads its token settings (RAY_AUTH_MODE) once, at import.
    init = ray_init_options(
        {"address": options.ray_address, "include_dashboard": False, "logging_level": "warning"},
        setting="predict",
        # A cluster of its own (predict.ray_address null) fits the workers; a joined one has its size.
        local_defaults={"num_cpus": max(os.cpu_count() or 1, int(options.workers * options.cpus_per_worker))},
        join_running=False,
    )
    import ray

    # Each actor's engine gets the threads its worker reserves.
    device = replace(spec.config.device, num_threads=options.threads_per_worker)
    actor_spec = replace(spec, config=replace(spec.config, device=device))
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(init)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        items = [{**asdict(chunk), "bad_lines": list(chunk.bad_lines)} for chunk in pending]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ChunkActor,
            fn_constructor_kwargs={
                "spec": actor_spec,
                "label_file": str(label_file),
                "input_path": str(plan.path.absolute()),
                "output_dir": str(target.absolute()),
                "input_version": (plan.version.size, plan.version.mtime_ns),
            },
            compute=ray.data.ActorPoolStrategy(size=options.workers),
            batch_size=1,
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker,
        )
        lines = {chunk.index: chunk.n_lines for chunk in pending}
        peak: list[float] = []
        threads_before = set(threading.enumerate())
        rows = iter(dataset.iter_rows())
        with tqdm(
            total=sum(lines.values()), unit="line", desc=f"predict ({options.workers} Ray workers)"
        ) as bar:
            try:
                for row in rows:
                    if row["error"]:
                        raise pickle.loads(row["error"])  # our own actor's PipelineError
                    bar.update(lines[int(row["part"])])
                    peak.append(float(row["rss_mb"]))
            finally:
                # An error leaves the iteration early. Ray Data's threads that fetch the rows end
                # once they see it closed, up to one fetch later: one still in Ray after
                # ray.shutdown() ends the process with status 1, not the error's.
                close = getattr(rows, "close", None)
                if close is not None:
                    close()
                _join_row_fetchers(set(threading.enumerate()) - threads_before)
        return [max(peak)] if peak else []
    finally:
        if started_here:
            stop_ray()
