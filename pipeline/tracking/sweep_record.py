"""A sweep folder -> its MLflow parent run, as job folders become their runs (job_record.py).

The sweep's Hydra callback writes sweep.json (what was swept, the outcome, the files to keep) and
calls these; `resync SWEEP_DIR` calls them again from the folder alone. A sweep continued in its
folder (a resumed sweep or Optuna search) keeps its one parent run. The parent run starts when
the sweep first started and ends as the sweep ended (sweep.json's `started_at` and `ended_at`),
with the status sweep_end.json gives (FINISHED where it has none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline.core.job_folder import SWEEP_FILE, epoch_ms, read_json, sweep_end
from pipeline.options.tracking import MlflowConfig
from pipeline.tracking.store import NOTE_TAG, Store, flatten

# The parent run's tag that jobs find it by: through the tracking store, so that a job on
# another machine finds it too.
SWEEP_DIR_TAG = "sweep_dir"


def sweep_folder(sweep_dir: str | Path) -> Path:
    """The sweep folder as every job names it (the Ray launcher gives jobs this absolute path)."""
    return Path(str(sweep_dir)).absolute()


def parent_run_id(cfg: MlflowConfig, sweep_dir: str | Path) -> str | None:
    """The sweep's parent run, for a job of that sweep to nest under."""
    if not cfg.enabled:
        return None
    found = Store(cfg).find_run(SWEEP_DIR_TAG, str(sweep_folder(sweep_dir)))
    return found.info.run_id if found else None


def read_sweep_record(sweep_dir: Path) -> dict[str, Any]:
    return read_json(sweep_folder(sweep_dir) / SWEEP_FILE) or {}


def open_sweep_run(cfg: MlflowConfig, sweep_dir: Path, *, reopen: bool = False) -> tuple[str, bool]:
    """(the parent run's id, whether it existed): found by its folder, or created RUNNING.
    `reopen`: a sweep that goes on in its folder makes its ended parent RUNNING again."""
    return _open_sweep_run(Store(cfg), sweep_folder(sweep_dir), reopen)


def _open_sweep_run(store: Store, folder: Path, reopen: bool) -> tuple[str, bool]:
    # Concurrent callers (parallel resyncs of one sweep) must not create the parent twice.
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".tracking.lock")):
        found = store.find_run(SWEEP_DIR_TAG, str(folder))
        if found is None:
            return _create_sweep_run(store, folder), False
    if reopen and found.info.status != "RUNNING":
        store.run(found.info.run_id).reopen()
    return found.info.run_id, True


def _create_sweep_run(store: Store, folder: Path) -> str:
    record = read_sweep_record(folder)
    swept = " ".join(record.get("overrides") or [])
    tags = {
        **(record.get("tags") or {}),
        SWEEP_DIR_TAG: str(folder),
        "sweep_overrides": swept,
        NOTE_TAG: record.get("note") or f"Sweep over `{swept}` in {folder}: running.",
    }
    start = epoch_ms(record.get("started_at"))
    run = store.run(store.create_run(f"sweep {folder.name}", tags, start_time=start))
    run.log_params({"sweep.overrides": swept, "sweep.dir": str(folder)})
    return run.run_id


def log_sweep_folder(
    cfg: MlflowConfig, sweep_dir: Path, *, finished: bool = True, quick: bool = False
) -> str:
    """Makes the parent run whole from sweep.json: its tags, description, headline metrics and files;
    once the sweep has ended (`finished`), ended as it ended (sweep_end.json). Returns its id.
    `quick`: every store call gives up within seconds (a sweep ending early)."""
    folder = sweep_folder(sweep_dir)
    store = Store(cfg, quick=quick)
    run_id, _ = _open_sweep_run(store, folder, reopen=False)
    run = store.run(run_id)
    record = read_sweep_record(folder)
    logged = store.get_run(run_id)
    tags = {k: str(v) for k, v in flatten(record.get("tags") or {}).items()}
    if record.get("note"):
        tags[NOTE_TAG] = record["note"]
    if changed := {k: v for k, v in tags.items() if logged.data.tags.get(k) != v}:
        run.set_tags(changed)
    metrics = {k: float(v) for k, v in (record.get("metrics") or {}).items() if v is not None}
    if changed_metrics := {k: v for k, v in metrics.items() if logged.data.metrics.get(k) != v}:
        run.log_metrics(changed_metrics)
    present = run.artifact_names()
    for name in record.get("files") or []:
        if (folder / name).is_file() and name not in present:
            run.log_artifact(folder / name)
    for name, rows in (record.get("tables") or {}).items():
        if name not in present:
            run.log_table(rows, name)
    status = sweep_end(folder)["status"]
    if finished and logged.info.status != status:
        run.end(status, end_time=epoch_ms(record.get("ended_at")))
    return run_id


def end_sweep_runs(cfg: MlflowConfig, sweep_dir: Path, status: str) -> str | None:
    """The clean-up after an interrupt: the parent run and its RUNNING child runs end with `status`
    (KILLED), every store call within seconds. Returns the parent's id (None: it has none)."""
    store = Store(cfg, quick=True)
    found = store.find_run(SWEEP_DIR_TAG, str(sweep_folder(sweep_dir)))
    if found is None:
        return None
    if found.info.status != status:
        store.run(found.info.run_id).end(status)
    for child in store.running_children(found.info.run_id):
        store.run(child).end(status)
    return found.info.run_id
