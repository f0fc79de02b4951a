"""How this project starts or joins a Ray cluster (sweeps and predict.executor=ray alike).

Ray's own rule for `ray.init()` without an address, which Hydra's Ray launcher follows: join the
cluster in RAY_ADDRESS, else the one `ray start` last started on this machine, else start one.
`running_cluster()` finds that cluster the way Ray does, before Ray is imported (Ray reads its
authentication mode when imported), and checks that it answers: a cluster that died without
`ray stop` leaves its address behind, and Ray would fail to connect to it.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError

# ray.init settings that size a cluster ray.init starts; a cluster that runs already has its size
# (`ray start --num-cpus ...`), and Ray refuses them when joining it.
LOCAL_ONLY = ("num_cpus", "num_gpus", "resources", "labels", "object_store_memory")


def ray_address_file() -> Path:
    """Where `ray start` records the cluster it started (Ray: $RAY_TMPDIR, $TMPDIR or /tmp, then ray/)."""
    if "RAY_TMPDIR" in os.environ:
        root = os.environ["RAY_TMPDIR"]
    elif sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        root = os.environ["TMPDIR"]
    else:
        root = "/tmp"
    return Path(root) / "ray" / "ray_current_cluster"


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def running_cluster() -> tuple[str, str] | None:
    """(address, where it was found) of the cluster `ray.init()` would join, or None: it would
    start one. RAY_ADDRESS first; then the cluster `ray start` recorded, if it answers."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    path = ray_address_file()
    try:
        address = path.read_text().strip()
    except OSError:
        return None
    if address and _answers(address):
        return address, f"started by `ray start` on this machine ({path})"
    return None


def ray_init_options(
    init: dict[str, Any],
    *,
    setting: str = "hydra.launcher.ray.init",
    local_defaults: dict[str, Any] | None = None,
    join_running: bool = True,
) -> dict[str, Any]:
    """`init` (`setting`, as the user wrote it) as `ray.init` takes it, with the address resolved:

    - `address` null: the running cluster (`running_cluster()`) where `join_running`, else a
      cluster of its own (`local`); `local`: always one of its own; HOST:PORT, `auto`, `ray://...`:
      join that one.
    - Joining, a setting that sizes a new cluster (LOCAL_ONLY) cannot apply: ConfigError, one line.
      `local_defaults` apply only to a cluster of its own.
    - Joining a cluster that `ray start` started (token authentication on), its token
      (RAY_AUTH_TOKEN or ~/.ray/auth_token) is used.

    Call this before the process imports Ray: Ray reads the authentication mode (RAY_AUTH_MODE,
    set here) when it is imported.
    """
    options = {key: value for key, value in init.items() if value is not None}
    address = options.get("address")
    source = f"{setting}.address={address}"
    if address is None and join_running and (found := running_cluster()):
        address, source = found
    if address in (None, "local"):
        options["address"] = "local"
        return {**(local_defaults or {}), **options}
    options["address"] = address
    refused = [key for key in LOCAL_ONLY if key in options]
    if refused:
        key = refused[0]
        raise ConfigError(
            f"{setting}.{key}={options[key]} sizes a Ray cluster of this run's own, but it joins the "
            f"running one at {address} ({source}), whose size `ray start` set: leave {setting}.{key} "
            f"null, or set {setting}.address=local for a cluster of its own"
        )
    has_token = "RAY_AUTH_TOKEN" in os.environ or (Path.home() / ".ray" / "auth_token").is_file()
    if has_token:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    return options


def stop_ray() -> None:
    """ray.shutdown(), less the second Ray loses stopping a cluster that ray.init started: it stops
    the GCS before the autoscaler's monitor, whose SIGTERM handler then waits on the stopped GCS
    until Ray kills it a second later. A cluster of a run's own has nothing to autoscale: its
    monitor is killed first. (Ray's private node API: the ray extra pins Ray's version.)"""
    import ray

    node = ray._private.worker._global_node
    if node is not None and node.head:
        monitor = ray._private.ray_constants.PROCESS_TYPE_MONITOR
        node._kill_process_type(monitor, check_alive=False, allow_graceful=False, wait=True)
    ray.shutdown()
