"""A resume never runs code hidden in a checkpoint file (real files, a real malicious pickle)."""

from __future__ import annotations

import os

import pytest
import torch

from funrl.policy.checkpoint import CheckpointRefused, load_plain


class Payload:
    """Unpickling this runs a shell command (what an attacker would put in optimizer.pt)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    file = tmp_path / "optimizer.pt"
    torch.save({"state": {}, "param_groups": [], "x": Payload(marker)}, file)
    with pytest.raises(CheckpointRefused) as e:
        load_plain(str(file))
    assert str(file) in str(e.value) and "not loaded" in str(e.value)
    assert not marker.exists()
    # the payload is live: the unsafe load that resume used to do runs it
    torch.load(file, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_the_files_funrl_writes_load_as_plain_data(tmp_path, schedule):
    """The optimizer state (fused AdamW after real steps) and the step, scheduler and RNG state
    as policy/checkpoint.save_policy writes them. (The whole save → resume path on real files runs
    in tests/train/test_faults_resume.py and tests/train/test_resume_state.py.)"""
    from funrl.policy.config import PolicyConfig
    from funrl.policy.fsdp_worker import _lr_schedule

    cfg = PolicyConfig()
    cfg.optim.schedule, cfg.optim.warmup_steps, cfg.optim.total_steps = schedule, 2, 10
    w = torch.nn.Parameter(torch.randn(4, 3))
    optim = torch.optim.AdamW([w], lr=1e-3, betas=(0.9, 0.99), fused=True)
    sched = _lr_schedule(optim, cfg)
    for _ in range(3):
        (w ** 2).sum().backward()
        optim.step()
        sched.step()
    torch.save(optim.state_dict(), tmp_path / "optimizer.pt")
    state = {"step": 3, "scheduler": sched.state_dict(), "rng": [{"cpu": torch.get_rng_state()}]}
    torch.save(state, tmp_path / "policy_state.pt")
    o = load_plain(str(tmp_path / "optimizer.pt"))
    s = load_plain(str(tmp_path / "policy_state.pt"))
    assert torch.equal(o["state"][0]["exp_avg"], optim.state_dict()["state"][0]["exp_avg"])
    assert o["param_groups"] == optim.state_dict()["param_groups"]
    assert s["scheduler"] == sched.state_dict() and torch.equal(s["rng"][0]["cpu"], state["rng"][0]["cpu"])
