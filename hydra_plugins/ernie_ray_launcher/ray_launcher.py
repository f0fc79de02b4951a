"""`hydra/launcher=ray`: Hydra's Ray launcher (hydra-ray-launcher) made safe for sweeps across machines.

It runs every job as a Ray task exactly as the plugin does, and adds what a shared cluster needs:
one absolute sweep folder for every job (workers have other working directories and clocks),
joining a running cluster without the plugin's `object_store_memory` (which Ray refuses there),
and a lost task (its worker or node died) recorded FAILED in the sweep instead of aborting it.
Hydra loads launchers only from the `hydra_plugins` package, hence this module's home; the work
is in `_core.py`, imported only when a sweep is launched, so other runs do not import Ray.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher


class ClusterRayLauncher(RayLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.ernie_ray_launcher import _core

        return _core.launch(self, job_overrides, initial_job_idx)
