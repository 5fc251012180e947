"""Over-long filtering through a real run on Ray: completions the engine cut at max_new_tokens leave
the update (algorithm.mask_truncated), the rest train, and the counts in metrics.jsonl agree."""

from __future__ import annotations

import pytest

from tests.train.runs import train_to_end

pytestmark = pytest.mark.slow


def test_cut_completions_leave_the_update(tmp_path, tiny_corpus, tiny_model, ray_env):
    # stop on half the vocabulary, 3 tokens at most: some completions stop, some are cut
    stops = ",".join(str(i) for i in range(0, 200, 2))
    run_dir, rows = train_to_end([
        f"run.output_dir={tmp_path}", "run.name=trunc", f"data.train_manifest={tiny_corpus / 'train.jsonl'}",
        f"model.path={tiny_model}", "train.steps=2", "train.prompts_per_step=2", "algorithm.group_size=4",
        "algorithm.mask_truncated=true", "algorithm.kl_coef=0", "rollout.max_new_tokens=3",
        f"rollout.stop_token_ids=[{stops}]", "policy.world_size=1", "checkpoint.every=0",
        "checkpoint.save_final=false", "cluster.num_cpus=2", "profile.enabled=false",
    ])
    assert len(rows) == 2
    for r in rows:
        cut = round(r["rollout/truncated_frac"] * 8)
        assert r["adv/truncated_masked_rows"] == cut
        if cut == 8:
            assert r["update_skipped"] == 1.0
        else:  # the update saw exactly the completions that stopped
            assert r["num_seqs"] == 8 - cut
    assert 0 < sum(r["adv/truncated_masked_rows"] for r in rows) < 16, "the test wants both kinds of completion"
