"""Headless Chromium for checks of the MLflow UI: the DOM a page renders, and screenshots.

Debian's `chromium` package (`apt-get install -y chromium`), no WebDriver and no Python browser
package: one `chromium --headless=new` process per call, with a fresh temporary profile, killed
with its whole process group if it runs past its timeout. `--virtual-time-budget` is what makes
`--dump-dom` see the React app: without it Chromium dumps the empty HTML shell (about 2 KB);
with it Chromium waits until the page's network and timers settle (about 2 s for an MLflow page
on a warm server), `wait_ms` of virtual time at most.

The MLflow UI virtualises its table columns: only the columns inside the window are in the DOM,
so a DOM check of metric or param columns needs a wide window (e.g. `width=3000` or more).
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

CANDIDATES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
ENV_OVERRIDE = "CHROMIUM"  # a browser binary to use instead of the ones on PATH

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: the sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a small /dev/shm in containers
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
)
WAIT_MS = 15_000
WIDTH = 1600
HEIGHT = 1000
TIMEOUT_S = 120.0


class BrowserError(RuntimeError):
    """Chromium failed, printed nothing, or ran past its timeout."""


def find_chromium() -> str | None:
    """The Chromium binary: $CHROMIUM if set, else the first of CANDIDATES on PATH; None if none."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser() -> str:
    binary = find_chromium()
    if binary is None:
        raise BrowserError("no Chromium found: apt-get install -y chromium (or set $CHROMIUM)")
    return binary


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kills the browser's process group (it runs in a session of its own), then reaps it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=10)


def _run(args: Sequence[str], *, timeout_s: float) -> bytes:
    """Runs Chromium with a fresh profile; its stdout. Raises BrowserError on failure or timeout."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [_browser(), *FLAGS, f"--user-data-dir={profile}", *args]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills every child too
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            _kill_group(process)
            raise BrowserError(f"chromium ran past {timeout_s:g}s: {' '.join(args)}") from error
        except BaseException:
            _kill_group(process)
            raise
    if process.returncode != 0:
        tail = stderr.decode("utf-8", "replace")[-2000:]
        raise BrowserError(f"chromium exited with {process.returncode}: {' '.join(args)}\n{tail}")
    return stdout


def _page_flags(width: int, height: int, wait_ms: int, extra_flags: Iterable[str]) -> list[str]:
    return [f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}", *extra_flags]


def dump_dom(
    url: str,
    *,
    wait_ms: int = WAIT_MS,
    width: int = WIDTH,
    height: int = HEIGHT,
    timeout_s: float = TIMEOUT_S,
    extra_flags: Iterable[str] = (),
) -> str:
    """The DOM (serialised HTML) of `url` once it has rendered, at most `wait_ms` of virtual time."""
    flags = _page_flags(width, height, wait_ms, extra_flags)
    dom = _run([*flags, "--dump-dom", url], timeout_s=timeout_s).decode("utf-8", "replace")
    if not dom.strip():
        raise BrowserError(f"chromium dumped an empty DOM for {url}")
    return dom


def screenshot(
    url: str,
    path: str | Path,
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    wait_ms: int = WAIT_MS,
    timeout_s: float = TIMEOUT_S,
    extra_flags: Iterable[str] = (),
) -> Path:
    """A PNG of the `width` x `height` viewport of `url`, written to `path` (returned)."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    flags = _page_flags(width, height, wait_ms, ("--run-all-compositor-stages-before-draw", *extra_flags))
    _run([*flags, f"--screenshot={target}", url], timeout_s=timeout_s)
    if not target.is_file() or target.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no screenshot of {url} to {target}")
    return target


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def page_text(dom: str) -> str:
    """The text a DOM shows (no tags, scripts or styles; entities decoded), one piece a line."""
    parser = _Text()
    parser.feed(dom)
    parser.close()
    return "\n".join(parser.parts)


# Elements without an end tag: they neither open nor close a cell's content.
_VOID = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr")
)


def _decoded(value: str) -> str:
    """An attribute value with its entities decoded, however often escaped (AG Grid escapes twice)."""
    while (once := html.unescape(value)) != value:
        value = once
    return value


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[str, list[str]] = {}
        self._column: str | None = None
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        if self._column is not None:
            self._depth += 1
            return
        values = dict(attrs)
        if values.get("role") == "gridcell" and values.get("col-id"):
            self._column, self._depth, self._text = _decoded(values["col-id"] or ""), 1, []

    def handle_endtag(self, tag: str) -> None:
        if self._column is None or tag in _VOID:
            return
        self._depth -= 1
        if self._depth == 0:
            self.cells.setdefault(self._column, []).append(" ".join(self._text))
            self._column = None

    def handle_data(self, data: str) -> None:
        if self._column is not None and data.strip():
            self._text.append(data.strip())


def grid_cells(dom: str) -> dict[str, list[str]]:
    """The text of each rendered table cell (AG Grid's role="gridcell"), by column id, in DOM order.

    Column ids as MLflow names them: "metrics.`accuracy`", "params.`batch_size`",
    "attributes.`Run Name`" in the runs table; "name", "source_run_id" and
    'metrics.{"metricKey":"accuracy","datasetName":...}' in the Models tab. Only the columns inside
    the window are rendered, and the row order in the DOM need not be the order on screen.
    """
    parser = _Cells()
    parser.feed(dom)
    parser.close()
    return parser.cells


def missing(dom: str, expected: Iterable[str]) -> list[str]:
    """Those of `expected` that appear neither in the DOM's text nor in its attributes."""
    text = page_text(dom)
    raw = html.unescape(dom)
    return [item for item in expected if item not in text and item not in raw]


# MLflow 3.17 UI addresses (hash routes), as checked against `mlflow server` 3.17.2.
def mlflow_runs_url(
    base: str,
    experiment_id: str,
    *,
    order_by: str | None = None,
    ascending: bool = False,
    view_key: str | None = None,
) -> str:
    """The runs table of an experiment, in the classic-ML view.

    Child runs are folded under their parent unless the table is sorted by something other than
    the start time: `order_by="metrics.`accuracy`"` (or "tags.`mlflow.runName`") lists them flat.
    `view_key` opens a shared view (columns, sort) kept in the experiment tag
    `mlflow.sharedViewState.<view_key>` as JSON.
    """
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if order_by:
        url += f"&orderByKey={quote(order_by, safe='')}&orderByAsc={str(ascending).lower()}"
    if view_key:
        url += f"&viewStateShareKey={quote(view_key, safe='')}"
    return url


def mlflow_models_url(base: str, experiment_id: str) -> str:
    """The experiment's Models tab (its LoggedModels, with their metrics per dataset and params).

    Without `workflowType=machine_learning` a fresh browser shows it as GenAI "Agent versions".
    """
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/models?workflowType=machine_learning"
