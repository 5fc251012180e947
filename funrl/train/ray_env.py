"""Ray's process environment, set before Ray is first imported (``import funrl`` applies it).

Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray._private.ray_constants`` is
imported: with it ``0`` the node's address is 127.0.0.1 and gcs_server, the raylet, the agents,
the workers and the driver listen on loopback only; set after ``import ray`` it has no effect and
they listen on every interface (``::``). So :func:`apply` runs in ``funrl/__init__.py``, which
every entry point (CLI, tests, benches, Ray workers unpickling funrl classes) imports before Ray;
:func:`force_loopback` covers a process that imported Ray first (it sets the constant Ray read).

Authentication: Ray's token authentication stays on (Ray ≥ 2.5x enables it for a new local
cluster; funrl no longer sets ``RAY_AUTH_MODE=disabled``). Loopback keeps other hosts out, not
other users of the same host, and the token (``~/.ray/auth_token``, made private by
:func:`private_token`) keeps those out too.

A run that joins a multi-host cluster (``cluster.address``) needs a routable driver address:
export ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` before starting funrl (``apply`` never overrides a
value the user set).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LOOPBACK_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

SAFE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    LOOPBACK_VAR: "0",  # read at import: loopback only (see module docstring)
    "RAY_DEDUP_LOGS": "0",
    # Ray starts workers at nice 15 so that they yield to its own daemons; here the workers *are*
    # the job, and at nice 15 every phase lost to anything else awake. Read when a private
    # cluster starts; a cluster joined with cluster.address keeps its own setting.
    "RAY_worker_niceness": "0",
}


def apply() -> None:
    """Put :data:`SAFE_ENV` into ``os.environ`` (values the user set win)."""
    for k, v in SAFE_ENV.items():
        os.environ.setdefault(k, v)


def force_loopback() -> None:
    """For a private cluster: loopback even if Ray was imported before :func:`apply` ran or the
    user exported ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` (a private cluster is never exposed;
    join one started with ``ray start`` for that). Child processes read the variable afresh."""
    os.environ[LOOPBACK_VAR] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and getattr(constants, "ENABLE_RAY_CLUSTER", False):
        constants.ENABLE_RAY_CLUSTER = False  # what services.get_node_ip_address reads


def loopback_env() -> dict[str, str]:
    """For the actors of a private cluster: torch.distributed's gloo and NCCL sockets on the
    loopback interface (by default they bind the interface the host name resolves to). The
    policy ranks meet through a file store in the private folder, so no TCPStore listens either
    (see funrl.train.roles). Values the user exported win."""
    import psutil

    lo = next((name for name, addrs in psutil.net_if_addrs().items()
               if any(a.address == "127.0.0.1" for a in addrs)), "lo")
    return {k: os.environ.get(k, lo) for k in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")}


def private_token() -> None:
    """Ray writes its token 0644; make it readable by the user alone."""
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    try:
        if token.is_file() and token.stat().st_uid == os.getuid():
            token.chmod(0o600)
    except OSError:
        pass
