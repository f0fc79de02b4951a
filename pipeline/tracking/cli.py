"""`python -m pipeline.tracking`: resync job or sweep folders, or print the dashboard's link.

python -m pipeline.tracking resync DIR [DIR ...] [--tracking-uri URI] [--experiment NAME]
python -m pipeline.tracking link [--tracking-uri URI] [--ui URL]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.options.tracking import MlflowConfig, sqlite_database
from pipeline.tracking.resync import resync
from pipeline.tracking.store import runs_page


def link(tracking_uri: str, experiment: str, ui: str) -> str:
    """The runs table of the project's experiment as `ui` serves a SQLite store (its address alone
    while the experiment does not exist yet)."""
    from pipeline.tracking.server import experiment_id

    database = sqlite_database(tracking_uri)
    found = experiment_id(tracking_uri, experiment) if database is not None else None
    return runs_page(ui, found) if found else f"{ui} (no runs of {experiment} yet)"


def main(argv: list[str] | None = None) -> None:
    defaults = MlflowConfig()
    parser = argparse.ArgumentParser(prog="python -m pipeline.tracking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("resync", help="make the MLflow runs of job or sweep folders whole")
    command.add_argument("folders", nargs="+", type=Path, metavar="DIR")
    command.add_argument("--tracking-uri", help="default: the job's own mlflow.tracking_uri")
    command.add_argument("--experiment", help="default: the job's own mlflow.experiment_name")
    shown = commands.add_parser("link", help="print the link to the experiment's runs table")
    shown.add_argument("--tracking-uri", required=True, help="a sqlite:/// tracking database")
    shown.add_argument("--experiment", default=defaults.experiment_name)
    shown.add_argument("--ui", default="http://127.0.0.1:5000", help="where the UI serves it")
    args = parser.parse_args(argv)
    if args.command == "link":
        print(f"MLflow UI: {link(args.tracking_uri, args.experiment, args.ui)}")
        return
    failed = False
    for folder in args.folders:
        try:
            for line in resync(folder, args.tracking_uri, args.experiment):
                print(line)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
    sys.exit(2 if failed else 0)
