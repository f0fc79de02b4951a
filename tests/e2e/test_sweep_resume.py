"""Stopping and resuming sweeps with real processes and real signals: Ctrl-C (SIGINT to the whole
process group, as a terminal sends it) and SIGTERM (to the process alone, as `kill`, `docker stop`
and batch schedulers send it) at several moments of a sweep on each launcher, then the very
command the interrupt printed; a resume refused for another sweep; `hydra.sweeper.recompute`;
and run times that are the job folder's.

A process that a non-interactive shell starts in the background inherits SIGINT ignored, and then
Python installs no KeyboardInterrupt handler: every run here starts in a session of its own with
SIGINT's default restored, as a terminal starts it.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import psutil
import pytest

from pipeline import PROJECT_ROOT
from pipeline.core.job_folder import epoch_ms, job_status, read_json
from tests.conftest import runs_by_kind

pytestmark = pytest.mark.slow

GRID = ["precision=fp32,int8", "batch_size=8,32", "infer.predict_data=false"]
JOBS = 4  # GRID's: 2 precisions x 2 batch sizes
LAUNCHERS = {
    "basic": ["device.num_threads=1"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "device.num_threads=1"],
    "ray": ["hydra/launcher=ray", "hydra.launcher.ray.init.num_cpus=2", "device.num_threads=1"],
}
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def _as_a_terminal_starts_it() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Ended:
    returncode: int
    stdout: str
    stderr: str
    survivors: list[str]  # processes the run started that outlived it


class Run:
    """`python run.py ARGS` in its own session, its output in files (tqdm writes a lot)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.out, self.err = cwd / f"out-{time.monotonic_ns()}.txt", cwd / f"err-{time.monotonic_ns()}.txt"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_as_a_terminal_starts_it,
            )
        self.descendants: list[psutil.Process] = []

    def wait_until(self, ready: Callable[[], bool], what: str, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended before {what}:\n{self.err.read_text()[-3000:]}")
            time.sleep(0.01)
        raise AssertionError(f"no {what} within {seconds} s")

    def send(self, signum: int) -> None:
        """Ctrl-C reaches the whole process group; SIGTERM only the process."""
        with contextlib.suppress(psutil.Error):
            self.descendants = psutil.Process(self.process.pid).children(recursive=True)
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            os.kill(self.process.pid, signum)

    def end(self, seconds: float = 120) -> Ended:
        try:
            self.process.wait(timeout=seconds)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        survivors = _survivors(self.descendants)
        for process in survivors:  # the test's own mess, by process id
            with contextlib.suppress(psutil.Error):
                process.kill()
        described = [" ".join(p.info["cmdline"] or [])[:120] for p in survivors]
        return Ended(self.process.returncode, self.out.read_text(), self.err.read_text(), described)


def _survivors(processes: list[psutil.Process], seconds: float = 20) -> list[psutil.Process]:
    """Those still alive (not zombies) after `seconds`: Ray's services stop on their own schedule."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for process in processes:
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    process.info = {"cmdline": process.cmdline()}
                    alive.append(process)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


@pytest.fixture
def sweep_env(cache_dir: Path, ray_tmp: Path) -> dict[str, str]:
    return {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir), "RAY_TMPDIR": str(ray_tmp)}


def _uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def _jobs(sweep: Path) -> list[Path]:
    return sorted((p.parent.parent for p in sweep.glob("*/.hydra/overrides.yaml")), key=lambda p: int(p.name))


def evaluating(sweep: Path) -> Callable[[], bool]:
    """A job has its model ready and is running it over the eval split (no metrics yet)."""

    def ready() -> bool:
        for job in _jobs(sweep):
            record = read_json(job / "job.json") or {}
            if "model" in record and not (job / "metrics.json").exists():
                return True
        return False

    return ready


def logging(sweep: Path) -> Callable[[], bool]:
    """A job has ended its work (FINISHED in its folder) and the sweep process has not made its run
    yet, and a job of the sweep has still to finish: the next job may be starting or running. (After
    the last job the sweep's end may have recorded everything before the signal lands: then the
    signal stops only the exit, tested in tests/unit/test_sweep_state.py.)"""

    def ready() -> bool:
        finished = [job for job in _jobs(sweep) if job_status(job)["status"] == "FINISHED"]
        return len(finished) < JOBS and any(not (job / "tracking.json").exists() for job in finished)

    return ready


def stopped_cleanly(ended: Ended, signum: int, what: str) -> str:
    """The interrupt's one line (the last of stderr), its exit status, no traceback and no process
    left behind; returns the command the line says resumes it."""
    assert ended.returncode == 128 + signum, ended.stderr[-3000:]
    assert "Traceback" not in ended.stderr + ended.stdout, ended.stderr[-3000:]
    lines = [line for line in ended.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert sum("interrupted by" in line for line in lines) == 1, ended.stderr[-3000:]
    last = lines[-1]
    assert last.startswith(f"interrupted by {NAMES[signum]}: {what}"), last
    assert not ended.survivors, ended.survivors
    return last.split("; to resume: ", 1)[1]


def no_run_left_running(tmp_path: Path) -> None:
    client = mlflow.MlflowClient(_uri(tmp_path))
    experiment = client.get_experiment_by_name("cli-test")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []


def killed_folders(sweep: Path) -> list[str]:
    statuses = {job.name: job_status(job) for job in _jobs(sweep)}
    assert "RUNNING" not in {s["status"] for s in statuses.values()}, statuses
    assert not list(sweep.glob("*/.*.json.*")), "a half-written file"
    return [name for name, s in statuses.items() if s["status"] == "KILLED"]


def finished_before(sweep: Path) -> dict[str, tuple[int, str | None]]:
    """Jobs FINISHED so far: their metrics.json's mtime and their run (None: not made yet)."""
    return {
        job.name: (
            (job / "metrics.json").stat().st_mtime_ns,
            (read_json(job / "tracking.json") or {}).get("run_id"),
        )
        for job in _jobs(sweep)
        if job_status(job)["status"] == "FINISHED"
    }


def resumed_whole(
    tmp_path: Path, sweep: Path, parent_id: str, untouched: dict[str, tuple[int, str | None]]
) -> None:
    """Every job FINISHED once, in its own folder, under the one parent run; jobs that had
    FINISHED were not run again (and kept their runs, or got one from their folders)."""
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [(str(n), "FINISHED") for n in range(4)]
    parents, children = runs_by_kind(_uri(tmp_path), "cli-test")
    assert [(p.info.run_id, p.info.status) for p in parents] == [(parent_id, "FINISHED")]
    assert sorted(c.data.tags["job_dir"] for c in children) == [str(sweep / str(n)) for n in range(4)]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent_id}
    for name, (mtime, run_id) in untouched.items():
        assert (sweep / name / "metrics.json").stat().st_mtime_ns == mtime, f"job {name} ran again"
        if run_id is not None:
            assert (read_json(sweep / name / "tracking.json") or {})["run_id"] == run_id
    assert not (sweep / "sweep_end.json").exists()


