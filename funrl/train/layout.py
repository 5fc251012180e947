"""Where each actor runs: the placement-group bundles of a run, on GPUs when Ray has them.

GPU layout (Ray reports GPUs and ``cluster.gpus`` is ``auto``), as the report's FunRL does it:
the GPU roles are colocated and take turns. Device ``d`` (one per policy rank,
``policy.world_size`` of them) is one bundle ``{"GPU": 1, "CPU": …}`` holding policy rank ``d``,
rollout engine ``d`` (when ``rollout.num_engines`` > ``d``) and encoder worker ``d`` (when
``model.encoder_workers`` > ``d``). Each asks for a fraction of that one GPU
(``cluster.resources.<role>.num_gpus``; default encoder 0.2, rollout 0.4, policy 0.4), so Ray gives
the three the same device and the driver grants it to one role at a time. Reward actors get CPU
bundles of their own.

CPU layout (no GPU, or ``cluster.gpus: none``): the same slots without the GPU (slot ``i`` holds
rank, engine and encoder ``i``; there may be more engines or encoders than ranks), so a SPREAD
placement spreads whole slots over the nodes; roles hold no device memory another role could use.

A role whose ``num_gpus`` is set to 0 in the GPU layout runs on the CPU inside its device's bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from funrl.errors import ConfigValueError

GPU_ROLES = ("encoder", "rollout", "policy")
DEFAULT_GPU_SHARE = {"encoder": 0.2, "rollout": 0.4, "policy": 0.4}  # of one device, colocated


@dataclass(frozen=True)
class Slot:
    """One actor's place: its bundle, the resources it asks for there, the device it computes on."""

    bundle: int
    num_cpus: float
    num_gpus: float
    device: str  # "cuda" (Ray's CUDA_VISIBLE_DEVICES makes it the bundle's GPU) or "cpu"
    gpu: int | None  # the layout's device index (the bundle of that GPU), None on CPU


@dataclass
class Layout:
    """``bundles`` for one placement group and ``slots[(role, i)]`` for each actor."""

    bundles: list[dict[str, float]]
    slots: dict[tuple[str, int], Slot]
    counts: dict[str, int]
    gpus: int = 0  # devices used (0: CPU layout)
    notes: list[str] = field(default_factory=list)

    @property
    def device(self) -> str:
        """``cuda`` when any GPU role computes on a GPU, else ``cpu``."""
        return "cuda" if any(s.device == "cuda" for s in self.slots.values()) else "cpu"

    def devices(self, role: str) -> list[str]:
        """The devices the role's actors hold (``gpu0`` …), or ``["cpu"]``: grants are per device."""
        gs = sorted({s.gpu for (r, _), s in self.slots.items() if r == role and s.gpu is not None})
        return [f"gpu{g}" for g in gs] or ["cpu"]

    def actors_on(self, gpu: int) -> list[tuple[str, int]]:
        return [k for k, s in self.slots.items() if s.gpu == gpu]


def role_counts(cfg) -> dict[str, int]:
    """How many actors of each role the config asks for."""
    return {"encoder": cfg.model.encoder_workers, "rollout": cfg.rollout.num_engines,
            "reward": cfg.rewards.num_workers, "policy": cfg.policy.world_size}


def plan(cfg, gpus_available: float) -> Layout:
    """The layout of ``cfg``'s actors on a cluster whose Ray reports ``gpus_available`` GPUs."""
    counts = role_counts(cfg)
    cl = cfg.cluster
    if cl.gpus == "none" or gpus_available < 1:
        explicit = [r for r in GPU_ROLES if (cl.resources[r].num_gpus or 0) > 0]
        if explicit and cl.gpus != "none":
            r = explicit[0]
            raise ConfigValueError(
                f"cluster.resources.{r}.num_gpus", "0 or unset on a cluster without GPUs",
                cl.resources[r].num_gpus,
                fix="Ray reports no GPU here: remove the num_gpus keys (GPUs are used automatically when "
                    "present) or run on a machine with GPUs")
        return _cpu_layout(cfg, counts)
    return _gpu_layout(cfg, counts, int(gpus_available))


def _cpus(cfg, role: str) -> float:
    return float(cfg.cluster.resources[role].num_cpus)


def _cpu_layout(cfg, counts: dict[str, int]) -> Layout:
    """Slot ``i`` (one bundle) holds policy rank ``i``, rollout engine ``i`` and encoder worker ``i``,
    those that exist, as a GPU device does; so ``placement_strategy: SPREAD`` spreads whole slots
    over the nodes (rank 0's engine shares its node). Reward actors get bundles of their own."""
    D = max(counts[r] for r in GPU_ROLES)
    bundles: list[dict[str, float]] = [{"CPU": 0.0} for _ in range(D)]
    slots: dict[tuple[str, int], Slot] = {}
    for role in ("policy", "rollout", "encoder"):
        for i in range(counts[role]):
            bundles[i]["CPU"] += _cpus(cfg, role)
            slots[(role, i)] = Slot(i, _cpus(cfg, role), 0.0, "cpu", None)
    for i in range(counts["reward"]):
        slots[("reward", i)] = Slot(len(bundles), _cpus(cfg, "reward"), 0.0, "cpu", None)
        bundles.append({"CPU": _cpus(cfg, "reward")})
    return Layout(bundles, slots, counts)


def _gpu_layout(cfg, counts: dict[str, int], available: int) -> Layout:
    D = counts["policy"]
    if D > available:
        raise ConfigValueError(
            "policy.world_size", f"at most the {available} GPU(s) Ray reports (one device per policy rank)", D,
            fix=f"set policy.world_size={available}, add GPUs to the cluster, or cluster.gpus=none to run on CPU")
    for role in ("rollout", "encoder"):
        if counts[role] > D:
            key = "rollout.num_engines" if role == "rollout" else "model.encoder_workers"
            raise ConfigValueError(key, f"at most policy.world_size={D} (one per policy rank's device)", counts[role],
                                   fix=f"set {key}<={D}, or raise policy.world_size")
    share = {r: DEFAULT_GPU_SHARE[r] if cfg.cluster.resources[r].num_gpus is None
             else float(cfg.cluster.resources[r].num_gpus) for r in GPU_ROLES}
    total = sum(share.values())
    if total > 1.0 + 1e-9:
        raise ConfigValueError(
            "cluster.resources.<role>.num_gpus", "fractions of one device that sum to at most 1 (the roles share it)",
            share, fix="e.g. encoder 0.2, rollout 0.4, policy 0.4")
    bundles: list[dict[str, float]] = [{"CPU": 0.0, "GPU": 1.0} for _ in range(D)]
    slots: dict[tuple[str, int], Slot] = {}
    for role in ("policy", "rollout", "encoder"):  # actor i on device i
        for i in range(counts[role]):
            bundles[i]["CPU"] += _cpus(cfg, role)
            slots[(role, i)] = Slot(i, _cpus(cfg, role), share[role], "cuda" if share[role] > 0 else "cpu", i)
    for i in range(counts["reward"]):
        slots[("reward", i)] = Slot(len(bundles), _cpus(cfg, "reward"), 0.0, "cpu", None)
        bundles.append({"CPU": _cpus(cfg, "reward")})
    notes = [f"GPU layout: {D} device(s) of the {available} Ray reports, each shared by "
             + ", ".join(f"{r} {share[r]:g}" for r in GPU_ROLES)]
    return Layout(bundles, slots, counts, gpus=D, notes=notes)
