"""Where a sweep stands, read from its folder: the rules that stop and resume a sweep.

A sweep folder is the sweep's record: `sweep.json` holds the overrides it was started with (its
identity), and job folder N holds job N (its `.hydra/overrides.yaml` and `job_status.json`).
Every sweeper that resumes follows the same rules, through these functions (hydra_plugins may
import pipeline.core):

- `sweep_difference(sweep_dir, overrides)`: rerunning into a folder continues the sweep only
  with the same overrides; another grid, model, dataset or option is refused with this line.
- `job_done(job_dir)`: a job FINISHED is not run again; KILLED, FAILED, SKIPPED and never
  started jobs run again, in the same folder under the same number. Its MLflow run is the sweep
  process's concern, made from the folder (pipeline.sweep.job_logging), so a job the store has
  not taken yet is logged, not recomputed.
- `job_difference(job_dir, overrides)`: a folder that holds another job is not reused.
- `hold_sweep(sweep_dir)`: one process at a time runs a sweep folder (a second resume of the same
  sweep started meanwhile is refused with this line); the kernel lets go of it when the process
  ends, however it ends (SIGKILL included).
- `mark_killed(sweep_dir, reason)`: after an interrupt, every job that had not ended (its
  process was stopped with the sweep) is KILLED, so a resume reruns it; `mark_stopped(job_dirs,
  reason)` for a launcher that stopped jobs on other hosts.
"""

from __future__ import annotations

import fcntl
import os
import platform
from pathlib import Path
from typing import IO

from pipeline.core.job_folder import (
    JOB_STATUS_FILE,
    OVERRIDES_FILE,
    SWEEP_FILE,
    job_status,
    now_iso,
    read_json,
    read_overrides,
    write_job_status,
)

# The sweeper option that runs every job of a sweep again, FINISHED ones included (conf: the
# project's basic sweeper, hydra_plugins/ernie_basic_sweeper).
RECOMPUTE_KEY = "hydra.sweeper.recompute"
LOCK_FILE = ".sweep.lock"
# The sweep folders this process runs, each with its open lock file (the lock lives as long as it).
_held: dict[Path, IO[str]] = {}


def _by_key(overrides: list[str]) -> dict[str, str]:
    pairs = (str(o).split("=", 1) for o in overrides)
    return {pair[0]: (pair[1] if len(pair) > 1 else "") for pair in pairs}


def overrides_difference(before: list[str], now: list[str]) -> str | None:
    """What differs between two override lists, in words; None where they are the same sweep."""
    old, new = _by_key(before), _by_key(now)
    parts = [
        f"{key} was {old[key]!r}, now {new[key]!r}"
        if key in old and key in new
        else f"{key}={new[key]} is new"
        if key in new
        else f"{key}={old[key]} is missing"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key) or (key in old) != (key in new)
    ]
    if parts:
        return "; ".join(parts)
    if list(old) != list(new):  # the grid's order numbers the jobs
        was = " ".join(before)
        return f"the same overrides in another order, which numbers the jobs differently (it was: {was})"
    return None


def sweep_difference(
    sweep_dir: Path, overrides: list[str], left_to_sweeper: frozenset[str] = frozenset()
) -> str | None:
    """One line where `sweep_dir` holds a sweep with other overrides than `overrides`; None where
    it holds this sweep or none. `left_to_sweeper`: keys the sweeper itself checks on a resume (an
    Optuna study's search space), not compared here. A damaged sweep.json holds no record to
    compare: the job folders' own overrides are checked as each job is planned."""
    record = read_json(Path(sweep_dir) / SWEEP_FILE)
    if record is None and (Path(sweep_dir) / SWEEP_FILE).is_file():
        return None
    if record is None and job_folders(sweep_dir):
        return (
            f"{sweep_dir} holds job folders but no {SWEEP_FILE} (no sweep of this project): "
            "give this sweep another hydra.sweep.dir"
        )
    if record is None or "overrides" not in record:
        return None

    def compared(given: list[str]) -> list[str]:
        return [str(o) for o in given if str(o).split("=", 1)[0].lstrip("+~") not in left_to_sweeper]

    difference = overrides_difference(compared(record["overrides"]), compared(overrides))
    if difference is None:
        return None
    return (
        f"{sweep_dir} holds another sweep ({difference}); rerun it with its own overrides to resume "
        "it, or give this sweep another hydra.sweep.dir"
    )


