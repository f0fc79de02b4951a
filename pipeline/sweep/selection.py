"""Picks a sweep's winner by a rule: the best value of one metric among jobs that meet a constraint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import SupportsFloat

from pipeline.core.files import atomic_write_text
from pipeline.options.config import SelectConfig

SELECTION_FILE = "selection.md"


@dataclass(frozen=True)
class Selection:
    winner: dict[str, object] | None
    eligible: int
    finished: int
    reasons: list[str]

    @property
    def headline(self) -> str:
        """The line that names the winner (or says there is none)."""
        return next((r for r in self.reasons if r.startswith(("Winner:", "No job"))), self.reasons[-1])


def _value(row: dict[str, object], key: str) -> float | None:
    value = row.get(key)
    if not isinstance(value, str | SupportsFloat) or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def select_winner(rows: list[dict[str, object]], rule: SelectConfig) -> Selection:
    finished = [r for r in rows if r["status"] == "FINISHED"]

    def meets_constraint(row: dict[str, object]) -> bool:
        if not rule.constraint_metric:
            return True
        value = _value(row, rule.constraint_metric)
        return value is not None and value >= rule.constraint_min

    eligible = [r for r in finished if _value(r, rule.metric) is not None and meets_constraint(r)]
    constraint = (
        f"{rule.constraint_metric} >= {rule.constraint_min}" if rule.constraint_metric else "no constraint"
    )
    reasons = [
        f"Rule: the {'lowest' if rule.direction == 'minimize' else 'highest'} {rule.metric} among FINISHED "
        f"jobs with {constraint}.",
        f"{len(eligible)} of {len(finished)} finished jobs meet the constraint ({len(rows)} jobs in all).",
    ]
    if not eligible:
        return Selection(None, 0, len(finished), [*reasons, "No job qualifies: nothing is selected."])
    ordered = sorted(
        eligible, key=lambda r: _value(r, rule.metric) or 0.0, reverse=rule.direction == "maximize"
    )
    winner = ordered[0]
    reasons.append(
        f"Winner: job {winner['job']} ({winner['overrides']}), {rule.metric} = {winner[rule.metric]}."
    )
    if len(ordered) > 1:
        second = ordered[1]
        reasons.append(
            f"Runner-up: job {second['job']} ({second['overrides']}), {rule.metric} = {second[rule.metric]}."
        )
    return Selection(winner, len(eligible), len(finished), reasons)


def write_selection(sweep_dir: Path, selection: Selection) -> Path:
    path = Path(sweep_dir) / SELECTION_FILE
    atomic_write_text(path, "# Selection\n\n" + "\n".join(f"- {line}" for line in selection.reasons) + "\n")
    return path
