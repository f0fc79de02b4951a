"""One MLflow run written by a helper process, so that a single job does not wait for MLflow.

Importing MLflow and opening its store costs ~2 s of one core before anything is logged;
`run.py` spawns the helper first thing, and it pays that while Hydra composes the config and
the job works. The job sends it the calls a `TrackedRun` takes, one JSON line each; the helper
replies with the run id once the run exists and, at the end, with the first error, if any.
`end()` returns only when everything is logged: a job that has returned is in the store.

    python -m pipeline.tracking.run_process   (spawned by `RunProcess.spawn`, reads its stdin)
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pipeline.errors import TrackingError

if TYPE_CHECKING:  # run.py imports this module before anything else: it stays light
    from pipeline.tracking.settings import MlflowConfig

_CALLS = ("log_metrics", "log_artifact", "set_tags", "end")


class RunProcess:
    """The job's side: `TrackedRun`'s methods, sent to the helper process."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process
        self._run_id: str | None = None
        self._started = False

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # A helper belongs to the process that spawned it. Launchers that ship run.py's `main` to
        # their workers (Ray, joblib) pickle it along: it arrives there as None (jobs log in-process).
        return _no_helper, ()

    @classmethod
    def spawn(cls) -> RunProcess:
        """A helper that starts importing MLflow now; `start_run` later says which run to write."""
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.tracking.run_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return cls(process)

    def start_run(
        self,
        cfg: MlflowConfig,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        parent_run_id: str | None,
    ) -> RunProcess:
        self._started = True
        self._send(
            "start",
            {
                "config": asdict(cfg),
                "run_name": run_name,
                "params": params,
                "tags": dict(tags),
                "parent_run_id": parent_run_id,
            },
        )
        return self

    def _send(self, call: str, *args: Any) -> None:
        if self._process.stdin is None or self._process.stdin.closed:
            return
        try:
            self._process.stdin.write(json.dumps({"call": call, "args": args}, default=str) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:  # the helper died: end() reports it
            self._close_input()

    def _close_input(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # what is still buffered has nowhere to go
                self._process.stdin.close()

    def _read_reply(self) -> dict[str, Any]:
        line = self._process.stdout.readline() if self._process.stdout else ""
        if not line:
            self._process.wait()
            return {"done": True, "error": self._exit_message()}
        return json.loads(line)

    def _exit_message(self) -> str:
        return f"the MLflow logging process exited ({self._process.returncode}) before finishing the run"

    @property
    def run_id(self) -> str:
        """Waits for the run to exist (the helper may still be importing MLflow)."""
        while self._run_id is None:
            reply = self._read_reply()
            if "run_id" in reply:
                self._run_id = reply["run_id"]
            elif reply.get("error") or reply.get("done"):
                raise TrackingError(reply.get("error") or "the MLflow logging process started no run")
        return self._run_id

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._send("log_metrics", {k: float(v) for k, v in metrics.items()})

    def log_artifact(self, path: Path) -> None:
        self._send("log_artifact", str(Path(path).absolute()))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._send("set_tags", {k: str(v) for k, v in tags.items()})

    def end(self, status: str) -> None:
        """Ends the run and waits until all is logged; raises the first TrackingError of the run."""
        self._send("end", status)
        reply = self.close()
        if reply.get("error"):
            raise TrackingError(reply["error"])

    def close(self) -> dict[str, Any]:
        """Waits for the helper to log everything it was sent and exit; returns its last reply."""
        self._close_input()
        if self._process.returncode is not None:  # already gone: its end was read before
            failed = self._process.returncode != 0
            return {"done": True, "error": self._exit_message() if failed else None}
        reply = self._read_reply()
        while not reply.get("done"):
            reply = self._read_reply()
        self._process.wait()
        return reply

    def discard(self) -> None:
        """Stops a helper that was given no run (a sweep, tracking off, a config error)."""
        if not self._started and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def _no_helper() -> None:
    return None


def _reply(replies: IO[str], message: dict[str, Any]) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The helper's side: runs each call on a TrackedRun; after the first error, only reports it."""
    from pipeline.tracking.mlflow_runs import TrackedRun, start_run
    from pipeline.tracking.settings import MlflowConfig

    run: TrackedRun | None = None
    error: str | None = None
    ended = False
    for line in requests:
        request = json.loads(line)
        call, args = request["call"], request["args"]
        if error is not None:
            continue
        try:
            if call == "start":
                (start,) = args
                run = start_run(
                    MlflowConfig(**start["config"]), start["run_name"], start["tags"], start["parent_run_id"]
                )
                _reply(replies, {"run_id": run.run_id})
                run.log_params(start["params"])
            elif call in _CALLS and run is not None:
                getattr(run, call)(*args)
                ended = ended or call == "end"
        except TrackingError as exc:
            error = str(exc)
            _reply(replies, {"error": error})
    if run is not None and error is None and not ended:  # the job died before ending its run
        try:
            run.end("FAILED")
        except TrackingError as exc:
            error = str(exc)
    _reply(replies, {"done": True, "error": error})


if __name__ == "__main__":
    from pipeline.quick_exit import exit_without_teardown

    # Replies go to the job through the original stdout alone; whatever else writes to stdout
    # (MLflow prints "View run ... at: URL" when a run on a server ends) goes to stderr.
    reply_channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Ctrl-C reaches the whole process group: the job then ends its run FAILED through this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The job's latency is measured meanwhile: this process takes only what the job leaves idle.
    os.nice(19)
    # The bulk of the wait, paid before the first request arrives. Importing MLflow creates
    # millions of objects and no garbage: collecting during it costs ~20% of its time.
    gc.disable()
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    import pipeline.tracking.mlflow_runs  # noqa: F401

    gc.freeze()
    gc.enable()

    serve(sys.stdin, reply_channel)
    # Everything is committed to the store: skip the interpreter's teardown of MLflow's
    # modules (~0.5 s), which the job would wait for.
    exit_without_teardown()
