"""The files `paddle.jit.save` writes: <prefix>.json (Paddle 3 PIR) or .pdmodel, and <prefix>.pdiparams."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import ModelError


@dataclass(frozen=True)
class PaddleModelFiles:
    graph: Path  # <prefix>.json (Paddle 3 PIR) or <prefix>.pdmodel (legacy program)
    params: Path  # <prefix>.pdiparams


def find_model_files(path_prefix: str | Path) -> PaddleModelFiles:
    prefix = Path(path_prefix)
    params = prefix.with_name(prefix.name + ".pdiparams")
    candidates = [prefix.with_name(prefix.name + ext) for ext in (".json", ".pdmodel")]
    graph = next((c for c in candidates if c.is_file()), None)
    if graph is None and prefix.is_dir():
        found = sorted(p.name for p in prefix.glob("*.pdiparams"))
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ModelError(
            f"model.path_prefix={prefix} is a folder{hint}; give the prefix paddle.jit.save wrote, "
            f"e.g. {prefix / (found[0].removesuffix('.pdiparams') if found else 'float32')}"
        )
    if graph is None:
        raise ModelError(
            f"no static-graph model at {candidates[0]} or {candidates[1]}; model.path_prefix must "
            "be the prefix paddle.jit.save wrote (e.g. export/float32)"
        )
    if not params.is_file():
        raise ModelError(
            f"{params}: parameters file not found (written by paddle.jit.save beside {graph.name})"
        )
    return PaddleModelFiles(graph=graph, params=params)
