"""`hydra/launcher=ray` (hydra_plugins/ernie_ray_launcher) on Hydra's terms, with real Ray clusters.

Which cluster a sweep runs on is machine-wide state (RAY_ADDRESS, the cluster `ray start` records
under Ray's temp folder): every test here points Ray's temp folder (RAY_TMPDIR) at a folder of its
own and starts and stops its own clusters by process id, so that it never joins another test's or
engineer's cluster. Also: the launcher where the ray extra is not installed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import yaml

from pipeline import PROJECT_ROOT
from tests.conftest import free_port, ray_temp_root, remove_ray_temp_root, stop_process_group, wait_until
from tests.helpers.without import run_without

APP = """
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    import ray

    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "cluster.txt").write_text(ray.get_runtime_context().gcs_address)
    if cfg.die_once and not (out / "died").exists():  # its worker dies, once
        (out / "died").write_text("")
        os._exit(1)
    print(f"result of job x={cfg.x}")
    return cfg.x

main()
"""

CONFIG = {
    "defaults": [{"override hydra/launcher": "ray"}, "_self_"],
    "x": 0,
    "die_once": False,
    "hydra": {
        "mode": "MULTIRUN",
        "searchpath": [f"file://{PROJECT_ROOT}/conf"],  # the project's conf/hydra/launcher/ray.yaml
        "sweep": {"dir": "sweep", "subdir": "${hydra.job.num}"},
    },
}

# In a worker's Python: `pipeline` (this project) cannot be imported, as on a node without it.
WITHOUT_PROJECT = """
import importlib.machinery
import sys


class _PathFinderWithout(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == "pipeline":
            return None
        return super().find_spec(name, path, target)


sys.meta_path = [
    _PathFinderWithout if finder is importlib.machinery.PathFinder else finder
    for finder in sys.meta_path
    if "editable" not in getattr(finder, "__name__", type(finder).__name__)
]
"""


@contextmanager
def ray_cluster(ray_tmp: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`ray start --head` with its own temp folder (where it records itself, under RAY_TMPDIR=ray_tmp),
    in a session of its own, stopped by its process id; yields the address it recorded."""
    port = free_port()
    log = (ray_tmp / "head.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            f"--temp-dir={ray_tmp / 'ray'}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_TMPDIR": str(ray_tmp), **(env or {})},
        start_new_session=True,
    )

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, "ray head", process)
        recorded = ray_tmp / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + 60  # `ray start` records the cluster once its raylet is up
        while not recorded.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        yield recorded.read_text().strip()  # HOST:PORT, as Ray names it (the node's address)
    finally:
        stop_process_group(process)
        log.close()


@pytest.fixture(scope="module")
def running_cluster() -> Iterator[tuple[str, Path]]:
    """A cluster `ray start` runs on this machine, as Ray and Hydra's launcher find one."""
    pytest.importorskip("ray")
    folder = ray_temp_root()
    try:
        with ray_cluster(folder) as address:
            yield address, folder
    finally:
        remove_ray_temp_root(folder)


