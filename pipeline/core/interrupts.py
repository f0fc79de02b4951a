"""Ctrl-C (SIGINT) and SIGTERM as exceptions that end a job or a sweep cleanly.

SIGINT raises KeyboardInterrupt (Python's own behaviour) and SIGTERM raises `Terminated`; both
are BaseExceptions, so no `except Exception` swallows them. Whoever owns the work being
interrupted catches them, records it KILLED and raises `Interrupted` (the job, pipeline/job.py),
or registers a clean-up that runs when the interrupt reaches the top (a sweep,
pipeline/sweep/callback.py). pipeline/cli.py turns any of them into one line and exit status
128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.

Two things make this hold in practice:

- Libraries replace signal handlers at the C level without Python knowing (`signal.getsignal`
  still shows Python's): importing paddle installs glog's SIGTERM handler, which prints a
  "FatalError: Termination signal" report and kills the process; importing paddlenlp resets
  SIGTERM to the default (die at once). `reclaim_signals()` after such code puts Python's
  handlers back (verified by /proc/PID/status SigCgt and by sending the signal).
- Libraries swallow KeyboardInterrupt: paddle2onnx turns one raised inside `import paddle`
  into "Failed to import paddle". Every signal is therefore also recorded (`received()`), and
  the job asks for it after an error (`raise_if_received()`).

A process whose SIGINT is ignored (started in the background by a non-interactive shell, or
with nohup) keeps it ignored: only SIGTERM stops it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

NAMES: dict[int, str] = {int(signal.SIGINT): "SIGINT", int(signal.SIGTERM): "SIGTERM"}
_received: int | None = None  # the last SIGINT or SIGTERM this process got
# Clean-ups the top of the process runs when an interrupt reaches it (pipeline/cli.py), newest first:
# each returns a line saying what it stopped and the overrides that resume it, or None.
_cleanups: dict[str, Callable[[str], Stopped | None]] = {}
_ended: list[str] = []  # the keys whose work ended without an interrupt (`done`), oldest first
_held: list[int] | None = None  # the signals the open `deferred` block holds (None: no block)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by the handler `install()` sets."""


class Interrupted(BaseException):
    """Work that an interrupt stopped and that has been recorded KILLED: `what` it was."""

    def __init__(self, signum: int, what: str) -> None:
        super().__init__(f"{NAMES.get(signum, signum)}: {what}")
        self.signum = signum
        self.what = what


class Stopped:
    """What a clean-up stopped (`what`) and the overrides that make the same command resume it."""

    def __init__(self, what: str, resume_overrides: dict[str, str] | None = None) -> None:
        self.what = what
        self.resume_overrides = resume_overrides or {}


def signal_of(exc: BaseException) -> int:
    """The signal behind an interrupt exception."""
    if isinstance(exc, Interrupted):
        return exc.signum
    return signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT


def exit_status(signum: int) -> int:
    return 128 + signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# Where Python runs a handler inside a finalizer, it prints the exception raised there ("Exception
# ignored in: ...", with a traceback) and drops it: the interrupt would be lost.
_FINALIZERS = {"__del__", "remove", "_remove_dead_weakref", "__call__"}
REDELIVER_SECONDS = 0.02


