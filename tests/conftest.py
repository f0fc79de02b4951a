"""Shared fixtures: the real demo corpus, a tiny ERNIE trained on it in seconds, run.py as users call it.

Tests live in tiers, and each test's marker comes from its folder: tests/unit (no subprocess, no
server, no model run), tests/integration (the tiny model through the stages, in this process),
tests/e2e (the CLI, sweeps, Ray, servers, serving). `make test-fast` runs unit and integration.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from pipeline import PROJECT_ROOT
from pipeline.core.demo_data import demo_dataset
from pipeline.demo.model import TrainConfig, train_demo_model
from pipeline.options.tasks import TASKS

TIERS = ("unit", "integration", "e2e")


def pytest_configure(config: pytest.Config) -> None:
    # A shell starts what it runs in the background (`make test &`, nohup) with SIGINT ignored, and
    # every process started from there inherits it, sweeps included, which keep an ignored SIGINT
    # ignored (pipeline/core/interrupts.py). The interrupt tests need SIGINT delivered.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = next((part for part in item.path.parts if part in TIERS), None)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


TINY = TrainConfig(
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    intermediate_size=64,
    max_vocab=3000,
    epochs=2,
    max_train_samples=3000,
    batch_size=32,
    learning_rate=5e-3,
    distill_weight=0.0,
    augment_clauses=False,
    mlm_epochs=0,
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def demo_data_dir(cache_dir: Path) -> Path:
    return demo_dataset(cache_dir)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, demo_data_dir: Path) -> Path:
    """A folder with export/float32.{json,pdiparams}, tokenizer/ and checkpoint/."""
    out = tmp_path_factory.mktemp("tiny-model")
    train_demo_model(demo_data_dir, out, TINY)
    return out


TinyTaskModel = Callable[[str], Path]


@pytest.fixture(scope="session")
def tiny_task_model(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> TinyTaskModel:
    """`tiny_task_model("pair")`: a tiny ERNIE trained in seconds on that task's demo dataset (its
    loss and encoding follow the task), trained on first request: the folder as `tiny_model`'s, plus
    train_metrics.json. For task=multi_class it is `tiny_model`'s recipe on the same data."""
    built: dict[str, Path] = {}

    def model(task_name: str) -> Path:
        if task_name not in built:
            task = TASKS.create(task_name)
            out = tmp_path_factory.mktemp(f"tiny-{task_name}-model")
            metrics = train_demo_model(task.demo_dataset(cache_dir), out, TINY, task)
            (out / "train_metrics.json").write_text(json.dumps(metrics, ensure_ascii=False), encoding="utf-8")
            built[task_name] = out
        return built[task_name]

    return model


RunCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_cli(tmp_path: Path, cache_dir: Path) -> RunCli:
    """`python run.py ARGS` from `tmp_path` (relative output paths land there), sharing the test cache."""

    def run(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
            cwd=tmp_path,
            env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def user_overrides(tiny_model: Path, tmp_path: Path) -> list[str]:
    """The tiny model as a user's own export, tracked in a SQLite store under `tmp_path`."""
    return [
        f"model.path_prefix={tiny_model / 'export' / 'float32'}",
        f"model.name_or_path={tiny_model / 'tokenizer'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        "mlflow.experiment_name=cli-test",
    ]


def runs_by_kind(tracking_uri: str, experiment: str) -> tuple[list, list]:
    """(parent runs, child runs) of an experiment: a sweep has one parent and a child per job."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {tracking_uri}"
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process_group(process: subprocess.Popen) -> None:
    """Stops a server we started (in its own session), and everything it spawned, by its process id."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)
    # What it spawned may sit in process groups of its own, but never leaves its session.
    for leftover in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(leftover.pid) == process.pid:
                leftover.kill()


def wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {seconds} s")


@contextlib.contextmanager
def running_server(
    command: list[str],
    ready_url: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    seconds: float = 120,
) -> Iterator[subprocess.Popen]:
    """A server process in its own session, once `ready_url` answers; stopped by its process id after."""
    import requests

    def answering() -> bool:
        try:
            return requests.get(ready_url, timeout=2).ok
        except requests.RequestException:
            return False

    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_until(answering, Path(command[0]).name, process, seconds)
            yield process
        finally:
            stop_process_group(process)


def venv_command(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 as `make mlflow-server` starts it: SQLite + served artifacts."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    uri = f"http://127.0.0.1:{free_port()}"
    command = [
        venv_command("mlflow"),
        "server",
        "--host=127.0.0.1",
        f"--port={uri.rsplit(':', 1)[1]}",
        f"--backend-store-uri=sqlite:///{folder}/mlflow.db",
        f"--artifacts-destination={folder}/artifacts",
    ]
    with running_server(command, f"{uri}/health", folder / "server.log"):
        yield uri


def dataset_with_a_bad_test_split(folder: Path) -> Path:
    """A two-label dataset whose dev split is fine and whose test split has an unknown label on line 2."""
    folder.mkdir()
    (folder / "label.txt").write_text("negative\npositive\n")
    (folder / "dev.txt").write_text("很好\tpositive\n很差\tnegative\n")
    (folder / "test.txt").write_text("很好\tpositive\n坏了\tbroken-label\n")
    (folder / "data.txt").write_text("还行\n")
    return folder


def ray_temp_root() -> Path:
    """A Ray temp root of a test's own, where its clusters record themselves (`ray start --temp-dir`,
    RAY_TMPDIR, `ray.init(_temp_dir=)`), so that no test joins or disturbs another's or an engineer's
    cluster under the machine-wide /tmp/ray. Short: Ray's socket paths under it must fit in 107
    characters."""
    return Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))


def remove_ray_temp_root(folder: Path) -> None:
    """Ray's processes may still write their last logs there for a moment after they were stopped."""
    for _ in range(20):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.5)


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    pytest.importorskip("ray")
    folder = ray_temp_root()
    yield folder
    remove_ray_temp_root(folder)


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Ray cluster (head node, 2 CPUs) as `ray start --head` starts one, under a temp root of
    its own; yields its address."""
    pytest.importorskip("ray")
    port = free_port()
    root = ray_temp_root()
    log = (tmp_path_factory.mktemp("ray-head") / "ray.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            f"--temp-dir={root / 'ray'}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_TMPDIR": str(root)},
        start_new_session=True,
    )

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, "ray head", process)
        time.sleep(3)  # the raylet registers after the GCS listens
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_group(process)
        log.close()
        remove_ray_temp_root(root)
