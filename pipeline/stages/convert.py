"""The convert stage: Paddle static graph -> ONNX with paddle2onnx, cached by content."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

from pipeline.core import interrupts
from pipeline.core.cache import cached_artifact, content_key, installed_version
from pipeline.core.errors import ModelError
from pipeline.core.files import environment_kept
from pipeline.core.model_files import PaddleModelFiles, find_model_files
from pipeline.options.config import ConvertConfig

MODEL_FILE = "model.onnx"


def _fold_constants(raw: Path, target: Path) -> None:
    """Polygraphy's constant folding, what paddle2onnx's default `optimize_tool` does.

    paddle2onnx runs it with `POLYGRAPHY_AUTOINSTALL_DEPS=1`, left set in the environment, so
    that the first conversion pip-installs onnx-graphsurgeon, sympy and ml-dtypes into the
    user's environment (offline it fails quietly and folds nothing). Here the dependencies are
    declared and installation is off. Folding matters: without it ONNX Runtime's transformer
    fusions find no SkipLayerNormalization, BiasGelu or EmbedLayerNormalization (measured on
    the demo model: 4 + 2 + 1 fused ops with folding, 0 without).
    """
    import onnx
    from polygraphy import config as polygraphy_config
    from polygraphy.backend.onnx import fold_constants

    polygraphy_config.AUTOINSTALL_DEPS = False
    model = onnx.load(str(raw))
    try:
        folded = fold_constants(model, error_ok=False)
    except Exception as exc:
        raise ModelError(f"constant folding failed on the converted {raw.name}: {exc}") from None
    onnx.save(folded, str(target))


def _export(files: PaddleModelFiles, opset: int, checker: bool, out_dir: Path) -> None:
    # paddle2onnx may write intermediate files beside its input: give it a private copy,
    # so a read-only model folder works and the user's folder stays untouched.
    with tempfile.TemporaryDirectory(prefix="p2o-") as work:
        graph = Path(work) / f"model{files.graph.suffix}"
        params = Path(work) / "model.pdiparams"
        raw = Path(work) / "raw.onnx"
        shutil.copyfile(files.graph, graph)
        shutil.copyfile(files.params, params)
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), environment_kept():
                # paddle2onnx imports paddle, which puts its own SIGTERM handler in Python's place
                # (pipeline.core.interrupts); here, so that Python gets it back at once.
                with interrupts.shielded():
                    import paddle  # noqa: F401
                    import paddle2onnx

                paddle2onnx.export(
                    str(graph),
                    str(params),
                    save_file=str(raw),
                    opset_version=opset,
                    auto_upgrade_opset=False,
                    enable_onnx_checker=checker,
                    optimize_tool="none",  # folded below, without paddle2onnx's run-time installs
                )
        except Exception as exc:
            raise ModelError(f"paddle2onnx could not convert {files.graph}: {exc}") from None
        finally:
            interrupts.reclaim_signals()
        if not raw.is_file():
            raise ModelError(f"paddle2onnx wrote no model for {files.graph}: {log.getvalue()[-500:]}")
        with contextlib.redirect_stdout(log):
            _fold_constants(raw, out_dir / MODEL_FILE)


def convert(path_prefix: str | Path, options: ConvertConfig, cache_dir: Path) -> Path:
    """Returns the path of the ONNX model, converting only when no cached copy exists."""
    files = find_model_files(path_prefix)
    opset, checker = options.opset, options.onnx_checker
    key = content_key(
        graph=files.graph,
        params=files.params,
        opset=opset,
        checker=checker,
        paddle2onnx=installed_version("paddle2onnx"),
        polygraphy=installed_version("polygraphy"),
        code=Path(__file__),
    )
    folder, _ = cached_artifact(cache_dir, "onnx", key, lambda out: _export(files, opset, checker, out))
    return folder / MODEL_FILE


def graph_vocab_size(model_path: Path) -> int | None:
    """Rows of the word-embedding table: the first dimension of the initializer input_ids index."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == "input_ids" and node.input[0] in initializers:
            return int(initializers[node.input[0]].dims[0])
    return None
