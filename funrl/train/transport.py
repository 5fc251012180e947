"""Tensors between Ray actors: :class:`PackedTensors`, one byte buffer and a table.

A weight bucket (policy → rollout engine) or a step's prompt embeddings (encoder → rollout and
policy) cross process boundaries as one flat ``uint8`` numpy array plus a table of names, dtypes,
shapes and offsets. Ray hands a numpy array to the receiving actor zero-copy from its object
store, whereas a list of torch tensors is pickled tensor by tensor, so both weight buckets and
a step's prompt embeddings arrive sooner this way.

Weight buckets between actors on one host go through shared memory instead
(:class:`ShmChannel`, :class:`ShmTable`): the sender writes each bucket into one of two files in
``/dev/shm`` and sends only the table through Ray; the receiver maps the file and copies from it.
Nothing is pickled or copied into the object store, and with two regions the sender gathers
bucket k+1 while the receiver loads bucket k. The files are unlinked after the first sync (both
sides keep their mappings), so a killed run leaves nothing in ``/dev/shm``. Receivers on another
node (Ray node ids differ), or a host without ``/dev/shm``, get :class:`PackedTensors` through the
object store instead (``funrl.train.workers.policy.PolicyActor.push_weights`` decides). CUDA IPC (GPU
tensors shared without the host copy) is not built: a GPU policy's buckets go through host shared
memory, page-locked (``cudaHostRegister``) on both sides where a GPU is visible.
"""

from __future__ import annotations

import atexit
import glob
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch


_ALIGN = 64  # byte offset of every tensor in a packed buffer (any dtype view is aligned)
SHM_DIR = "/dev/shm"
SHM_PREFIX = "funrl-sync-"  # funrl-sync-{tag}-{pid}-{slot}-{generation}; see ShmChannel


def _layout(named: list[tuple[str, torch.Tensor]]) -> tuple[list[tuple[str, str, tuple[int, ...], int]], int]:
    """The table (name, dtype name, shape, aligned byte offset) and the total bytes of ``named``."""
    meta, offset = [], 0
    for name, t in named:
        meta.append((name, str(t.dtype).removeprefix("torch."), tuple(t.shape), offset))
        n = t.numel() * t.element_size()
        offset += n + (-n % _ALIGN)
    return meta, offset