def _in_finalizer(frame: FrameType | None) -> bool:
    """Whether `frame` runs inside a `__del__` or a weakref callback (which the GC may call at any
    allocation)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or (
            code.co_filename.endswith("weakref.py") and code.co_name in _FINALIZERS
        ):
            return True
        frame = frame.f_back
    return False


def _raise_for(signum: int, frame: FrameType | None, exception: type[BaseException]) -> None:
    global _received
    _received = signum
    if _in_finalizer(frame):  # the same signal again once the finalizer has returned
        threading.Timer(REDELIVER_SECONDS, os.kill, (os.getpid(), signum)).start()
        return
    raise exception


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _raise_for(signum, frame, KeyboardInterrupt)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _raise_for(signum, frame, Terminated)


def install() -> None:
    """SIGTERM raises Terminated, SIGINT KeyboardInterrupt, both recorded; only in the main thread,
    and SIGINT only where Python handles it (an ignored SIGINT stays ignored)."""
    if not _in_main_thread():
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _on_sigint):
        signal.signal(signal.SIGINT, _on_sigint)


@contextmanager
def handled() -> Iterator[None]:
    """`install()` for the block, then the process's own handlers again (a Ray worker's SIGTERM
    handler stops the worker between tasks)."""
    if not _in_main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in NAMES}
    install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


def reclaim_signals() -> None:
    """Puts Python's handlers for SIGINT and SIGTERM back at the C level, after code that may have
    replaced them there (importing paddle or paddlenlp, paddle2onnx, Paddle Inference)."""
    if not _in_main_thread():
        return
    for signum in NAMES:
        handler = signal.getsignal(signum)
        if callable(handler):
            signal.signal(signum, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """For code that replaces signal handlers at the C level (`import paddle`, `import paddlenlp`):
    SIGINT and SIGTERM wait (blocked) during the block, then Python's handlers are put back and
    a signal that came meanwhile is raised. Keep the block short: an import, not a conversion."""
    if not _in_main_thread():
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set(NAMES))
    try:
        yield
    finally:
        reclaim_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def received() -> int | None:
    """The SIGINT or SIGTERM received since `forget()`, even one a library swallowed."""
    return _received


def forget() -> None:
    """A new job starts in this process (a joblib or Ray worker runs many)."""
    global _received
    _received = None


def raise_if_received() -> None:
    """Raises the interrupt a library turned into another error (paddle2onnx: ImportError)."""
    if _received == signal.SIGTERM:
        raise Terminated
    if _received == signal.SIGINT:
        raise KeyboardInterrupt


@contextmanager
def deferred(*, raise_last: bool = True) -> Iterator[list[int]]:
    """Signals wait until the block ends (then the last one is raised, or with `raise_last=False`
    only recorded): the short clean-up that marks runs KILLED is not cut short by a second
    Ctrl-C. Keep such a block short and bounded. The block gets the list of signals that arrived,
    to poll where raising inside a library's C code would break it (a wait on Ray's tasks).

    A block inside another (a store write within a clean-up) leaves the signals to the outermost:
    raised at its own end, a second Ctrl-C would cut that clean-up short after all."""
    if not _in_main_thread():
        yield []
        return
    global _held
    if _held is not None:
        yield _held
        return
    arrived: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in NAMES}
    for signum, handler in previous.items():
        if callable(handler):
            signal.signal(signum, lambda s, _frame: arrived.append(s))
    _held = arrived
    try:
        yield arrived
    finally:
        _held = None
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
    if arrived:
        global _received
        _received = arrived[-1]
        if raise_last:
            raise_if_received()


def ignore_further_signals() -> None:
    """The process has said how it ends and is exiting: a further SIGINT or SIGTERM (a second
    Ctrl-C while atexit handlers run and threads are joined) must not kill it and change its exit
    status. Ignored, not handled: Python's finalization puts SIGINT's default action back where a
    Python handler was set, and leaves an ignored signal ignored."""
    if not _in_main_thread():
        return
    for signum in NAMES:
        signal.signal(signum, signal.SIG_IGN)


def on_interrupt(key: str, cleanup: Callable[[str], Stopped | None]) -> None:
    """Registers `cleanup(reason)` to run when an interrupt reaches the top of this process."""
    _cleanups[key] = cleanup


def done(key: str) -> None:
    """The work registered under `key` ended: an interrupt from now on has nothing of it to stop."""
    if _cleanups.pop(key, None) is not None:
        _ended.append(key)


def last_ended() -> str | None:
    """The key (`job DIR`, `sweep DIR`) whose work ended last, where nothing is registered now: an
    interrupt that arrives then stopped only the process's exit."""
    return _ended[-1] if _ended and not _cleanups else None


def run_cleanups(reason: str) -> list[Stopped]:
    """Runs the registered clean-ups, newest first; a further interrupt stops the rest."""
    stopped: list[Stopped] = []
    for key in reversed(list(_cleanups)):
        cleanup = _cleanups.pop(key)
        try:
            if (result := cleanup(reason)) is not None:
                stopped.append(result)
        except (KeyboardInterrupt, Terminated, Interrupted):
            break
        except Exception as exc:  # one clean-up failing must not keep the others from running
            stopped.append(Stopped(f"{key} (its clean-up failed: {type(exc).__name__}: {exc})"))
    return stopped
