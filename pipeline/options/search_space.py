"""The conditional part of `experiment=optuna_search`'s search space (hydra.sweeper.custom_search_space)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from pipeline.options.precisions import PRECISIONS

if TYPE_CHECKING:
    import optuna


def precision_options(config: DictConfig, trial: optuna.Trial) -> None:
    """Also search the options of the precision this trial drew (`search_options` of its class).

    They cannot sit in `hydra.sweeper.params`: a key such as precision.quantization.per_channel
    exists only in INT8 trials, and composing it into an FP32 trial is an error.
    """
    precision = trial.params.get("precision", trial.user_attrs.get("precision"))
    if precision is None:
        precision = config.precision.name
    for key, choices in PRECISIONS.get(str(precision)).search_options.items():
        trial.suggest_categorical(f"precision.{key}", list(choices))
