"""ERNIE architectures the seed names, and random-weight exports of them for speed work.

Real weights cannot be downloaded here; a model with the real shapes and random weights
has the real latency, so benchmarks use these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.cache import cached_artifact, content_key


@dataclass(frozen=True)
class Architecture:
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int = 40000
    max_positions: int = 2048
    type_vocab: int = 4
    task_type_vocab: int = 16
    use_task_id: bool = True


ERNIE_3_0 = {
    "ernie-3.0-xbase-zh": Architecture(layers=20, hidden=1024, heads=16, ffn=4096),
    "ernie-3.0-base-zh": Architecture(layers=12, hidden=768, heads=12, ffn=3072),
    "ernie-3.0-medium-zh": Architecture(layers=6, hidden=768, heads=12, ffn=3072),
    "ernie-3.0-mini-zh": Architecture(layers=6, hidden=384, heads=12, ffn=1536),
    "ernie-3.0-micro-zh": Architecture(layers=4, hidden=384, heads=12, ffn=1536),
    "ernie-3.0-nano-zh": Architecture(layers=4, hidden=312, heads=12, ffn=1248),
}


def _export_random(arch: Architecture, num_labels: int, seed: int, out_dir: Path) -> None:
    import paddle
    from paddlenlp.transformers import ErnieConfig, ErnieForSequenceClassification

    from pipeline.demo_model import export_static

    paddle.seed(seed)
    config = ErnieConfig(
        vocab_size=arch.vocab,
        hidden_size=arch.hidden,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        intermediate_size=arch.ffn,
        max_position_embeddings=arch.max_positions,
        type_vocab_size=arch.type_vocab,
        task_type_vocab_size=arch.task_type_vocab,
        use_task_id=arch.use_task_id,
        num_labels=num_labels,
    )
    export_static(ErnieForSequenceClassification(config), out_dir / "export" / "float32")


def random_weights_export(arch: Architecture, num_labels: int, cache_dir: Path, seed: int = 0) -> Path:
    """The static-graph prefix of `arch` with random weights, exported once per shape."""
    key = content_key(arch=asdict(arch), num_labels=num_labels, seed=seed, version=1)
    folder, _ = cached_artifact(
        cache_dir, "random-models", key, lambda out: _export_random(arch, num_labels, seed, out)
    )
    return folder / "export" / "float32"