@pytest.mark.parametrize(
    ("launcher", "signum", "moment"),
    [
        ("basic", signal.SIGINT, evaluating),
        ("basic", signal.SIGTERM, logging),
        ("joblib", signal.SIGTERM, evaluating),
        ("joblib", signal.SIGINT, logging),
        ("ray", signal.SIGINT, evaluating),
        ("ray", signal.SIGTERM, logging),
    ],
    ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", NAMES.get(v, str(v))),
)
def test_an_interrupted_sweep_ends_killed_and_the_same_command_resumes_it(
    launcher: str,
    signum: int,
    moment: Callable[[Path], Callable[[], bool]],
    user_overrides: list[str],
    sweep_env: dict[str, str],
    tmp_path: Path,
) -> None:
    if launcher == "ray":
        pytest.importorskip("ray")
    sweep = tmp_path / "sweep"
    args = ["-m", *user_overrides, *GRID, *LAUNCHERS[launcher], f"hydra.sweep.dir={sweep}"]
    run = Run(args, tmp_path, sweep_env)
    run.wait_until(moment(sweep), moment.__name__)
    run.send(signum)
    ended = run.end()

    command = stopped_cleanly(ended, signum, f"sweep {sweep} (")
    assert f"hydra.sweep.dir={sweep}" in command
    killed = killed_folders(sweep)
    if moment is evaluating:
        assert killed, "the job that was running is KILLED"
    assert all(job_status(sweep / k)["error"] == f"interrupted by {NAMES[signum]}" for k in killed)
    no_run_left_running(tmp_path)
    parents, _ = runs_by_kind(_uri(tmp_path), "cli-test")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert read_json(sweep / "sweep_end.json") == {
        "status": "KILLED",
        "reason": f"interrupted by {NAMES[signum]}",
    }
    assert {
        r["job"] for r in csv.DictReader((sweep / "summary.csv").open()) if r["status"] == "KILLED"
    } == set(killed)
    untouched = finished_before(sweep)

    resumed = subprocess.run(
        shlex.split(command), cwd=tmp_path, env=sweep_env, capture_output=True, text=True, timeout=900
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if len(untouched) == 4:
        assert f"sweep {sweep}: all 4 jobs finished already, nothing to run" in resumed.stdout
    elif untouched:
        assert f"resuming sweep {sweep}: {len(untouched)} of 4 jobs finished" in resumed.stdout
    resumed_whole(tmp_path, sweep, parents[0].info.run_id, untouched)


def test_ctrl_c_twice_still_leaves_no_run_running(
    user_overrides: list[str], sweep_env: dict[str, str], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    run = Run(["-m", *user_overrides, *GRID, f"hydra.sweep.dir={sweep}"], tmp_path, sweep_env)
    run.wait_until(logging(sweep), "logging")
    run.send(signal.SIGINT)
    time.sleep(0.2)  # inside the clean-up
    run.send(signal.SIGINT)
    stopped_cleanly(run.end(), signal.SIGINT, f"sweep {sweep} (")
    killed_folders(sweep)
    no_run_left_running(tmp_path)


def paddle2onnx_loaded(pid: int) -> bool:
    """paddle2onnx's library is mapped in the process: `import paddle` is over, the conversion
    under way (about a second before the model is cached, on a machine that converts the tiny
    model in 2 s)."""
    with contextlib.suppress(OSError):
        return "paddle2onnx" in Path(f"/proc/{pid}/maps").read_text()
    return False


@pytest.mark.parametrize(
    ("signum", "moment"),
    [(signal.SIGINT, "import"), (signal.SIGTERM, "import"), (signal.SIGTERM, "conversion")],
    ids=str,
)
def test_a_cold_conversion_stops_cleanly_and_leaves_no_cache_entry(
    signum: int, moment: str, tiny_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    """paddle replaces Python's SIGTERM handler at the C level (its fatal-signal report) and
    paddle2onnx turns a KeyboardInterrupt inside `import paddle` into an ImportError: the job
    still ends KILLED with one line, and the cache keeps no half-built model."""
    cache, job = tmp_path / "empty-cache", tmp_path / "job"
    args = [
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"dataset.dir={demo_data_dir}",
        f"mlflow.tracking_uri={_uri(tmp_path)}",
        "mlflow.experiment_name=cli-test",
        f"hydra.run.dir={job}",
    ]
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache)}
    run = Run(args, tmp_path, env)
    run.wait_until(lambda: any((cache / "onnx").glob(".*")), "the conversion's build folder")
    if moment == "import":
        time.sleep(0.3)  # into paddle's import (0.8 s or more after the build folder appears)
    else:
        run.wait_until(lambda: paddle2onnx_loaded(run.process.pid), "paddle2onnx's conversion")
    run.send(signum)
    ended = run.end()
    command = stopped_cleanly(ended, signum, f"job default in {job} (KILLED)")
    assert job_status(job)["status"] == "KILLED"
    assert [p.name for p in (cache / "onnx").iterdir() if p.suffix != ".lock"] == []
    no_run_left_running(tmp_path)
    again = subprocess.run(
        shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    status = job_status(job)
    assert status["status"] == "FINISHED"
    # One run for the job, the rerun's: the KILLED attempt had none; its times are the folder's.
    client = mlflow.MlflowClient(_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("cli-test").experiment_id])
    assert [(r.info.status, r.info.start_time, r.info.end_time) for r in runs] == [
        ("FINISHED", epoch_ms(status["started_at"]), epoch_ms(status["ended_at"]))
    ]


def test_a_folder_that_holds_another_sweep_is_refused_and_recompute_runs_every_job(
    run_cli: Callable[..., subprocess.CompletedProcess], user_overrides: list[str], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    first = ["-m", *user_overrides, "batch_size=8,32", "infer.predict_data=false", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*first).returncode == 0
    before = (sweep / "sweep.json").read_text()

    other = run_cli(
        "-m", *user_overrides, "batch_size=8,16,32", "infer.predict_data=false", f"hydra.sweep.dir={sweep}"
    )
    assert other.returncode == 2
    assert other.stderr.strip().splitlines() == [
        f"error: {sweep} holds another sweep (batch_size was '8,32', now '8,16,32'); rerun it with its own "
        "overrides to resume it, or give this sweep another hydra.sweep.dir"
    ]
    model = run_cli(
        "-m",
        *user_overrides,
        "batch_size=8,32",
        "infer.predict_data=false",
        "precision=int8",
        f"hydra.sweep.dir={sweep}",
    )
    assert model.returncode == 2 and "precision=int8 is new" in model.stderr
    assert (sweep / "sweep.json").read_text() == before
    assert not (sweep / "2").exists()

    again = run_cli(*first)
    assert again.returncode == 0 and "all 2 jobs finished already, nothing to run" in again.stdout
    mtimes = {n: (sweep / n / "metrics.json").stat().st_mtime_ns for n in ("0", "1")}
    recomputed = run_cli(*first, "hydra.sweeper.recompute=true")
    assert recomputed.returncode == 0, recomputed.stderr[-3000:]
    assert all((sweep / n / "metrics.json").stat().st_mtime_ns != m for n, m in mtimes.items())
    parents, children = runs_by_kind(_uri(tmp_path), "cli-test")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["job_dir"] for c in children) == [str(sweep / "0"), str(sweep / "1")]


def test_run_times_are_the_job_folders_also_after_a_resync(
    run_cli: Callable[..., subprocess.CompletedProcess], user_overrides: list[str], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", *user_overrides, "batch_size=8,32", "infer.predict_data=false", f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    time.sleep(1.5)  # a resync's own time would differ from the folders'
    resynced = subprocess.run(
        [sys.executable, "-m", "pipeline.tracking", "resync", str(sweep), "--experiment", "resynced"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resynced.returncode == 0, resynced.stderr[-3000:]
    record = read_json(sweep / "sweep.json") or {}
    for experiment in ("cli-test", "resynced"):
        parents, children = runs_by_kind(_uri(tmp_path), experiment)
        assert len(children) == 2
        for child in children:
            status = job_status(Path(child.data.tags["job_dir"]))
            assert child.info.start_time == epoch_ms(status["started_at"])
            assert child.info.end_time == epoch_ms(status["ended_at"])
            assert child.info.end_time - child.info.start_time > 200  # a job, not its logging
        assert parents[0].info.start_time == epoch_ms(record["started_at"])
        assert parents[0].info.end_time == epoch_ms(record["ended_at"])


# --- faults between a sweep and its resume ------------------------------------------------------

TWO_BY_TWO = ["precision=fp32,int8", "batch_size=8,32", "infer.predict_data=false", "device.num_threads=1"]


def test_sigkill_then_the_same_command_resumes(
    user_overrides: list[str], sweep_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL (the OOM killer, a lost node) leaves no clean-up at all: a job RUNNING in its folder,
    the parent run RUNNING. The same command reruns that job and the ones never started, under the
    same parent, and leaves the finished ones as they were."""
    sweep = tmp_path / "sweep"
    args = ["-m", *user_overrides, *TWO_BY_TWO, f"hydra.sweep.dir={sweep}"]
    run = Run(args, tmp_path, sweep_env)

    def one_done_one_evaluating() -> bool:
        return bool(finished_before(sweep)) and evaluating(sweep)()

    def parent_run_made() -> bool:
        """The sweep's logging thread opens the parent run once the first job has started, after
        MLflow's import: on a fast machine a job can be done before it."""
        with contextlib.suppress(sqlite3.Error):
            store = sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True)
            with contextlib.closing(store):
                return store.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
        return False

    run.wait_until(lambda: parent_run_made() and one_done_one_evaluating(), "a job done, the next evaluating")
    os.killpg(run.process.pid, signal.SIGKILL)
    assert run.end().returncode == -signal.SIGKILL
    assert "RUNNING" in {job_status(job)["status"] for job in _jobs(sweep)}
    parents, _ = runs_by_kind(_uri(tmp_path), "cli-test")
    assert [p.info.status for p in parents] == ["RUNNING"]
    untouched = finished_before(sweep)

    resumed = Run(args, tmp_path, sweep_env).end(seconds=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming sweep {sweep}: {len(untouched)} of 4 jobs finished" in resumed.stdout
    resumed_whole(tmp_path, sweep, parents[0].info.run_id, untouched)


def test_a_second_resume_of_a_running_sweep_is_one_line_and_touches_nothing(
    user_overrides: list[str], sweep_env: dict[str, str], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *user_overrides, *TWO_BY_TWO, f"hydra.sweep.dir={sweep}"]
    first = Run(args, tmp_path, sweep_env)
    lock = sweep / ".sweep.lock"
    first.wait_until(lambda: lock.is_file() and lock.read_text().startswith("process"), "the sweep's lock")
    second = Run(args, tmp_path, sweep_env).end()
    assert second.returncode == 2, second.stderr[-3000:]
    assert (
        second.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {sweep} is being run by process {first.process.pid} on ")
    )
    assert "wait for it to end, or stop it (Ctrl-C) and rerun this command" in second.stderr
    ended = first.end(seconds=600)
    assert ended.returncode == 0, ended.stderr[-3000:]
    resumed_whole(tmp_path, sweep, runs_by_kind(_uri(tmp_path), "cli-test")[0][0].info.run_id, {})


def test_a_resume_after_folders_store_and_cache_were_damaged(
    user_overrides: list[str], sweep_env: dict[str, str], tmp_path: Path
) -> None:
    """After a whole sweep: job 1's folder removed, job 2's overrides and job 3's status damaged,
    the tracking database removed and the cache's model damaged. The same command reruns jobs 1-3
    (their model rebuilt), leaves job 0 as it was, and the new store gets one parent run and a run
    per job, job 0's logged from its folder."""
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    env = {**sweep_env, "ERNIE_ONNX_CACHE": str(cache)}
    args = ["-m", *user_overrides, *TWO_BY_TWO, f"hydra.sweep.dir={sweep}"]
    first = Run(args, tmp_path, env).end(seconds=600)
    assert first.returncode == 0, first.stderr[-3000:]
    job0 = (sweep / "0" / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(sweep / "1")
    (sweep / "2" / ".hydra" / "overrides.yaml").write_text("- precision=fp32\n- [batch_size: ")
    status = sweep / "3" / "job_status.json"
    status.write_text(status.read_text()[:20])
    (tmp_path / "mlflow.db").unlink()
    model = next(cache.glob("onnx/*/model.onnx"))
    model.write_bytes(model.read_bytes()[:1000])

    resumed = Run(args, tmp_path, env).end(seconds=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert f"resuming sweep {sweep}: 1 of 4 jobs finished, running 3" in resumed.stdout
    assert "logging 1 finished jobs" in resumed.stdout
    assert f"cache entry {model.parent} is damaged" in resumed.stdout + resumed.stderr
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == job0
    parents, _ = runs_by_kind(_uri(tmp_path), "cli-test")
    resumed_whole(tmp_path, sweep, parents[0].info.run_id, {})


def test_a_tracking_server_that_restarts_mid_sweep_loses_no_run(
    user_overrides: list[str], sweep_env: dict[str, str], tmp_path: Path
) -> None:
    """The team's `mlflow server` goes down after job 0 is logged and comes back while the sweep
    runs on: jobs that ended meanwhile keep their files and say why the store did not take them; the
    sweep ends with one line naming them (exit 2). The same command then runs nothing again and
    logs those jobs: one parent run, a run per job."""
    from tests.conftest import free_port, running_server, venv_command

    folder, port = tmp_path / "server", free_port()
    folder.mkdir()
    uri = f"http://127.0.0.1:{port}"
    server = [venv_command("mlflow"), "server", "--host=127.0.0.1", f"--port={port}"]
    server += [f"--backend-store-uri=sqlite:///{folder}/mlflow.db", f"--artifacts-destination={folder}/art"]
    sweep = tmp_path / "sweep"
    overrides = [o for o in user_overrides if not o.startswith("mlflow.tracking_uri=")]
    args = ["-m", *overrides, f"mlflow.tracking_uri={uri}", *TWO_BY_TWO, f"hydra.sweep.dir={sweep}"]

    def refused() -> bool:
        return any("error" in (read_json(job / "tracking.json") or {}) for job in _jobs(sweep))

    with running_server(server, f"{uri}/health", folder / "first.log"):
        run = Run(args, tmp_path, sweep_env)
        run.wait_until(lambda: bool(finished_before(sweep)), "job 0 logged")
    run.wait_until(refused, "a job the store did not take", seconds=600)
    with running_server(server, f"{uri}/health", folder / "again.log"):
        ended = run.end(seconds=600)
        assert ended.returncode == 2, ended.stderr[-3000:]
        last = ended.stderr.strip().splitlines()[-1]
        assert last.startswith("error: the MLflow store did not take jobs "), last
        assert last.endswith(f"python -m pipeline.tracking resync {sweep}"), last
        assert {job_status(job)["status"] for job in _jobs(sweep)} == {"FINISHED"}

        again = Run(args, tmp_path, sweep_env).end(seconds=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "all 4 jobs finished already, nothing to run" in again.stdout
        assert "finished jobs of" in again.stdout  # logged from their folders
        parents, children = runs_by_kind(uri, "cli-test")
        assert [p.info.status for p in parents] == ["FINISHED"]
        assert sorted(c.data.tags["job_dir"] for c in children) == [str(sweep / str(n)) for n in range(4)]
        assert {c.info.status for c in children} == {"FINISHED"}
