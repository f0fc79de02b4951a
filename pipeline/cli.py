"""`run.py`'s errors as one line each: Hydra's own (an unknown key, a bad override, an option that
does not exist, a sweep without -m, a run folder that cannot be made) read like ours; and an
interrupt (Ctrl-C, SIGTERM) as one line that says what it stopped and the command that resumes it.

`HYDRA_FULL_ERROR=1` still gives the whole trace to those who ask for it.
"""

from __future__ import annotations

import gc
import os
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from pipeline.core import interrupts
from pipeline.core.errors import WriteError
from pipeline.core.files import WRITE_FAILURES
from pipeline.options.config import renamed_key

_FULL_ERROR = "HYDRA_FULL_ERROR"
_KEYS_HINT = "`python run.py --cfg job` lists every key"


def explain(exc: BaseException, arguments: list[str] | None = None) -> str:
    """One line for a mistake made on the command line or in a config file (`arguments`: the
    command line, to name the override a parse error is in)."""
    text = str(exc).strip()
    cause = _first_line(str(exc.__cause__ or ""))
    if match := re.search(r"Could not override '([^']+)'", text):
        key = match.group(1)
        if moved := renamed_key(key):
            return f"{key} is now {moved}: use {moved}=... instead"
        if " not in " in cause:
            return f"unknown key {key!r}: not a key of this config ({_KEYS_HINT}; a new key needs +{key}=...)"
        return f"{key}: {cause or _first_line(text)}"
    if match := re.search(r"Error merging override (\S+)", text):
        return f"{match.group(1)}: {cause or _first_line(text)}"
    if match := re.search(r"Could not find '([^']+)/([^']+)'", text):
        group, name = match.groups()
        options = [o for o in re.findall(r"^\t(\S+)$", text, flags=re.M) if not o.endswith("_schema")]
        listed = f" is not one of {', '.join(options)}" if options else " does not exist"
        return f"{group}={name}{listed} (conf/{group}/)"
    if match := re.search(r"Ambiguous value for argument '([^']+)'", text):
        return (
            f"{match.group(1)} is a list of values: to sweep over them put -m first "
            f"(python run.py -m {match.group(1)}), to pass a list write key=[a,b], to pass text quote it"
        )
    if type(exc).__name__ == "OverrideParseException":
        fragment = re.search(r"input '(.*)'", text)
        culprit = next((a for a in arguments or [] if fragment and fragment.group(1) in a), None)
        where = f"the override {culprit!r}" if culprit else "an override"
        return (
            f"cannot read {where}: {_first_line(text)} (write key=value; quote values with spaces or commas)"
        )
    if isinstance(exc, OSError) and not exc.filename and exc.errno in WRITE_FAILURES:
        why, fix = WRITE_FAILURES[exc.errno]  # Hydra writing the job's folder (.hydra/, run.log)
        return (
            f"cannot write the job's folder (hydra.run.dir, or hydra.sweep.dir with -m): {why}; "
            f"{fix} (or choose another folder), then run the same command again"
        )
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc} (a folder the job writes cannot be made)"
    return _first_line(text) or type(exc).__name__


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


@contextmanager
def readable_errors() -> Iterator[None]:
    """Hydra's errors raised to us (not printed with its hint) and told in one line, exit 2."""
    asked_for_trace = os.environ.get(_FULL_ERROR, "") not in ("", "0")
    os.environ[_FULL_ERROR] = "1"
    try:
        yield
    except (HydraException, OmegaConfBaseException, OSError, WriteError) as exc:
        if asked_for_trace:
            raise
        print(f"error: {explain(exc, sys.argv[1:])}", file=sys.stderr)
        sys.exit(2)
    finally:
        if not asked_for_trace:
            os.environ.pop(_FULL_ERROR, None)


def resume_command(argv: list[str], overrides: dict[str, str]) -> str:
    """The command line `argv` (as typed: `sys.orig_argv`) with `overrides` set, quoted for a shell."""
    kept = [a for a in argv if a.split("=", 1)[0] not in overrides]
    return shlex.join([*kept, *(f"{key}={value}" for key, value in overrides.items())])


@contextmanager
def quick_exit() -> Iterator[None]:
    """The process ends without the interpreter's last garbage collections, which walk every object
    it made (MLflow, SQLAlchemy and pandas make hundreds of thousands: 0.5 to 0.8 s of a sweep's or
    a job's end). Files, logs and atexit handlers are closed and flushed as always."""
    try:
        yield
    finally:
        gc.freeze()


def _say_last(line: str) -> None:
    """The interrupt's line, at the start of a line of its own: a worker stopped while it drew a
    progress bar leaves that bar on the terminal the sweep shares with it, without its end of line.
    On a terminal the bar's remains are erased."""
    start = "\r\x1b[K" if sys.stderr.isatty() else "\r"
    print(start + line, file=sys.stderr)


@contextmanager
def interrupts_end_cleanly() -> Iterator[None]:
    """Ctrl-C and SIGTERM end the process with one line and exit status 130 or 143, never a
    traceback: what was interrupted (the job, or the sweep with its jobs recorded KILLED) and the
    command that resumes it. The clean-ups the job and the sweep registered run first; further
    signals wait for them (they are short and bounded)."""
    interrupts.install()
    # joblib's workers die with an interrupted sweep; multiprocessing's resource tracker, a process
    # started with this one's -W options, would then warn about their semaphores after our line.
    sys.warnoptions.append("ignore::UserWarning:multiprocessing.resource_tracker")
    try:
        yield
    except (KeyboardInterrupt, interrupts.Terminated, interrupts.Interrupted) as exc:
        signum = interrupts.signal_of(exc)
        name = interrupts.NAMES[signum]
        with interrupts.deferred(raise_last=False):
            stopped = interrupts.run_cleanups(f"interrupted by {name}")
        ended = interrupts.last_ended()
        if not stopped and not isinstance(exc, interrupts.Interrupted) and ended is not None:
            # Its work was done and recorded: the signal came while the process was exiting.
            _say_last(f"interrupted by {name}: after {ended} had ended; nothing to resume")
        else:
            what = (
                stopped[-1].what
                if stopped
                else exc.what
                if isinstance(exc, interrupts.Interrupted)
                else "before any job started"
            )
            resume = resume_command(list(sys.orig_argv), stopped[-1].resume_overrides if stopped else {})
            _say_last(f"interrupted by {name}: {what}; to resume: {resume}")
        interrupts.ignore_further_signals()
        sys.exit(interrupts.exit_status(signum))