def _views(buf: torch.Tensor, meta) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` views into the uint8 tensor ``buf`` laid out by ``meta``."""
    out = []
    for name, dtype, shape, offset in meta:
        dt = getattr(torch, dtype)
        n = int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dt).element_size()
        out.append((name, buf[offset : offset + n].view(dt).view(shape)))
    return out


def _raw(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)  # [nbytes], on t's device


def _pin(buf: torch.Tensor) -> bool:
    """Page-lock a mapped region for CUDA (``cudaHostRegister``) where a GPU is visible, so device
    copies to and from it run as DMA instead of through pageable memory. False where it cannot."""
    if not torch.cuda.is_available() or buf.numel() == 0:
        return False
    try:
        return int(torch.cuda.cudart().cudaHostRegister(buf.data_ptr(), buf.numel(), 0)) == 0
    except (AttributeError, RuntimeError):
        return False


def _unpin(buf: torch.Tensor) -> None:
    try:
        torch.cuda.cudart().cudaHostUnregister(buf.data_ptr())
    except (AttributeError, RuntimeError):
        pass


@dataclass
class PackedTensors:
    """``(name, tensor)`` pairs as one contiguous byte buffer (``data``) and a table (``meta``)."""

    meta: list[tuple[str, str, tuple[int, ...], int]]  # (name, dtype name, shape, byte offset)
    data: np.ndarray  # uint8 [total bytes]

    @classmethod
    def pack(cls, named: list[tuple[str, torch.Tensor]]) -> "PackedTensors":
        meta, parts, offset = [], [], 0
        for name, t in named:
            raw = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)  # [nbytes]
            meta.append((name, str(t.dtype).removeprefix("torch."), tuple(t.shape), offset))
            pad = -raw.numel() % _ALIGN
            parts += [raw, raw.new_zeros(pad)] if pad else [raw]
            offset += raw.numel() + pad
        data = torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.uint8)
        return cls(meta, data)

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        """The pairs again, as views into ``data`` (copy them before writing: it may be read-only)."""
        with warnings.catch_warnings():  # Ray's zero-copy arrays are read-only; these views are only read
            warnings.simplefilter("ignore", UserWarning)
            buf = torch.from_numpy(self.data)
        return _views(buf, self.meta)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


_MAPS: dict[str, tuple[str, torch.Tensor, bool]] = {}  # receiver: region (path less generation) -> (path, mapping, pinned)


def _map(path: str, size: int) -> torch.Tensor:
    """A shared uint8 mapping of ``path``, kept by this process: the sender unlinks the file once
    the first sync through it is done, and the mapping is then what keeps the region alive."""
    region = path.rsplit("-", 1)[0]
    hit = _MAPS.get(region)
    if hit is None or hit[0] != path:  # first sight, or the sender grew the region (a new file)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: the weight-sync region is gone; a receiver must map a region before "
                                    "the sender's first sync through it ends (a restarted rollout actor needs new policy actors)")
        if hit is not None and hit[2]:
            _unpin(hit[1])
        buf = torch.from_file(path, shared=True, size=size, dtype=torch.uint8)
        _MAPS[region] = (path, buf, _pin(buf))
    return _MAPS[region][1]


@dataclass
class ShmTable:
    """One bucket in a shared-memory region: what crosses Ray is this table, not the bytes."""

    meta: list[tuple[str, str, tuple[int, ...], int]]  # (name, dtype name, shape, byte offset)
    path: str  # the region's file in /dev/shm (unlinked after the first sync: see ShmChannel)
    capacity: int  # the region's size in bytes (a grown region is a new file)
    used: int  # bytes of this bucket

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Views into the mapped region: valid until the sender reuses it (copy them out at once)."""
        return _views(_map(self.path, self.capacity), self.meta)

    @property
    def nbytes(self) -> int:
        return self.used


class ShmChannel:
    """Sender side: ``slots`` regions in ``/dev/shm``, written in turn.

    The caller must not rewrite a slot until the receiver is done with the bucket it holds (the
    policy waits on the Ray call of bucket k before writing bucket k+2 into the same slot). A
    region grows (a new file, ``-{generation}`` in its name) when a bucket does not fit.

    No file outlives a crash: once a sync has gone through, :meth:`unlink` removes the files and
    the sender's and receiver's mappings keep the memory, which the kernel frees when both
    processes are gone, however they end. Only a run killed during its first sync leaves files,
    named ``funrl-sync-{tag}-{pid}-{slot}-{generation}``; a new channel removes those of dead pids.
    """

    def __init__(self, tag: str, slots: int = 2, folder: str = SHM_DIR):
        self.folder, self.tag, self.slots = folder, "".join(c if c.isalnum() else "_" for c in tag), slots
        self.regions: dict[int, tuple[str, int, torch.Tensor]] = {}  # slot -> (path, capacity, mapping)
        self.linked: set[str] = set()  # files still in the folder
        self.pinned: set[str] = set()  # regions page-locked for CUDA (a GPU is visible)
        self.generation = 0
        sweep_orphans(folder)
        atexit.register(self.unlink)

    def write(self, slot: int, named: list[tuple[str, torch.Tensor]]) -> ShmTable:
        meta, used = _layout(named)
        path, capacity, buf = self._region(slot, used)
        cuda = False
        for (_, t), (_, _, _, offset) in zip(named, meta):
            raw = _raw(t)
            cuda |= raw.is_cuda
            buf[offset : offset + raw.numel()].copy_(raw, non_blocking=raw.is_cuda and path in self.pinned)
        if cuda:
            torch.cuda.synchronize()  # the bytes are in the region before the table is sent
        return ShmTable(meta, path, capacity, used)

    def _region(self, slot: int, need: int) -> tuple[str, int, torch.Tensor]:
        if slot in self.regions and self.regions[slot][1] >= need:
            return self.regions[slot]
        old = self.regions.pop(slot, None)
        if old is not None:
            self._unlink(old[0])
            if old[0] in self.pinned:
                _unpin(old[2])
                self.pinned.discard(old[0])
        capacity = max(need + (-need % (1 << 20)), 1 << 20)  # whole MiB
        self.generation += 1
        path = os.path.join(self.folder, f"{SHM_PREFIX}{self.tag}-{os.getpid()}-{slot}-{self.generation}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, capacity)
        finally:
            os.close(fd)
        self.linked.add(path)
        buf = torch.from_file(path, shared=True, size=capacity, dtype=torch.uint8)
        if _pin(buf):
            self.pinned.add(path)
        self.regions[slot] = (path, capacity, buf)
        return self.regions[slot]

    def _unlink(self, path: str) -> None:
        self.linked.discard(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def unlink(self) -> None:
        """Remove the files (call once the receiver has mapped them: after a sync has completed)."""
        for path in list(self.linked):
            self._unlink(path)

    def close(self) -> None:
        """Remove the files and drop this side's mappings."""
        self.unlink()
        for path, _, buf in self.regions.values():
            if path in self.pinned:
                _unpin(buf)
        self.regions.clear()
        self.pinned.clear()


def sweep_orphans(folder: str = SHM_DIR) -> list[str]:
    """Remove ``funrl-sync-*-{pid}-{slot}-{generation}`` files whose pid is no longer running."""
    gone = []
    for path in glob.glob(os.path.join(folder, SHM_PREFIX + "*")):
        try:
            pid = int(path.rsplit("-", 3)[1])
        except (IndexError, ValueError):
            continue
        if not os.path.exists(f"/proc/{pid}"):
            try:
                os.unlink(path)
                gone.append(path)
            except OSError:
                pass
    return gone


def shm_available(folder: str = SHM_DIR) -> bool:
    return os.path.isdir(folder) and os.access(folder, os.W_OK)
