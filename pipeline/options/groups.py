"""Options chosen by name: each device, precision and engine is a dataclass registered here.

A registered class is also stored in Hydra's ConfigStore as `<group>/<name>_schema`, so its
YAML (`conf/<group>/<name>.yaml`, `defaults: [<name>_schema, _self_]`) is type-checked against
it when composed, and `OmegaConf.to_object` builds that class, whose `__post_init__` validates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from hydra.core.config_store import ConfigStore

from pipeline.core.errors import ConfigError

T = TypeVar("T")


class OptionGroup(Generic[T]):
    """The options of one config group (device, precision, engine): a class each, by name."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            self._classes[name] = cls
            ConfigStore.instance().store(group=self.group, name=f"{name}_schema", node=cls)
            return cls

        return add

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        if name not in self._classes:
            raise ConfigError(f"{self.group}={name!r} is not one of {', '.join(self.names())}")
        return self._classes[name]

    def create(self, name: str, **values: object) -> T:
        """The option `name` with `values` (defaults elsewhere): for code that builds configs itself."""
        return self.get(name)(**values)
