"""A sweep's config loader that hands a launcher the job configs its sweeper composed already.

Hydra's sweepers compose job configs to check them (or, resuming, to find the jobs' folders), and
its launchers then compose each job's config again from its overrides: 0.12 to 0.4 s of CPU a
job, taken from the jobs on a busy machine. The sweeper wraps the sweep's config loader in
`ComposedOnce` and `keep`s the configs of the jobs it will launch; the launcher's
`load_sweep_config` takes a kept one instead of composing it again. Any launcher gets this
through `hydra_context.config_loader`. A config is handed over once (then forgotten), and at
most KEEP_AT_MOST are kept at a time (about 0.2 MB each): a resumed sweep of hundreds of pending
jobs, whose folders the sweeper finds before the first launch, has the rest composed again.

Hydra's plugin scan skips this module (its name starts with `_`). The scan runs each module it
finds once more where the module was imported already (the sweeper imports this one), which would
make a second `ComposedOnce` class, and pickle could not find the class of the sweeper's object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.types import RunMode
from omegaconf import DictConfig

if TYPE_CHECKING:
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.plugins.config_source import ConfigSource

KEEP_AT_MOST = 100


class ComposedOnce(ConfigLoader):
    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self._kept: dict[tuple[int, tuple[str, ...]], DictConfig] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled into a worker's task (with the Hydra context): the loader, not the kept configs."""
        return {"loader": self.loader, "_kept": {}}

    def keep(self, master_config: DictConfig, sweep_overrides: list[str], config: DictConfig) -> None:
        """`config`, composed from `master_config` and `sweep_overrides`, is what the launcher's
        `load_sweep_config` of them returns (once), unless KEEP_AT_MOST are kept already."""
        if len(self._kept) < KEEP_AT_MOST:
            self._kept[(id(master_config), tuple(sweep_overrides))] = config

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        kept = self._kept.pop((id(master_config), tuple(sweep_overrides)), None)
        return kept if kept is not None else self.loader.load_sweep_config(master_config, sweep_overrides)

    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        return self.loader.load_configuration(
            config_name, overrides, run_mode, from_shell, validate_sweep_overrides
        )

    def get_search_path(self) -> ConfigSearchPath:
        return self.loader.get_search_path()

    def get_sources(self) -> list[ConfigSource]:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(
        self,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        return self.loader.get_group_options(group_name, results_filter, config_name, overrides)

    def compute_defaults_list(self, config_name: str | None, overrides: list[str], run_mode: RunMode) -> Any:
        return self.loader.compute_defaults_list(config_name, overrides, run_mode)
