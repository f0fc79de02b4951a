"""The rules that resume a sweep, on folders written here: which jobs are done, what differs between
two sweeps, the runs a launcher can number, the command an interrupt prints."""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from hydra_plugins.ernie_basic_sweeper.basic_sweeper import consecutive_runs, covering_jobs
from pipeline.cli import interrupts_end_cleanly, quick_exit, resume_command
from pipeline.core import interrupts
from pipeline.core.job_folder import job_times, start_job, write_job_status
from pipeline.core.sweep_state import job_done, mark_killed, overrides_difference, sweep_difference


def job(sweep: Path, name: str, status: str, *, pid: int | None = None) -> Path:
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"batch_size={name}"]))
    (folder / "config.yaml").write_text(yaml.safe_dump({"mlflow": {"enabled": True}}))
    start_job(folder)
    if pid is not None:
        record = json.loads((folder / "job_status.json").read_text())
        (folder / "job_status.json").write_text(json.dumps({**record, "pid": pid}))
    if status != "RUNNING":
        write_job_status(folder, status)
    return folder


def test_a_job_is_done_once_finished_whether_or_not_its_run_was_made(tmp_path: Path) -> None:
    # Its run is made from the folder by the sweep process (the one that resumes it, too).
    assert job_done(job(tmp_path, "0", "FINISHED"))
    for n, status in enumerate(("FAILED", "KILLED", "SKIPPED", "RUNNING"), start=2):
        assert not job_done(job(tmp_path, str(n), status))


def test_an_interrupt_kills_what_had_not_ended_and_leaves_the_rest(tmp_path: Path) -> None:
    done = job(tmp_path, "0", "FINISHED")
    failed = job(tmp_path, "1", "FAILED")
    unlogged = job(tmp_path, "2", "FINISHED")  # its run not made yet: its work is done
    dead = job(tmp_path, "3", "RUNNING", pid=2**22 + 1)  # above Linux's pid_max
    alive = job(tmp_path, "4", "RUNNING", pid=os.getppid())  # another live process
    ours = job(tmp_path, "5", "RUNNING")
    killed = mark_killed(tmp_path, "interrupted by SIGINT")
    assert killed == [dead, ours]
    statuses = {
        p.name: json.loads((p / "job_status.json").read_text())
        for p in (done, failed, unlogged, alive, *killed)
    }
    assert {n: s["status"] for n, s in statuses.items()} == {
        "0": "FINISHED",
        "1": "FAILED",
        "2": "FINISHED",
        "4": "RUNNING",
        "3": "KILLED",
        "5": "KILLED",
    }
    assert statuses["3"]["error"] == "interrupted by SIGINT" and statuses["3"]["started_at"]
    start, end = job_times(dead)
    assert start is not None and end is not None and start <= end


def test_another_sweep_is_named_by_its_difference(tmp_path: Path) -> None:
    before = ["precision=fp32,int8", "batch_size=8,16", "model.path_prefix=/a"]
    assert overrides_difference(before, list(before)) is None
    assert overrides_difference(
        before, ["precision=fp32,int8", "batch_size=8,16,32", "model.path_prefix=/a"]
    ) == ("batch_size was '8,16', now '8,16,32'")
    assert overrides_difference(before, [*before, "dataset.dir=/d"]) == "dataset.dir=/d is new"
    assert overrides_difference(before, before[:2]) == "model.path_prefix=/a is missing"
    reordered = overrides_difference(before, [before[1], before[0], before[2]])
    assert reordered is not None and reordered.startswith("the same overrides in another order")

    assert sweep_difference(tmp_path / "new", before) is None
    (tmp_path / "sweep.json").write_text(json.dumps({"overrides": before}))
    assert sweep_difference(tmp_path, before) is None
    refused = sweep_difference(tmp_path, ["precision=fp32", *before[1:]])
    assert refused is not None and "precision was 'fp32,int8', now 'fp32'" in refused
    foreign = tmp_path / "foreign"
    job(foreign, "0", "FINISHED")
    assert "no sweep.json" in (sweep_difference(foreign, before) or "")


def test_pending_jobs_launch_as_runs_of_consecutive_numbers() -> None:
    assert consecutive_runs([]) == []
    assert consecutive_runs([3, 4, 5, 7, 9, 10]) == [[3, 4, 5], [7], [9, 10]]


