"""The `export` stage: a dynamic model (fine-tuned checkpoint, PaddleNLP name, or an
architecture with random weights) -> the static-graph prefix the `convert` stage takes.

It does what the seed's upstream `export_model.py` does (`paddle.jit.to_static` +
`paddle.jit.save`), with the graph inputs chosen by `model.inputs`, cached by content.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from pipeline.core import interrupts
from pipeline.core.cache import cached_artifact, content_key, installed_version
from pipeline.core.errors import ModelError
from pipeline.core.files import names_a_path
from pipeline.options.config import ArchitectureConfig, ModelConfig
from pipeline.runtimes.base import GRAPH_INPUTS

log = logging.getLogger(__name__)

EXPORT_PREFIX = Path("export") / "float32"
CHECKPOINT_FILES = ("model_state.pdparams", "config.json")


def export_static(model, path_prefix: Path, inputs: list[str]) -> None:
    """`paddle.jit.to_static` + `paddle.jit.save` with int64 `[batch, seq]` inputs named `inputs`."""
    import paddle

    class Exportable(paddle.nn.Layer):
        """Fixed positional inputs for to_static; the ones not exported stay None."""

        def __init__(self, classifier) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, input_ids, token_type_ids=None, task_type_ids=None, attention_mask=None):
            kwargs = {}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            if attention_mask is not None:
                kwargs["attention_mask"] = attention_mask
            if task_type_ids is None:
                return self.classifier(input_ids, **kwargs)
            # ErnieForSequenceClassification does not pass task_type_ids on; ErnieModel takes them.
            pooled = self.classifier.ernie(input_ids, task_type_ids=task_type_ids, **kwargs)[1]
            return self.classifier.classifier(self.classifier.dropout(pooled))

    model.eval()
    spec = [
        paddle.static.InputSpec(shape=[None, None], dtype="int64", name=name) if name in inputs else None
        for name in GRAPH_INPUTS
    ]
    while spec[-1] is None:
        spec.pop()
    static = paddle.jit.to_static(Exportable(model), input_spec=spec)
    paddle.jit.save(static, str(path_prefix))


def _model_class(architecture: ArchitectureConfig):
    import paddlenlp.transformers

    return getattr(paddlenlp.transformers, architecture.model_class)


def build_random(architecture: ArchitectureConfig, num_labels: int, pad_id: int, seed: int = 0):
    """The architecture with random weights (dynamic graph, eval mode)."""
    import paddle
    import paddlenlp.transformers

    paddle.seed(seed)
    shape = {
        "vocab_size": architecture.vocab,
        "hidden_size": architecture.hidden,
        "num_hidden_layers": architecture.layers,
        "num_attention_heads": architecture.heads,
        "intermediate_size": architecture.ffn,
        "max_position_embeddings": architecture.max_positions,
        "hidden_act": architecture.hidden_act,
        "num_labels": num_labels,
        "pad_token_id": pad_id,
    }
    if architecture.model_class == "ErnieForSequenceClassification":
        config = paddlenlp.transformers.ErnieConfig(
            **shape,
            type_vocab_size=architecture.type_vocab,
            use_task_id=architecture.use_task_id,
            task_type_vocab_size=architecture.task_type_vocab,
        )
    else:
        config = paddlenlp.transformers.ErnieMConfig(**shape)
    model = _model_class(architecture)(config)
    model.eval()
    return model


def export_random(model: ModelConfig, num_labels: int, pad_id: int, cache_dir: Path, seed: int = 0) -> Path:
    """The static-graph prefix of `model.architecture` with random weights, built once per shape.

    `pad_id` is the serving tokenizer's: the graph masks attention where input_ids == pad.
    """

    key = content_key(
        architecture=asdict(model.architecture),
        inputs=model.inputs,
        num_labels=num_labels,
        pad_id=pad_id,
        seed=seed,
        paddle=installed_version("paddlepaddle"),
        code=Path(__file__),
    )

    def build(out: Path) -> None:
        log.info("exporting %s with random weights", model.name)
        _import_paddle()
        dynamic = build_random(model.architecture, num_labels, pad_id, seed)
        export_static(dynamic, out / EXPORT_PREFIX, model.inputs)

    folder, _ = cached_artifact(cache_dir, "random-models", key, build)
    return folder / EXPORT_PREFIX


def checkpoint_files(checkpoint: str) -> dict[str, Path] | None:
    """The files of a local checkpoint folder, or None for a PaddleNLP name."""
    local = Path(checkpoint)
    if local.is_dir():
        missing = [name for name in CHECKPOINT_FILES if not (local / name).is_file()]
        if missing:
            raise ModelError(
                f"{local}: not a checkpoint folder, {' and '.join(missing)} missing "
                "(expected model_state.pdparams + config.json, as save_pretrained writes them)"
            )
        return {name: local / name for name in CHECKPOINT_FILES}
    if names_a_path(checkpoint):
        raise ModelError(f"{local}: checkpoint folder not found (model_state.pdparams + config.json)")
    return None


def load_checkpoint(checkpoint: str, architecture: ArchitectureConfig, num_labels: int):
    """A fine-tuned checkpoint folder as PaddleNLP's trainer saves it, or a PaddleNLP name."""
    from paddlenlp.utils.log import logger as paddlenlp_logger

    paddlenlp_logger.set_level("WARNING")
    # A local checkpoint's head size comes from its own config.json; a PaddleNLP name gets
    # pretrained weights and a fresh head for this dataset's labels.
    kwargs = {} if checkpoint_files(checkpoint) is not None else {"num_labels": num_labels}
    try:
        model = _model_class(architecture).from_pretrained(checkpoint, **kwargs)
    except Exception as exc:  # PaddleNLP raises many types for unreachable or broken models
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no detail"
        raise ModelError(
            f"cannot load checkpoint {checkpoint!r} as {architecture.model_class} "
            f"({type(exc).__name__}: {detail}); offline, download it elsewhere and set "
            "model.checkpoint=/path/to/folder (model_state.pdparams + config.json)"
        ) from None
    model.eval()
    return model


