"""W&B, offline, on a real run: the same metric names and values as ``metrics.jsonl``, at the same
steps, the config, the sample table, and a resume that continues the same W&B run.

wandb 0.31 writes the run with its Go core and ships no Python reader of its run files, so the
test reads ``run-*.wandb`` itself: W&B's record log (LevelDB's log format: a 7-byte file header
``:W&B`` + magic + version, 32 KiB blocks, each record a 7-byte header of crc32, length and type,
split across blocks as FIRST/MIDDLE/LAST) of wandb's own protobuf ``Record`` messages.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

pytest.importorskip("wandb")

from funrl.train.metrics import read_metrics  # noqa: E402

from tests.train.runs import train_to_end  # noqa: E402

pytestmark = pytest.mark.slow

BLOCK, HEADER = 32768, 7


def wandb_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, "not a W&B run file"
    pos, buf, out = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zeros: the rest of the block is padding
            pos += left
            continue
        buf += data[pos + HEADER:pos + HEADER + n]
        pos += HEADER + n
        if kind in (1, 4):  # FULL or LAST: one whole record
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def history(records) -> dict[int, dict]:
    rows = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
            rows[row["_step"]] = row
    return rows


def overrides(tmp_path, corpus, model, *extra):
    return [f"run.output_dir={tmp_path / 'runs'}", "run.name=wb", f"data.train_manifest={corpus / 'train.jsonl'}",
            f"model.path={model}", "train.steps=3", "train.prompts_per_step=2", "algorithm.group_size=3",
            "rollout.max_new_tokens=5", "policy.world_size=1", "checkpoint.every=2", "train.samples_every=2",
            "cluster.num_cpus=4", "profile.plots=false", "logging.wandb.enabled=true", "logging.wandb.mode=offline",
            "logging.wandb.project=funrl-test", *extra]


def test_wandb_offline_gets_the_metrics_the_config_and_the_samples_and_a_resume_continues_it(
        tmp_path, tiny_corpus, tiny_model, ray_env):
    run_dir, metrics = train_to_end(overrides(tmp_path, tiny_corpus, tiny_model))
    (run_file,) = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    assert run_file.name == f"run-{run_id}.wandb"
    records = wandb_records(run_file)
    hist = history(records)
    assert sorted(hist) == [0, 1, 2]
    for row in metrics:  # every finite number of metrics.jsonl, by the same name, at the same step
        got = hist[row["step"]]
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (row["step"], k)
    # the samples table (train.samples_every=2): a table file of 2 prompts x 3 completions
    for step in (0, 2):
        assert hist[step]["samples/_type"] == "table-file" and hist[step]["samples/nrows"] == 6, step
    assert "samples/_type" not in hist[1]
    # the config: in the run record (and any later config records)
    updates = [i for r in records if r.WhichOneof("record_type") == "run" for i in r.run.config.update]
    updates += [i for r in records if r.WhichOneof("record_type") == "config" for i in r.config.update]
    values = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in updates}
    assert values["run"]["name"] == "wb" and values["algorithm"]["group_size"] == 3

    # a resume from the step-1 checkpoint logs to the same W&B run id, from step 2 on
    _, again = train_to_end(overrides(tmp_path, tiny_corpus, tiny_model, "train.resume=latest", "train.steps=4"))
    assert (run_dir / "wandb_run_id").read_text().strip() == run_id
    files = sorted((run_dir / "wandb").glob(f"offline-run-*/run-{run_id}.wandb"))
    assert len(files) == 2  # one file per start, one W&B run id
    resumed = history(wandb_records(files[-1]))
    assert sorted(resumed) == [3]  # latest = the final checkpoint of step 2: step 3 is new
    assert resumed[3]["loss"] == pytest.approx(read_metrics(run_dir)[-1]["loss"])
