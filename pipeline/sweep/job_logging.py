"""A sweep's jobs become their MLflow runs in the sweep's own process, as they end.

Workers (the basic launcher's loop, joblib's processes, Ray's workers on any node) only write job
folders; a thread of the sweep process finds the folders whose jobs ended and makes each its run
(`log_job_folder`, the same call as a single run and `resync`), nested under the sweep's parent
run. So no worker imports MLflow or opens the store (about 3 s per worker process, bench.launchers),
and only the machine that runs the sweep needs to reach the store: a SQLite store serves a
sweep on a Ray cluster too.

The thread first opens the sweep's parent run (importing MLflow and opening the store: 2 to 3 s
of CPU), once the first job has started: earlier, it would slow the sweep's start, the sweeper
composing the jobs' configs in this process and the workers importing the pipeline. Only a
tracking server, which may refuse the credentials, is opened before any job runs, so that a
refusal stops the sweep before it starts. Then the jobs
that FINISHED before this sweep process and that the store lacks are
logged first: all of them where the store did not have the sweep's parent run (the database
removed, another store), else those whose tracking.json names no run in this store (a store
that refused them). Jobs that will run again (KILLED, FAILED, a damaged folder) are left to
their new attempt. From then on a job is due once its folder says FINISHED or FAILED for an
attempt this logger has not seen. Each attempt is tried once: a job the store refused is named
at the sweep's end and logged by the next run of the same command (or `resync`).
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

from pipeline.core.errors import TrackingError
from pipeline.core.job_folder import JOB_STATUS_FILE, job_status
from pipeline.core.measuring import MEASUREMENT
from pipeline.core.sweep_state import job_done, job_folders
from pipeline.options.tracking import MlflowConfig
from pipeline.tracking.job_record import log_job_folder, tracking_state
from pipeline.tracking.store import CredentialsRefused, is_server
from pipeline.tracking.sweep_record import open_sweep_run

POLL_SECONDS = 0.5
# The parent run is opened once a job has started, or after this long (a Ray cluster starting).
OPEN_WAIT_SECONDS = 5.0
OPEN_POLL_SECONDS = 0.1
# An interrupt waits this long for the run being logged, then leaves it to the resume.
STOP_WAIT_SECONDS = 10.0
_LOGGED_STATUSES = ("FINISHED", "FAILED")


class JobLogger:
    def __init__(self, cfg: MlflowConfig, sweep_dir: Path) -> None:
        self.cfg = cfg
        self.sweep_dir = sweep_dir
        self.parent_run_id: str | None = None  # None: jobs find it by its tag, or nest under none
        self._seen: set[tuple[Path, str]] = set()  # (job folder, attempt start): logged or left
        # Folders whose attempt in this process is logged: a sweep process runs a job once, so
        # polls stop reading their status (hundreds of files every half second in a large sweep).
        self._final: set[Path] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Before any job of this process runs: the jobs that ended earlier (`catch_up`).
        self._before = self._ended()
        self._created = time.time()

    def _ended(self) -> list[tuple[Path, str]]:
        """The attempts whose jobs ended FINISHED or FAILED and that this logger has not seen."""
        attempts = []
        for job_dir in job_folders(self.sweep_dir):
            if job_dir in self._final:
                continue
            status = job_status(job_dir)
            attempt = (job_dir, str(status.get("started_at") or ""))
            if status["status"] in _LOGGED_STATUSES and attempt not in self._seen:
                attempts.append(attempt)
        return attempts

    def open(self) -> None:
        """Opens the sweep's parent run (RUNNING again where the sweep goes on in its folder), then
        logs the jobs that finished before and that the store lacks. Raises TrackingError."""
        with MEASUREMENT:
            run_id, existed = open_sweep_run(self.cfg, self.sweep_dir, reopen=True)
        self.parent_run_id = run_id
        if existed:
            print(f"continuing the sweep in {self.sweep_dir} (MLflow parent run {run_id})")
        if jobs := self.catch_up(parent_existed=existed):
            print(
                f"logging {len(jobs)} finished jobs of {self.sweep_dir} that the MLflow store lacks, "
                "from their files"
            )
            self.log(jobs)

    def catch_up(self, *, parent_existed: bool) -> list[tuple[Path, str]]:
        """Takes in the jobs that ended before this sweep process: returns those to log now (see the
        module's docstring); the rest are seen."""
        due = []
        for attempt in self._before:
            job_dir = attempt[0]
            if job_done(job_dir) and not (parent_existed and self._recorded(job_dir)):
                due.append(attempt)
            else:
                self._seen.add(attempt)
        return due

    def _recorded(self, job_dir: Path) -> bool:
        state = tracking_state(job_dir)
        return "run_id" in state and state.get("tracking_uri") == self.cfg.tracking_uri

    def log(self, attempts: list[tuple[Path, str]]) -> None:
        """Makes each attempt's folder its run, until `stop` is asked (the rest stay due)."""
        for attempt in attempts:
            if self._stop.is_set():
                break
            self._seen.add(attempt)
            if attempt not in self._before:  # an attempt from before may run again (a resume)
                self._final.add(attempt[0])
            with MEASUREMENT, suppress(TrackingError):  # its tracking.json says why; the end names it
                log_job_folder(attempt[0], self.cfg, self.parent_run_id)

    def log_due(self) -> None:
        """Logs the attempts that ended since the last call."""
        self.log(self._ended())

    def start(self, *, opening: bool) -> None:
        """Logs jobs in a thread of this process as they end, until `stop`; `opening`: the thread
        opens the parent run first (`open_or_warn`)."""
        self._thread = threading.Thread(
            target=self._watch, args=(opening,), name="sweep-job-logger", daemon=True
        )
        self._thread.start()

    def open_or_warn(self) -> None:
        """`open`; a store that fails is a warning (CredentialsRefused, which only a tracking server
        answers, is raised): the jobs run on, each is tried when it ends, and the sweep's end names
        those the store did not take."""
        try:
            self.open()
        except CredentialsRefused:
            raise
        except TrackingError as exc:
            print(f"warning: {exc} -- the sweep runs on; its folders keep every result", file=sys.stderr)

    def _a_job_started(self) -> bool:
        """Whether a job of this sweep process has written its folder's status (it does on starting)."""
        for job_dir in job_folders(self.sweep_dir):
            with suppress(OSError):
                if (job_dir / JOB_STATUS_FILE).stat().st_mtime >= self._created:
                    return True
        return False

    def _wait_for_a_job(self) -> None:
        """Until a job has started, `stop` is asked or OPEN_WAIT_SECONDS have passed."""
        deadline = time.monotonic() + OPEN_WAIT_SECONDS
        while time.monotonic() < deadline and not self._a_job_started():
            if self._stop.wait(OPEN_POLL_SECONDS):
                return

    def _watch(self, opening: bool) -> None:
        if opening:
            self._wait_for_a_job()
            self.open_or_warn()
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.log_due()
            except Exception as exc:  # a folder read amiss must not end the logging of the rest
                print(f"warning: logging the sweep's jobs: {type(exc).__name__}: {exc}", file=sys.stderr)

    def stop(self, timeout: float | None = None) -> None:
        """Ends the thread after the run it is logging (waiting at most `timeout` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop.clear()


# The loggers of the sweeps this process runs, by sweep folder: Hydra's callback object is pickled
# into joblib and Ray workers, so it holds no thread.
_running: dict[Path, JobLogger] = {}


def start_logging(cfg: MlflowConfig, sweep_dir: Path) -> None:
    """Starts making the sweep's jobs into runs as they end (see the module's docstring). Raises
    CredentialsRefused where a tracking server refuses them, before any job runs."""
    logger = JobLogger(cfg, sweep_dir)
    server = is_server(cfg.tracking_uri)
    if server:
        logger.open_or_warn()
    logger.start(opening=not server)
    _running[sweep_dir] = logger


def finish_logging(sweep_dir: Path) -> None:
    """The sweep has ended: every ended job still due is logged, here and now."""
    if (logger := _running.pop(sweep_dir, None)) is not None:
        logger.stop()
        logger.log_due()


def abandon_logging(sweep_dir: Path) -> None:
    """After an interrupt: the run being logged ends (within STOP_WAIT_SECONDS), the rest wait for
    the resume, which logs them from their folders."""
    if (logger := _running.pop(sweep_dir, None)) is not None:
        logger.stop(STOP_WAIT_SECONDS)
