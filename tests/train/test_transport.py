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
