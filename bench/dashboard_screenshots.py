"""Screenshots of the MLflow dashboard for the docs, taken from a small real demo sweep.

    .venv/bin/python -m bench.dashboard_screenshots [--out docs/images]

Runs `python run.py -m precision=fp32,int8 batch_size=8,32 infer.predict_data=false` (the embedded
demo model) into a temporary folder and SQLite store, serves that store with `mlflow ui`, and has
headless Chromium (tests/helpers/browser.py) write into --out:

    dashboard_runs.png    the project's link: every job with its metrics, best accuracy first
    dashboard_models.png  the Models tab: one LoggedModel per job, with its metrics on demo/dev
    dashboard_sweep.png   the sweep's parent run: the selection rule, the winner, its child runs

MLflow shows its Assistant panel (a third of the window) only to a browser on localhost/127.0.0.1:
the UI is served on 127.0.0.2, a loopback address too on Linux (elsewhere: --host 127.0.0.1 and a
wider window).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pipeline import PROJECT_ROOT
from pipeline.tracking.store import runs_page
from tests.helpers.browser import mlflow_models_url, screenshot

SWEEP = ["precision=fp32,int8", "batch_size=8,32", "infer.predict_data=false"]
EXPERIMENT = "ernie-onnx"  # the project's default experiment


def run_sweep(folder: Path) -> str:
    """The demo sweep into `folder` (its own SQLite store); returns the tracking URI."""
    uri = f"sqlite:///{folder}/mlflow.db"
    command = [sys.executable, str(PROJECT_ROOT / "run.py"), "-m", *SWEEP]
    command += [f"hydra.sweep.dir={folder}/demo-sweep", f"mlflow.tracking_uri={uri}"]
    print("running:", " ".join(command[1:]))
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        sys.exit(f"the demo sweep failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return uri


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(uri: str, host: str, log: Path) -> Iterator[str]:
    """`mlflow ui` over the store on `host` (its address returned once it answers); stopped by its
    process group after."""
    port = free_port(host)
    base = f"http://{host}:{port}"
    command = [str(Path(sys.executable).with_name("mlflow")), "ui", f"--backend-store-uri={uri}"]
    command += [f"--host={host}", f"--port={port}", "--workers=1"]
    command += [f"--allowed-hosts={host}:{port}", f"--cors-allowed-origins={base}"]
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not answers(f"{base}/health"):
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"mlflow ui did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # its workers, should any outlive it
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "images")
    parser.add_argument("--host", default="127.0.0.2", help="where mlflow ui listens (see the docstring)")
    parser.add_argument("--width", type=int, default=2300, help="of the runs table (Models tab: +300)")
    args = parser.parse_args()
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="dashboard-") as tmp:
        folder = Path(tmp)
        uri = run_sweep(folder)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            raise RuntimeError(f"the sweep logged no experiment {EXPERIMENT!r} to {uri}")
        experiment_id = experiment.experiment_id
        parent = client.search_runs([experiment_id], filter_string="tags.sweep_dir != ''")[0].info.run_id
        with mlflow_ui(uri, args.host, folder / "mlflow-ui.log") as base:
            pages = {
                "dashboard_runs.png": (runs_page(base, experiment_id), args.width, 600),
                "dashboard_models.png": (mlflow_models_url(base, experiment_id), args.width + 300, 420),
                "dashboard_sweep.png": (
                    f"{base}/#/experiments/{experiment_id}/runs/{parent}?workflowType=machine_learning",
                    2000,
                    900,
                ),
            }
            for name, (url, width, height) in pages.items():
                path = screenshot(url, args.out / name, width=width, height=height)
                print(f"{path} ({width}x{height}): {url}")


if __name__ == "__main__":
    main()