def export_checkpoint(model: ModelConfig, num_labels: int, cache_dir: Path) -> Path:
    """The static-graph prefix of `model.checkpoint`, exported once per checkpoint content."""

    checkpoint = model.checkpoint
    assert checkpoint is not None  # ModelConfig refuses weights=checkpoint without one
    files = checkpoint_files(checkpoint)
    source = files if files is not None else {"name": checkpoint, "num_labels": num_labels}
    key = content_key(
        checkpoint=source,
        model_class=model.architecture.model_class,
        inputs=model.inputs,
        paddle=installed_version("paddlepaddle"),
        code=Path(__file__),
    )

    def build(out: Path) -> None:
        log.info("exporting checkpoint %s", checkpoint)
        _import_paddle()
        dynamic = load_checkpoint(checkpoint, model.architecture, num_labels)
        export_static(dynamic, out / EXPORT_PREFIX, model.inputs)

    folder, _ = cached_artifact(cache_dir, "exports", key, build)
    return folder / EXPORT_PREFIX


def _import_paddle() -> None:
    """paddle and paddlenlp, imported where signals wait: importing them puts their own SIGTERM
    handlers (or none) in Python's place, which pipeline.core.interrupts puts back."""
    with interrupts.shielded():
        import paddle  # noqa: F401
        import paddlenlp.transformers  # noqa: F401


def static_graph(model: ModelConfig, num_labels: int, pad_id: int, cache_dir: Path) -> Path:
    """The static-graph prefix to convert, wherever `model.weights` says it comes from."""
    if model.weights == "random":
        return export_random(model, num_labels, pad_id, cache_dir)
    if model.weights == "checkpoint":
        return export_checkpoint(model, num_labels, cache_dir)
    assert model.path_prefix is not None
    return Path(model.path_prefix)
