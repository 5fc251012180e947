"""PackedTensors: a weight bucket as one byte buffer, across a real Ray actor boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funrl.train.transport import PackedTensors


def _bucket():
    g = torch.Generator().manual_seed(0)
    return [
        ("a.weight", torch.randn(3, 5, generator=g)),  # 60 bytes: the next offset is padded to 64
        ("b.bf16", torch.randn(7, generator=g).to(torch.bfloat16)),
        ("c.ids", torch.arange(5, dtype=torch.int64)),
        ("d.scalar", torch.tensor(2.5, dtype=torch.float64)),
        ("e.empty", torch.zeros(0, 4)),
        ("f.strided", torch.randn(4, 6, generator=g).t()),  # not contiguous
    ]


def test_pack_round_trips_every_dtype_shape_and_layout():
    bucket = _bucket()
    packed = PackedTensors.pack(bucket)
    assert [m[3] for m in packed.meta] == [0, 64, 128, 192, 256, 256]  # aligned offsets
    assert packed.nbytes == 256 + 96 + 32  # the last tensor: 24 floats, padded to 64 bytes too
    got = packed.tensors()
    assert [n for n, _ in got] == [n for n, _ in bucket]
    for (_, want), (_, t) in zip(bucket, got):
        assert t.dtype == want.dtype and t.shape == want.shape and torch.equal(t, want)


def test_views_of_a_read_only_buffer_are_readable(recwarn):
    packed = PackedTensors.pack(_bucket())
    packed.data.setflags(write=False)  # what Ray's object store hands the receiver
    out = torch.zeros(3, 5)
    out.copy_(dict(packed.tensors())["a.weight"])
    assert torch.equal(out, _bucket()[0][1])
    assert not [w for w in recwarn if "not writable" in str(w.message)]


@pytest.mark.slow
def test_a_packed_bucket_crosses_a_ray_actor_boundary():
    import shutil
    import tempfile

    import ray

    from funrl.train.cluster import ray_safe_env

    ray_safe_env()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=temp)
    try:
        @ray.remote(num_cpus=0)
        class Receiver:
            def take(self, packed):
                assert isinstance(packed.data, np.ndarray)
                return [(n, t.clone()) for n, t in packed.tensors()]

        got = ray.get(Receiver.remote().take.remote(PackedTensors.pack(_bucket())))
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    for (n, want), (m, t) in zip(_bucket(), got):
        assert n == m and torch.equal(t, want)


# ---------------------------------------------------------------------- shared memory (one host)
def _every_dtype():
    g = torch.Generator().manual_seed(1)
    out = []
    for dt in (torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64,
               torch.float16, torch.bfloat16, torch.float32, torch.float64):
        full = (torch.randn(5, 3, generator=g) * 50).to(dt)  # bool: nonzero -> True, mostly
        name = str(dt).removeprefix("torch.")
        out += [(f"{name}.matrix", full), (f"{name}.scalar", full[1, 2].clone()),
                (f"{name}.empty", full[:0]), (f"{name}.strided", full.t())]
    return out


@pytest.mark.slow
def test_shm_round_trips_every_dtype_across_a_ray_actor_boundary(tmp_path):
    import shutil
    import tempfile

    import ray

    from funrl.train.cluster import ray_safe_env
    from funrl.train.transport import ShmChannel, ShmTable

    ray_safe_env()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=temp)
    chan = ShmChannel("test", folder=str(tmp_path))  # a tmpfs-like folder; /dev/shm in production
    try:
        @ray.remote(num_cpus=0)
        class Receiver:
            def take(self, table):
                assert isinstance(table, ShmTable)
                return [(n, t.clone()) for n, t in table.tensors()]

        r = Receiver.remote()
        bucket = _every_dtype()
        tables = [chan.write(0, bucket), chan.write(1, bucket[::-1])]
        assert all(t.path.startswith(str(tmp_path)) and t.nbytes == tables[0].nbytes for t in tables)
        got = ray.get([r.take.remote(t) for t in tables])
        # a region grown for a larger bucket is a new file: the receiver maps it again
        big = [("big", torch.arange(300_000, dtype=torch.float64))]
        grown = chan.write(0, big)
        assert grown.capacity > tables[0].capacity
        got_big = ray.get(r.take.remote(grown))
    finally:
        chan.close()
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    for want_bucket, got_bucket in zip((bucket, bucket[::-1]), got):
        assert [n for n, _ in got_bucket] == [n for n, _ in want_bucket]
        for (n, want), (_, t) in zip(want_bucket, got_bucket):
            assert t.dtype == want.dtype and t.shape == want.shape and torch.equal(t, want), n
    assert torch.equal(got_big[0][1], big[0][1])
    assert list(tmp_path.iterdir()) == []  # close() removed both regions


def test_shm_orphans_of_dead_processes_are_swept(tmp_path):
    import os
    import subprocess

    from funrl.train.transport import ShmChannel, sweep_orphans

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is gone now
    orphan = tmp_path / f"funrl-sync-oldrun-{dead.pid}-0-1"
    mine = tmp_path / f"funrl-sync-other-{os.getpid()}-0-1"
    orphan.write_bytes(b"x")
    mine.write_bytes(b"x")
    assert sweep_orphans(str(tmp_path)) == [str(orphan)]
    assert mine.exists()
    chan = ShmChannel("live", folder=str(tmp_path))
    table = chan.write(0, [("a", torch.ones(2))])
    assert table.path.endswith(f"funrl-sync-live-{os.getpid()}-0-1") and mine.exists()  # a live pid's: kept
    chan.close()
    assert mine.exists() and len(list(tmp_path.iterdir())) == 1  # the file of this live pid stays


@pytest.mark.slow
def test_pipelined_send_never_overwrites_a_region_the_receiver_still_reads(tmp_path):
    """8 buckets through 2 regions to a slow receiver: each arrives intact, in order, with its kind."""
    import shutil
    import tempfile
    import time

    import ray

    from funrl.train.cluster import ray_safe_env
    from funrl.train.transport import ShmChannel
    from funrl.train.workers.policy import send_buckets

    ray_safe_env()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=temp)
    chan = ShmChannel("pipe", folder=str(tmp_path))
    stream = [("adapter" if k < 3 else "weights", [(f"t{k}", torch.full((1000,), float(k)))]) for k in range(8)]
    try:
        @ray.remote(num_cpus=0)
        class SlowEngine:
            def __init__(self):
                self.got = []

            def update_weights(self, bucket, step, kind):
                time.sleep(0.05)  # the sender has written the other region by now; this one must be intact
                self.got += [(kind, n, t.clone()) for n, t in bucket.tensors()]

            def received(self):
                return self.got

        eng = SlowEngine.remote()
        sent = send_buckets(iter(stream), eng, step=0, channel=chan)
        left = list(tmp_path.iterdir())  # unlinked once the receiver had mapped them
        sent_again = send_buckets(iter(stream), eng, step=1, channel=chan)  # through the mappings alone
        got = ray.get(eng.received.remote())
    finally:
        chan.close()
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    assert sent == sent_again == 8 * 4032  # 4000 bytes each, padded to the 64-byte alignment
    assert left == []  # a crash from here on leaves no file in /dev/shm
    assert [(k, n) for k, n, _ in got] == [(kind, b[0][0]) for kind, b in stream] * 2
    for k, (_, _, t) in enumerate(got):
        assert torch.equal(t, torch.full((1000,), float(k % 8))), k