def run_sweep(
    folder: Path, ray_tmp: Path, *overrides: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(APP)
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    base = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, "app.py", *overrides],
        cwd=folder,
        env={**base, "PYTHONPATH": str(PROJECT_ROOT), "RAY_TMPDIR": str(ray_tmp), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def clusters_used(folder: Path) -> set[str]:
    return {p.read_text() for p in (folder / "sweep").glob("*/cluster.txt")}


@pytest.mark.slow
def test_address_null_joins_the_cluster_ray_start_runs_on_this_machine(
    running_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    address, ray_tmp = running_cluster
    result = run_sweep(tmp_path, ray_tmp, "x=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert clusters_used(tmp_path) == {address}
    assert (
        f"the Ray cluster at {address} (started by `ray start` on this machine"
        in result.stdout + result.stderr
    )


@pytest.mark.slow
def test_address_null_joins_ray_address(running_cluster: tuple[str, Path], tmp_path: Path) -> None:
    address, _ = running_cluster
    elsewhere = ray_temp_root()  # no cluster recorded there: only RAY_ADDRESS names one
    try:
        result = run_sweep(tmp_path, elsewhere, "x=1", env={"RAY_ADDRESS": address})
    finally:
        remove_ray_temp_root(elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert clusters_used(tmp_path) == {address}
    assert f"the Ray cluster at {address} (RAY_ADDRESS)" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "value"), [("num_cpus", "2"), ("num_gpus", "1"), ("object_store_memory", "78643200")]
)
def test_a_setting_that_cannot_apply_to_the_joined_cluster_is_one_line(
    running_cluster: tuple[str, Path], tmp_path: Path, setting: str, value: str
) -> None:
    address, ray_tmp = running_cluster
    result = run_sweep(tmp_path, ray_tmp, "x=1,2", f"hydra.launcher.ray.init.{setting}={value}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: hydra.launcher.ray.init.{setting}={value} sizes a Ray cluster of this run's own, but it "
        f"joins the running one at {address} (started by `ray start` on this machine "
        f"({ray_tmp / 'ray' / 'ray_current_cluster'})), whose size `ray start` set: leave "
        f"hydra.launcher.ray.init.{setting} null, or set hydra.launcher.ray.init.address=local for a "
        "cluster of its own"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sweep").exists()  # refused before anything of the sweep started


@pytest.mark.slow
def test_without_a_running_cluster_the_sweep_starts_its_own(
    running_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    address, _ = running_cluster
    empty = ray_temp_root()
    try:
        result = run_sweep(tmp_path, empty, "x=1", "hydra.launcher.ray.init.num_cpus=1")
        # Started lean (pipeline.core.ray_cluster.start_ray): each process Ray starts logs to the
        # session's logs folder under its own name; the dashboard's API server and the autoscaler's
        # monitor did not start.
        logs = {path.name for path in empty.glob("**/session_*/logs/*")}
        # Stopped with the sweep: none of its processes (GCS, raylet and its agents, log monitor;
        # each names its session under the temp root) is left.
        left = [
            p.info
            for p in psutil.process_iter(["pid", "cmdline"])
            if str(empty) in " ".join(p.info["cmdline"] or [])
        ]
    finally:
        remove_ray_temp_root(empty)
    assert result.returncode == 0, result.stderr[-3000:]
    (own,) = clusters_used(tmp_path)
    assert own != address
    assert "a Ray cluster of this sweep's own" in result.stdout + result.stderr
    assert {"gcs_server.out", "raylet.out", "dashboard_agent.log", "log_monitor.log"} <= logs
    assert not {"dashboard.log", "monitor.log"} & logs
    assert left == []


@pytest.mark.slow
def test_the_last_jobs_printed_line_reaches_the_sweeps_output(
    running_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    """Ray forwards what a worker prints to the sweep's output with a delay. This sweep ends as its
    one job does (no summary, no MLflow): the job's line still reaches the output before the
    launcher disconnects at exit."""
    _, ray_tmp = running_cluster
    result = run_sweep(tmp_path, ray_tmp, "x=7")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "result of job x=7" in result.stdout


@pytest.mark.slow
def test_max_retries_reruns_a_job_whose_worker_died(
    running_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    _, ray_tmp = running_cluster
    retried = ["x=5", "die_once=true", "hydra.launcher.ray.remote.max_retries=1"]
    result = run_sweep(tmp_path / "retried", ray_tmp, *retried)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "retried" / "sweep" / "0" / "job_status.json").exists()  # not recorded lost
    assert (tmp_path / "retried" / "sweep" / "0" / "died").exists()  # its first worker did die

    result = run_sweep(tmp_path / "lost", ray_tmp, "x=5", "die_once=true")  # max_retries: 0
    assert result.returncode == 0, result.stderr[-3000:]
    status = yaml.safe_load((tmp_path / "lost" / "sweep" / "0" / "job_status.json").read_text())
    assert status["status"] == "FAILED" and status["error"].startswith("Ray task lost: ")


@pytest.mark.slow
def test_a_worker_that_cannot_import_the_project_says_so(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    blocked = tmp_path / "site"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(WITHOUT_PROJECT)
    folder = ray_temp_root()
    try:
        with ray_cluster(folder, env={"PYTHONPATH": str(blocked)}) as address:
            result = run_sweep(tmp_path / "app", folder, "x=1", f"hydra.launcher.ray.init.address={address}")
    finally:
        remove_ray_temp_root(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    status = yaml.safe_load((tmp_path / "app" / "sweep" / "0" / "job_status.json").read_text())
    assert status["status"] == "FAILED"
    assert "cannot import this project (ModuleNotFoundError: No module named 'pipeline" in status["error"]
    assert status["error"].endswith("install it at the same path on every node (docs/scaling.md)")


def test_init_options_join_as_ray_does_and_refuse_what_cannot_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.core.errors import ConfigError
    from pipeline.core.ray_cluster import ray_init_options

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    local = {"address": None, "num_cpus": 2, "include_dashboard": False}
    # Nothing running: a cluster of its own, sized as asked, no token mode.
    assert ray_init_options(local) == {"address": "local", "num_cpus": 2, "include_dashboard": False}
    assert "RAY_AUTH_MODE" not in os.environ
    assert ray_init_options({"address": None}, local_defaults={"num_cpus": 4}) == {
        "address": "local",
        "num_cpus": 4,
    }
    # A cluster `ray start` recorded, which answers: joined, with its token.
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        recorded = f"127.0.0.1:{head.getsockname()[1]}"
        (tmp_path / "ray").mkdir()
        (tmp_path / "ray" / "ray_current_cluster").write_text(recorded)
        asked = {"address": None, "include_dashboard": False}
        joined = ray_init_options(asked, local_defaults={"num_cpus": 4})
        assert joined == {"address": recorded, "include_dashboard": False}
        assert os.environ["RAY_AUTH_MODE"] == "token"
        with pytest.raises(ConfigError, match=r"^hydra.launcher.ray.init.num_cpus=2 sizes a Ray cluster"):
            ray_init_options(local)
        assert ray_init_options(local, join_running=False)["address"] == "local"  # predict's rule
    # The recorded cluster stopped without `ray stop`: it does not answer, so one is started.
    assert ray_init_options(local)["address"] == "local"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    with pytest.raises(ConfigError, match=r"joins the running one at 10.0.0.5:6379 \(RAY_ADDRESS\)"):
        ray_init_options(local)
    assert ray_init_options({**local, "address": "local"})["address"] == "local"  # local: always its own


def test_the_launcher_plugin_loads_without_ray(tmp_path: Path) -> None:
    """Hydra imports every plugin module on every run: ours must not need Ray to be imported."""
    result = run_without("ray", tmp_path, "--hydra-help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ernie_ray_launcher" not in result.stderr
    assert "hydra/launcher: basic, joblib, ray" in result.stdout


def test_a_ray_sweep_without_ray_is_one_error_before_anything_starts(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    result = run_without(
        "ray",
        tmp_path,
        "-m",
        "hydra/launcher=ray",
        "precision=fp32,int8",
        f"mlflow.tracking_uri=sqlite:///{store}",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: hydra/launcher=ray needs the ray extra: pip install -e '.[cpu,ray]'"]
    assert "Traceback" not in result.stderr
    # Neither a sweep folder nor the sweep's MLflow parent run was started.
    assert not (tmp_path / "outputs").exists() and not store.exists()
