"""MetricsLogger: one jsonl row and one TensorBoard event per step, readable by TensorBoard itself."""

from __future__ import annotations

import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from funrl.train.metrics import MetricsLogger


def test_jsonl_rows_and_tensorboard_scalars(tmp_path):
    m = MetricsLogger(tmp_path, total_steps=3)
    for step in range(3):
        m.log(step, {"reward/total_mean": 0.5 + step, "num_seqs": 16, "kl": float("nan"), "note": "x"})
    m.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[1] == {"step": 1, "reward/total_mean": 1.5, "num_seqs": 16, "kl": "nan", "note": "x"}
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["num_seqs", "reward/total_mean"]  # non-finite and text left out
    assert [(e.step, e.value) for e in acc.Scalars("reward/total_mean")] == [(0, 0.5), (1, 1.5), (2, 2.5)]
