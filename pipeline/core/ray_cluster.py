"""How this project starts or joins a Ray cluster (sweeps and predict.executor=ray alike)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def ray_init_options(init: dict[str, Any]) -> dict[str, Any]:
    """`hydra.launcher.ray.init` as `ray.init` takes it: a cluster of its own unless an address is given.

    Joining a running cluster (`address=HOST:PORT` or `auto`), Ray refuses resource settings
    such as `object_store_memory`, and a cluster started by `ray start` has token authentication
    on: its token (RAY_AUTH_TOKEN or ~/.ray/auth_token) is used. Call this before the process
    imports Ray: Ray reads the authentication mode (RAY_AUTH_MODE, set here) when it is imported.
    """
    options = {key: value for key, value in init.items() if value is not None}
    # Ray's own default (no address) joins a cluster that `ray start` runs on this machine, if any.
    options.setdefault("address", "local")
    if options["address"] != "local":
        for key in ("object_store_memory", "num_cpus", "num_gpus", "resources"):
            options.pop(key, None)
        has_token = "RAY_AUTH_TOKEN" in os.environ or (Path.home() / ".ray" / "auth_token").is_file()
        if has_token:
            os.environ.setdefault("RAY_AUTH_MODE", "token")
    return options
