"""What an Optuna search (`experiment=optuna_search`) may draw: only what can run.

Two parts, both read from the option classes (nothing here lists engines or precisions):

- `GroupSpace`: the device, engine and precision values a trial draws, each given the ones drawn
  before it. An engine runs the precisions of `EngineConfig.precisions` on its `devices`, and a
  precision runs on this CPU only if `PrecisionConfig.cpu_lacks()` says nothing is missing: the
  rules a job checks (`Config.__post_init__`), asked before the trial instead of after it. Optuna
  wants one distribution per parameter name, so where the values a precision may take depend on
  the engine drawn, each engine has its own parameter, `precision[engine=openvino]`: the sweeper
  gives the job `precision=...` (the name up to `[`).
- `precision_options` (hydra.sweeper.custom_search_space): the options of the precision a trial
  drew (`search_options` of its class).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from pipeline.core.errors import MissingExtra, PipelineError, require_extra
from pipeline.options.devices import DEVICES
from pipeline.options.engines import ENGINES
from pipeline.options.precisions import PRECISIONS

if TYPE_CHECKING:
    import optuna

# The config groups whose values decide whether a job can run, each after the ones it depends on.
GROUPS = ("device", "engine", "precision")


def parameter_key(name: str) -> str:
    """The config key an Optuna parameter sets: `precision[engine=openvino]` sets `precision`."""
    return name.split("[", 1)[0]


def cannot_run(device: str, engine: str, precision: str) -> str | None:
    """Why a job with this device, engine and precision cannot run here (None: it can).

    The same checks a job makes when its config is validated, on the same classes.
    """
    try:
        engine_config = ENGINES.create(engine)
        precision_config = PRECISIONS.create(precision)
        device_config = DEVICES.create(device)
    except PipelineError as exc:  # a name that is not an option: the job would say so itself
        return str(exc)
    reason = engine_config.unsupported(precision_config, device_config)
    if reason is None and device == "cpu" and (lacks := precision_config.cpu_lacks()):
        reason = f"precision={precision} needs native support: {lacks}"
    if reason is None and engine_config.extra != "core":
        try:
            require_extra(engine_config.extra, f"engine={engine}")
        except MissingExtra as exc:
            reason = str(exc)
    return reason


@dataclass
class GroupSpace:
    """The device, engine and precision values of a search that can run, each given the others.

    `searched`: the runnable values of each searched group (choice(...)), in the order declared;
    `fixed`: the one value of each group that is not searched.
    """

    searched: dict[str, list[str]]
    fixed: dict[str, str]
    runnable: list[dict[str, str]]  # every combination of the groups' values that can run
    # Why a declared value is never drawn (one line each), e.g. an engine that runs none of the
    # precisions searched.
    left_out: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, declared: Mapping[str, Sequence[object]], fixed: Mapping[str, str]) -> GroupSpace:
        """The runnable part of `declared` (the searched groups' values) with `fixed` (the others').

        Raises PipelineError where no combination can run.
        """
        searched = {key: [str(v) for v in declared[key]] for key in GROUPS if key in declared}
        keys = [key for key in GROUPS if key in searched or key in fixed]
        axes = [searched[key] if key in searched else [fixed[key]] for key in keys]
        reasons: dict[tuple[str, ...], str | None] = {}
        for values in map(tuple, itertools.product(*axes)):
            combo = dict(zip(keys, values, strict=True))
            reasons[values] = (
                cannot_run(combo.get("device", "cpu"), combo.get("engine", "onnxruntime"), combo["precision"])
                if "precision" in combo
                else None
            )
        runnable = [dict(zip(keys, values, strict=True)) for values, why in reasons.items() if why is None]
        if not runnable:
            why = sorted({str(reason) for reason in reasons.values()})
            raise PipelineError(f"no trial of this search can run: {'; '.join(why)}")
        left_out = []
        for key, declared_values in searched.items():
            position = keys.index(key)
            for value in declared_values:
                if not any(combo[key] == value for combo in runnable):
                    why = sorted({str(r) for v, r in reasons.items() if v[position] == value and r})
                    left_out.append(f"{key}={value} is left out of the search: {'; '.join(why)}")
            searched[key] = [v for v in declared_values if any(combo[key] == v for combo in runnable)]
        return cls(searched, dict(fixed), runnable, left_out)

    def order(self) -> list[str]:
        """The searched groups in the order a trial draws them."""
        return [key for key in GROUPS if key in self.searched]

    def _given(self, key: str) -> list[str]:
        """The searched groups drawn before `key`, on which its values may depend."""
        return [k for k in GROUPS[: GROUPS.index(key)] if k in self.searched]

    def _allowed(self, key: str, drawn: Mapping[str, str]) -> list[str]:
        matching = [combo for combo in self.runnable if all(combo[k] == v for k, v in drawn.items())]
        return [value for value in self.searched[key] if any(combo[key] == value for combo in matching)]

    def choices(self, key: str, drawn: Mapping[str, str]) -> tuple[str, list[str]]:
        """(Optuna parameter name, values) of the searched group `key` in a trial that has drawn
        `drawn` (the groups before it): the plain key where its values never depend on what was
        drawn, else one name per combination of the searched groups drawn before it."""
        given = self._given(key)
        values = self._allowed(key, {k: drawn[k] for k in given})
        sets = {
            tuple(self._allowed(key, dict(zip(given, condition, strict=True))))
            for condition in itertools.product(*(self.searched[k] for k in given))
        }
        if len(sets - {()}) <= 1:
            return key, values
        return f"{key}[{','.join(f'{k}={drawn[k]}' for k in given)}]", values

    def parameters(self) -> dict[str, list[str]]:
        """Every parameter name the groups can take, with its values: one distribution each."""
        names: dict[str, list[str]] = {}
        for key in self.order():
            given = self._given(key)
            for condition in itertools.product(*(self.searched[k] for k in given)):
                drawn = dict(zip(given, condition, strict=True))
                name, values = self.choices(key, drawn)
                if values:
                    names[name] = values
        return names


def drawn_value(trial: optuna.Trial, key: str) -> Any:
    """What a trial set `key` to: a searched parameter (also under a conditional name), else a
    value fixed on the command line (the sweeper keeps those as user attributes)."""
    for name, value in trial.params.items():
        if parameter_key(name) == key:
            return value
    return trial.user_attrs.get(key)


def precision_options(config: DictConfig, trial: optuna.Trial) -> None:
    """Also search the options of the precision this trial drew (`search_options` of its class).

    They cannot sit in `hydra.sweeper.params`: a key such as precision.quantization.per_channel
    exists only in INT8 trials, and composing it into an FP32 trial is an error.
    """
    precision = drawn_value(trial, "precision")
    if precision is None:
        precision = config.precision.name
    for key, choices in PRECISIONS.get(str(precision)).search_options.items():
        trial.suggest_categorical(f"precision.{key}", list(choices))
