"""Ray for funrl: a private local cluster with CI-safe settings, or an existing one; one
placement group whose bundles come from config (never literals in ``@ray.remote``).

A private cluster listens on loopback only (:mod:`funrl.train.ray_env`: the setting Ray reads
at import, torch.distributed's sockets on ``lo``), keeps Ray's token authentication, lives in a
0700 folder of its own and is ended with the run, however it ends (:mod:`funrl.train.ray_session`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from funrl.train import ray_env, ray_session
from funrl.train.ray_env import SAFE_ENV

import ray  # noqa: E402 - after funrl.train.ray_env (import funrl applies it; see there)
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from funrl.train.config import ClusterConfig, RoleResources
from funrl.train.layout import Layout

log = logging.getLogger(__name__)


def ray_safe_env() -> None:
    """Kept for callers that set the environment before a cluster of their own."""
    ray_env.apply()


def start_ray(cfg: ClusterConfig, run_dir: Path, roles: dict[str, int]) -> "PrivateSession | None":
    """Start or join Ray. ``roles``: role name -> number of actors (a private cluster gets at least
    the CPUs their bundles ask for). Returns the private session
    that this call started (None when joining ``cluster.address`` or Ray was already up); end it
    with :meth:`PrivateSession.end` when the run ends, however it ends."""
    if ray.is_initialized():
        return None
    ray_env.apply()
    env = {"env_vars": {**SAFE_ENV, "OMP_NUM_THREADS": str(cfg.torch_threads), "TOKENIZERS_PARALLELISM": "false"}}
    if cfg.address:
        if os.environ.get(ray_env.LOOPBACK_VAR) == "0":  # this driver is loopback-only, so the nodes
            env["env_vars"].update(ray_env.loopback_env())  # are on this host: gloo on loopback too
        ray.init(address=cfg.address, runtime_env=env, configure_logging=False, log_to_driver=True)
        return None
    need = sum(cfg.resources.get(r, RoleResources()).num_cpus * n for r, n in roles.items())
    num_cpus = cfg.num_cpus or max(os.cpu_count() or 1, math.ceil(need))
    ray_session.end_orphans(run_dir)
    ray_env.force_loopback()
    env["env_vars"].update(ray_env.loopback_env())
    tmp = ray_session.make_private_dir(run_dir)
    session = PrivateSession(tmp.parent, run_dir / "ray", ray_session.start_reaper(tmp.parent, run_dir / "ray"))
    try:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=_visible_gpus(),
            include_dashboard=False,
            _temp_dir=str(tmp),
            runtime_env=env,
            configure_logging=False,
            log_to_driver=True,
        )
    except BaseException:
        session.end()
        raise
    ray_env.private_token()
    return session


@dataclass
class PrivateSession:
    """A private cluster started by :func:`start_ray`: its 0700 folder, the run dir's link to it,
    and the reaper that ends it if this process dies first (:mod:`funrl.train.ray_session`)."""

    root: Path
    link: Path
    reaper: object

    def end(self) -> None:
        """``ray.shutdown()``, then kill what is left by PID and remove the folder and link."""
        if ray.is_initialized():
            ray.shutdown()
        ray_session.stop_reaper(self.reaper)
        ray_session.end_session(self.root, self.link)


def _visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no CUDA build / driver
        return 0


def ray_gpus() -> float:
    """The GPUs the Ray cluster reports (logical: ``ray.init(num_gpus=2)`` counts)."""
    return float(ray.cluster_resources().get("GPU", 0))


@dataclass
class Placement:
    """One placement group; ``options(role, i)`` places the i-th actor of a role in its bundle and
    asks for its slot's resources there (:mod:`funrl.train.layout`)."""

    group: object
    layout: Layout

    def options(self, role: str, i: int = 0) -> dict:
        slot = self.layout.slots[(role, i)]
        return {
            "num_cpus": slot.num_cpus,
            "num_gpus": slot.num_gpus,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=slot.bundle
            ),
        }

    def remove(self) -> None:
        remove_placement_group(self.group)


def make_placement(cfg: ClusterConfig, layout: Layout, timeout_s: float = 120) -> Placement:
    bundles = layout.bundles
    pg = placement_group(bundles, strategy=cfg.placement_strategy)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        raise RuntimeError(
            f"Ray could not place the actors within {timeout_s:.0f} s: bundles {bundles} exceed the "
            f"cluster's resources {ray.cluster_resources()}; lower cluster.resources.<role>.num_cpus/num_gpus "
            "(or, on a cluster of several nodes, check each node's resources)"
        )
    return Placement(pg, layout)
