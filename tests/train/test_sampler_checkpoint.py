"""Prompt sampling and atomic checkpoints (no Ray needed)."""

from __future__ import annotations

import json

import pytest

from funrl.train import checkpoint as ckpt
from funrl.train.sampler import PromptSampler


def test_every_row_once_per_epoch_and_no_row_dropped():
    s = PromptSampler(10, 3, seed=1)
    seen = [i for _ in range(10) for i in s.next()]  # 30 draws = 3 full epochs
    for e in range(3):
        assert sorted(seen[e * 10 : (e + 1) * 10]) == list(range(10))


def test_sampler_resume_continues_the_same_sequence():
    a = PromptSampler(7, 2, seed=3)
    for _ in range(5):
        a.next()
    b = PromptSampler(7, 2, seed=3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [a.next() for _ in range(6)] == [b.next() for _ in range(6)]


def test_checkpoint_is_atomic_and_latest_is_the_newest_complete(tmp_path):
    def parts(folder):
        (folder / "policy").mkdir()
        (folder / "policy" / "w.bin").write_bytes(b"x")

    ckpt.save_checkpoint(tmp_path, 3, {"step": 3}, parts, keep_last=5)
    ckpt.save_checkpoint(tmp_path, 7, {"step": 7}, parts, keep_last=5)

    def broken(folder):
        parts(folder)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, 9, {"step": 9}, broken, keep_last=5)
    # no half-written step_000009, no temporary left behind
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000003", "step_000007"]
    latest = ckpt.resolve_resume(tmp_path, "latest")
    assert latest.name == "step_000007"
    assert ckpt.load_state(latest) == {"step": 7}
    assert (latest / "policy" / "w.bin").read_bytes() == b"x"


def test_keep_last_prunes_old_checkpoints(tmp_path):
    for step in range(5):
        ckpt.save_checkpoint(tmp_path, step, {"step": step}, lambda f: None, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]


def test_resume_errors_name_the_path(tmp_path):
    assert ckpt.resolve_resume(tmp_path, "") is None
    assert ckpt.resolve_resume(tmp_path, "latest") is None
    with pytest.raises(FileNotFoundError, match=r"train.resume='nope': no checkpoint there"):
        ckpt.resolve_resume(tmp_path, "nope")
