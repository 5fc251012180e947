"""Device ownership that measures: each role reports the memory it holds when it is granted the
device and what it still holds once it has released it; the grant records both.

A role's report (:func:`held_memory`) is ``{"allocated", "reserved"}`` in bytes:
- on a GPU, ``torch.cuda.memory_allocated`` / ``memory_reserved`` of the actor's process (SGLang's
  scheduler is a process of its own: its engine adds that process's device memory as NVML sees it);
- on the CPU, the bytes of the tensors the role keeps resident (weights, optimizer state, KV and
  log-prob caches: the tensors its ``resident_tensors()`` names, each storage counted once).

:func:`funrl.profiling.grants.check_exclusive` fails a grant whose role kept more than
``limit_bytes`` after releasing (``cluster.sleep_limit_mib``; default 1024 MiB on a GPU). On the CPU
nothing can be handed to another role, so a CPU run records the bytes without a limit unless one
is set: a sleeping CPU role keeps its weights by design (funrl/policy/fsdp_worker.py ``sleep``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterable, Iterator

import torch

log = logging.getLogger(__name__)

DEFAULT_GPU_LIMIT_MIB = 1024.0


def sleep_limit_bytes(cluster, device: str) -> float | None:
    """``cluster.sleep_limit_mib`` in bytes; unset: 1024 MiB when the roles share a GPU, else None."""
    mib = cluster.sleep_limit_mib
    if mib is None:
        mib = DEFAULT_GPU_LIMIT_MIB if device == "cuda" else None
    return None if mib is None else float(mib) * (1 << 20)


def tensor_bytes(tensors: Iterable) -> int:
    """Bytes of the distinct storages behind ``tensors`` (DTensors by their local shard)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None or not torch.is_tensor(t):
            continue
        if hasattr(t, "to_local"):  # an FSDP2 DTensor: this rank's shard
            t = t.to_local()
        if t.device.type == "meta":
            continue
        st = t.untyped_storage()
        key = (t.device.type, st.data_ptr())
        if key not in seen:
            seen.add(key)
            total += st.nbytes()
    return total


def held_memory(device: str | torch.device, resident: Callable[[], Iterable]) -> dict[str, int]:
    """What this process holds on ``device``: CUDA allocator counters, or the CPU bytes of ``resident()``."""
    if torch.device(device).type == "cuda":
        return {"allocated": int(torch.cuda.memory_allocated()), "reserved": int(torch.cuda.memory_reserved())}
    b = tensor_bytes(resident())
    return {"allocated": b, "reserved": b}


def nvml_bytes(pids: Iterable[int]) -> int | None:
    """Device memory NVML attributes to ``pids`` (SGLang's processes), or None without NVML."""
    try:
        import pynvml  # noqa: PLC0415 - GPU machines only

        pynvml.nvmlInit()
        want, total = set(pids), 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                if p.pid in want and p.usedGpuMemory:
                    total += int(p.usedGpuMemory)
        return total
    except Exception:  # noqa: BLE001 - no NVML, no driver
        return None


class Ownership:
    """Grants each of a role's devices for a phase, with the wake/sleep calls and the memory reports.

    ``actors[role]``: the actor handles a phase of that role wakes; ``device_of[actor name]``: the
    device (``gpu0`` … or ``cpu``) it computes on; ``names[actor]``: its role name; ``call``: waits
    on refs and returns their values (the role errors named); ``switching``: make the wake/sleep
    calls (False on a CPU run unless ``cluster.switch_on_cpu``); ``limit_bytes``: what a released
    role may keep (None: recorded, not checked).
    """

    def __init__(self, actors: dict[str, list], names: dict, device_of: dict[str, str], call: Callable,
                 switching: bool, limit_bytes: float | None):
        self.actors, self.names, self.device_of, self.call = actors, names, device_of, call
        self.switching, self.limit_bytes = switching, limit_bytes

    @contextlib.contextmanager
    def own(self, role: str, step: int | None, prof) -> Iterator[None]:
        actors = self.actors[role]
        names = [self.names[a] for a in actors]
        held = kept = None
        if self.switching:
            with prof.span("wake", step=step, role=role):
                held = dict(zip(names, self.call([a.wake.remote(step) for a in actors])))
        start = time.time()
        try:
            yield
        except BaseException:
            self._grant(prof, role, step, names, start, held, None)  # the phase failed: no release to measure
            raise
        end = time.time()
        if self.switching:
            with prof.span("sleep", step=step, role=role):
                kept = dict(zip(names, self.call([a.sleep.remote(step) for a in actors])))
        self._grant(prof, role, step, names, start, held, kept, end)

    def _grant(self, prof, role, step, names, start, held, kept, end=None) -> None:
        """One grant per device the role's actors use, with their reports on that device."""
        end = time.time() if end is None else end
        for device in sorted({self.device_of[n] for n in names}):
            on = [n for n in names if self.device_of[n] == device]
            extra = {}
            if held is not None:
                extra["held_bytes"] = {n: held[n]["reserved"] for n in on if held[n] is not None}
            if kept is not None:
                extra["kept_bytes"] = {n: kept[n]["reserved"] for n in on if kept[n] is not None}
                extra["limit_bytes"] = self.limit_bytes
            prof.grant(device, role, step, start, end, **extra)
            if kept is not None and self.limit_bytes is not None:
                from funrl.profiling.grants import check_exclusive

                g = {"device": device, "role": role, "step": step, "start": start, "end": end, **extra}
                for v in check_exclusive([g]):
                    log.warning("device ownership: %s", v)  # funrl profile and the tests fail on it
