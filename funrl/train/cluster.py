"""Ray for funrl: a private local cluster with CI-safe settings, or an existing one; one
placement group whose bundles come from config (never literals in ``@ray.remote``).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from funrl.train.config import ClusterConfig, RoleResources

log = logging.getLogger(__name__)

SAFE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # binds loopback only
    "RAY_DEDUP_LOGS": "0",
    # Ray starts workers at nice 15 so that they yield to its own daemons; here the workers *are*
    # the job, and at nice 15 every phase lost to anything else awake (the same generate() took
    # 0.208 s in an actor vs 0.173 s in the driver; at nice 0, 0.193 vs 0.195). Read when a
    # private cluster starts; a cluster joined with cluster.address keeps its own setting.
    "RAY_worker_niceness": "0",
}


def ray_safe_env() -> None:
    for k, v in SAFE_ENV.items():
        os.environ.setdefault(k, v)


def start_ray(cfg: ClusterConfig, run_dir: Path, roles: dict[str, int]) -> None:
    """Start or join Ray. ``roles``: role name -> number of actors."""
    if ray.is_initialized():
        return
    ray_safe_env()
    env = {"env_vars": {**SAFE_ENV, "OMP_NUM_THREADS": str(cfg.torch_threads), "TOKENIZERS_PARALLELISM": "false"}}
    if cfg.address:
        ray.init(address=cfg.address, runtime_env=env, configure_logging=False, log_to_driver=True)
        return
    need = sum(_bundle(cfg, r).get("CPU", 0) * n for r, n in roles.items())
    num_cpus = cfg.num_cpus or max(os.cpu_count() or 1, math.ceil(need))
    # Ray's socket paths must stay short (107 bytes): a short temp dir, linked from the run dir.
    tmp = Path(tempfile.mkdtemp(prefix="funrl-ray-"))
    link = run_dir / "ray"
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        link.symlink_to(tmp)
    ray.init(
        num_cpus=num_cpus,
        num_gpus=_visible_gpus(),
        include_dashboard=False,
        _temp_dir=str(tmp),
        runtime_env=env,
        configure_logging=False,
        log_to_driver=True,
    )


def _visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no CUDA build / driver
        return 0


def _bundle(cfg: ClusterConfig, role: str) -> dict[str, float]:
    res = cfg.resources.get(role, RoleResources())
    b = {"CPU": float(res.num_cpus)}
    if res.num_gpus:
        b["GPU"] = float(res.num_gpus)
    return b


@dataclass
class Placement:
    """One placement group; ``options(role, i)`` places the i-th actor of a role in its bundle."""

    group: object
    index: dict[tuple[str, int], int]

    def options(self, role: str, i: int = 0) -> dict:
        return {
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=self.index[(role, i)]
            )
        }

    def remove(self) -> None:
        remove_placement_group(self.group)


def make_placement(cfg: ClusterConfig, roles: dict[str, int], timeout_s: float = 120) -> Placement:
    bundles, index = [], {}
    for role, n in roles.items():
        for i in range(n):
            index[(role, i)] = len(bundles)
            bundles.append(_bundle(cfg, role))
    pg = placement_group(bundles, strategy=cfg.placement_strategy)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        raise RuntimeError(
            f"Ray could not place the actors within {timeout_s:.0f} s: bundles {bundles} exceed the "
            f"cluster's resources {ray.cluster_resources()}; lower cluster.resources.<role>.num_cpus/num_gpus"
        )
    return Placement(pg, index)


def role_resources(cfg: ClusterConfig, role: str) -> dict:
    """``.options(...)`` kwargs asking for the role's resources (matching its bundle)."""
    res = cfg.resources.get(role, RoleResources())
    return {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}
