"""MetricsLogger: one jsonl row and one TensorBoard event per step, readable by TensorBoard itself."""

from __future__ import annotations

import json

import pytest

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


def test_sample_records_by_hand():
    import torch

    from funrl.train.metrics import sample_records

    rows = [{"id": "a", "text": "turn on"}, {"id": "b", "text": "打开"}, {"id": "c", "text": "x"}]
    texts = ["turn on", "turn off", "打开", "", "x", "y"]  # G=2: rows 0-1 prompt a, 2-3 prompt b
    rewards = {"total": [1.0, 0.5, 1.0, -1.0, 0.0, 0.0],
               "components": {"accuracy": [1.0, 0.5, 1.0, 0.0, 0.0, 0.0], "keywords": [None, None, 1.0, None, None, None]}}
    adv = torch.tensor([0.7, -0.7, 0.7, -0.7, 0.0, 0.0])
    recs = sample_records(5, rows, texts, rewards, adv, kept=[0, 1, 2], finish_reasons=["stop"] * 3 + ["length"] * 3,
                          group_size=2, prompts=2)
    assert [(r["step"], r["id"], r["reference"]) for r in recs] == [(5, "a", "turn on"), (5, "b", "打开")]
    b = recs[1]["samples"]
    assert b[0] == {"text": "打开", "reward": 1.0, "components": {"accuracy": 1.0, "keywords": 1.0},
                    "advantage": pytest.approx(0.7), "finish_reason": "stop", "in_update": True}
    assert (b[1]["text"], b[1]["components"]["keywords"], b[1]["finish_reason"], b[1]["in_update"]) == ("", None, "length", False)


def test_samples_go_to_jsonl_and_a_tensorboard_text_panel(tmp_path):
    m = MetricsLogger(tmp_path, total_steps=1)
    rec = {"step": 0, "id": "u|1", "reference": "a | b", "samples": [
        {"text": "a|b", "reward": 0.5, "components": {}, "advantage": -0.25, "finish_reason": "stop", "in_update": True}]}
    m.log_samples(0, [rec])
    m.close()
    assert [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()] == [rec]
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    (event,) = acc.Tensors("samples/text_summary")
    table = event.tensor_proto.string_val[0].decode()
    assert "| u\\|1 | a \\| b | a\\|b | 0.500 | -0.250 |" in table  # pipes escaped: one row, five cells
