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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# The raylet connects to its object store's socket as the store thread opens it, and a connection
# refused waits raylet_client_connect_timeout_milliseconds (1 s) before the next try: it lost that
# second in about half of the starts here. The same 10 s in 50 ms steps (Ray's `_system_config`;
# a user's own settings there win).
_QUICK_CONNECT = {"raylet_client_connect_timeout_milliseconds": 50, "raylet_client_num_connect_attempts": 200}


def start_ray(options: dict[str, Any]) -> None:
    """ray.init(**options), `options` from `ray_init_options`. A cluster of the run's own without
    Ray's dashboard starts lean (`_lean_head_node`): 1.3 to 1.6 s instead of 2.4 to 3.4 s on a
    2-CPU machine (docs/BENCHMARKS.md, "Sweep launchers")."""
    import ray

    if options.get("address") == "local" and not options.get("include_dashboard"):
        system_config = {**_QUICK_CONNECT, **(options.get("_system_config") or {})}
        with _lean_head_node():
            ray.init(**{**options, "_system_config": system_config})
    else:
        ray.init(**options)


def _skip_process(*_args: Any, **_kwargs: Any) -> None:
    return None


@contextmanager
def _lean_head_node() -> Iterator[None]:
    """While ray.init starts a cluster of the run's own, its head node leaves out what such a
    cluster does not use, and waits less for its raylet:

    - the dashboard's API server, which Ray starts and waits for (0.75 s here) even where
      `include_dashboard: false` loads none of the dashboard's modules;
    - the autoscaler's monitor: a cluster of fixed size has nothing to scale (a Python process
      importing Ray on the CPUs the cluster starts on);
    - Ray asks the GCS for its new raylet once a second (GlobalStateAccessor::GetNode), and the
      raylet registers once its agents run, 0.6 to 1.6 s after it started: up to a second lost.
      It is asked every 20 ms here, then Ray's own call finds it at once.

    The GCS, the raylet and its agents, the log monitor and the workers start as Ray starts them.
    Ray's private node API: the ray extra pins Ray's version, and
    tests/e2e/test_ray_launcher.py checks which processes a cluster of a sweep's own runs."""
    from ray._private import node, services

    saved = (node.Node.start_api_server, node.Node.start_monitor, services.get_node)
    node.Node.start_api_server = _skip_process
    node.Node.start_monitor = _skip_process
    services.get_node = _once_registered(services.get_node)
    try:
        yield
    finally:
        node.Node.start_api_server, node.Node.start_monitor, services.get_node = saved


def _once_registered(get_node: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
    """Ray's `services.get_node`, called once the GCS lists the node alive (within Ray's own 30 s:
    after that Ray's call gives Ray's error)."""
    from ray._private import services
    from ray.core.generated.gcs_pb2 import GcsNodeInfo
    from ray.core.generated.gcs_service_pb2 import GetAllNodeInfoRequest

    def when_registered(gcs_address: str, node_id: str) -> Any:
        client = services.GcsClient(address=gcs_address)
        selector = GetAllNodeInfoRequest.NodeSelector(node_id=services.NodeID.from_hex(node_id).binary())
        deadline = time.monotonic() + 30
        alive = GcsNodeInfo.GcsNodeState.ALIVE
        while time.monotonic() < deadline:
            try:
                if client.get_all_node_info(timeout=5, node_selectors=[selector], state_filter=alive):
                    break
            except Exception:  # Ray's own call below says what is wrong
                break
            time.sleep(0.02)
        return get_node(gcs_address, node_id)

    return when_registered


def stop_ray() -> None:
    """ray.shutdown(), less the second Ray loses stopping a cluster that ray.init started with the
    autoscaler's monitor (where `start_ray` does not start it lean): Ray stops the GCS before the
    monitor, whose SIGTERM handler then waits on the stopped GCS until Ray kills it a second later.
    A cluster of a run's own has nothing to autoscale: its monitor is killed first. (Ray's private
    node API: the ray extra pins Ray's version.)"""
    import ray

    node = ray._private.worker._global_node
    if node is not None and node.head:
        monitor = ray._private.ray_constants.PROCESS_TYPE_MONITOR
        node._kill_process_type(monitor, check_alive=False, allow_graceful=False, wait=True)
    ray.shutdown()