def test_a_new_sweeps_check_composes_as_many_jobs_as_its_longest_list_of_values() -> None:
    grid = [[f"a={a}", f"b={b}", f"c={c}"] for a in (1, 2, 3) for b in "xy" for c in "pq"]
    covering = covering_jobs(grid)
    assert covering == [["a=1", "b=x", "c=p"], ["a=2", "b=y", "c=q"], ["a=3", "b=x", "c=p"]]
    assert {value for job in covering for value in job} == {value for job in grid for value in job}
    assert covering_jobs([["a=1"]]) == [["a=1"]] and covering_jobs([]) == []


def test_the_resume_command_is_the_typed_one_with_the_sweep_folder() -> None:
    typed = [".venv/bin/python", "run.py", "-m", "batch_size=8,16", "hydra.sweep.dir=out", "a=b c"]
    assert resume_command(typed, {"hydra.sweep.dir": "/abs/out"}) == (
        ".venv/bin/python run.py -m batch_size=8,16 'a=b c' hydra.sweep.dir=/abs/out"
    )


def test_a_signal_a_library_swallowed_is_raised_again() -> None:
    interrupts.forget()
    with interrupts.handled(), pytest.raises(ImportError):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:  # paddle2onnx's bare except around `import paddle`
            raise ImportError("Failed to import paddle") from None
    assert interrupts.received() == signal.SIGTERM
    with pytest.raises(interrupts.Terminated):
        interrupts.raise_if_received()
    interrupts.forget()


def test_a_signal_that_lands_in_a_finalizer_is_raised_after_it(capfd: pytest.CaptureFixture[str]) -> None:
    """Python drops an exception raised in `__del__` or a weakref callback (printing "Exception
    ignored"): a Ctrl-C the GC happened to catch there would be lost."""

    class SignalledWhileCollected:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, inside the finalizer

    interrupts.forget()
    with interrupts.handled(), pytest.raises(KeyboardInterrupt):
        SignalledWhileCollected()
        time.sleep(5)
    assert "Exception ignored" not in capfd.readouterr().err
    assert interrupts.received() == signal.SIGINT
    interrupts.forget()


def test_a_signal_after_the_work_ended_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Ctrl-C while the process exits, its sweep ended and recorded, stopped nothing: the line
    says that, not "before any job started", and offers nothing to resume."""
    monkeypatch.setattr(interrupts, "_ended", [])
    monkeypatch.setattr(interrupts, "_cleanups", {})
    handlers = {signum: signal.getsignal(signum) for signum in interrupts.NAMES}
    try:
        interrupts.on_interrupt("sweep /x/sweep", lambda reason: None)
        interrupts.done("sweep /x/sweep")
        with pytest.raises(SystemExit) as exit_, interrupts_end_cleanly():
            raise KeyboardInterrupt
        assert exit_.value.code == 130
        line = capsys.readouterr().err.strip()
        assert line == "interrupted by SIGINT: after sweep /x/sweep had ended; nothing to resume"

        interrupts.on_interrupt("job /x/sweep/0", lambda reason: None)  # something runs again
        assert interrupts.last_ended() is None
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        interrupts.forget()


def test_a_store_write_inside_a_clean_up_leaves_a_second_signal_to_the_clean_up() -> None:
    """The clean-up defers signals without raising them; a store write inside it defers them too,
    and must not raise the second Ctrl-C at its own end, cutting the clean-up short."""
    interrupts.forget()
    with interrupts.handled():
        try:
            with interrupts.deferred(raise_last=False) as arrived:
                with interrupts.deferred():  # raise_last: what a write outside a clean-up does
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.05)
                reached = True
        except KeyboardInterrupt:
            pytest.fail("the write raised the second signal: the clean-up was cut short")
        assert reached and arrived == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt), interrupts.deferred():  # alone, it raises at its end
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    interrupts.forget()


def test_quick_exit_leaves_every_object_to_the_end_of_the_process_also_after_an_error() -> None:
    """The interpreter's last garbage collections skip frozen objects (0.5 to 0.8 s with MLflow)."""
    frozen_before = gc.get_freeze_count()  # Python 3.12 starts with a few hundred frozen
    try:
        with pytest.raises(SystemExit), quick_exit():
            raise SystemExit(2)
        assert gc.get_freeze_count() > frozen_before + 1000
    finally:
        gc.unfreeze()