def job_difference(job_dir: Path, overrides: list[str]) -> str | None:
    """One line where `job_dir` holds a job with other overrides than `overrides`. A folder whose
    overrides file is missing or damaged holds no job that can be told apart: the job runs again
    there (the sweep's own record, sweep.json, already said the folder holds this sweep)."""
    before = read_overrides(job_dir)
    if before is None or before == list(overrides):
        return None
    difference = overrides_difference(before, list(overrides)) or "other overrides"
    return f"{job_dir} holds another job ({difference}); give this sweep another hydra.sweep.dir"


def job_done(job_dir: Path) -> bool:
    """FINISHED. A folder whose overrides file is damaged runs again: the summary names jobs by it."""
    return job_status(job_dir)["status"] == "FINISHED" and read_overrides(job_dir) is not None


def job_ended(job_dir: Path) -> bool:
    """Whether the job reached its end: FINISHED, FAILED, SKIPPED or KILLED."""
    return job_status(job_dir)["status"] in ("FINISHED", "FAILED", "SKIPPED", "KILLED")


def _running_elsewhere(job_dir: Path) -> bool:
    """RUNNING in another live process of this host, or on another host (whose processes this one
    cannot see: the launcher that ran it there says when it stopped it)."""
    status = job_status(job_dir)
    if status["status"] != "RUNNING":
        return False
    pid = status.get("pid")
    if status.get("host") != platform.node():
        return True
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_folders(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders, in job order."""
    found = {p.parent.parent for p in Path(sweep_dir).glob(f"*/{OVERRIDES_FILE}")}
    found |= {p.parent for p in Path(sweep_dir).glob(f"*/{JOB_STATUS_FILE}")}
    return sorted(found, key=lambda p: (len(p.name), p.name))


def mark_killed(sweep_dir: Path, reason: str) -> list[Path]:
    """Every job of the sweep that had not ended becomes KILLED with `reason`; returns them. Call it
    once the launcher has stopped its workers. A job RUNNING in another live process of this host,
    or on another host, is left alone: another sweep process may run it (Optuna's shared studies);
    a launcher marks the jobs it stopped on other hosts (`mark_stopped`)."""
    killed = []
    for job_dir in job_folders(sweep_dir):
        if not job_ended(job_dir) and not _running_elsewhere(job_dir):
            write_job_status(job_dir, "KILLED", reason)
            killed.append(job_dir)
    return killed


def mark_stopped(job_dirs: list[Path], reason: str) -> None:
    """A launcher stopped these jobs (wherever they ran): the ones that had not ended are KILLED."""
    for job_dir in job_dirs:
        if Path(job_dir).is_dir() and not job_ended(Path(job_dir)):
            write_job_status(job_dir, "KILLED", reason)


def hold_sweep(sweep_dir: Path) -> str | None:
    """Takes `sweep_dir` for this process until `release_sweep` or its end; one line where another
    process runs it (which process, and what to do), None once this one holds it."""
    folder = Path(sweep_dir).absolute()
    if folder in _held:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_FILE).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        return (
            f"{folder} is being run by {holder}: wait for it to end, or stop it (Ctrl-C) and rerun this "
            "command to resume the sweep"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {platform.node()} since {now_iso()}")
    handle.flush()
    _held[folder] = handle
    return None


def release_sweep(sweep_dir: Path) -> None:
    handle = _held.pop(Path(sweep_dir).absolute(), None)
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
