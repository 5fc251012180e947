"""`funrl train` refuses bad input before Ray starts or a file is written: one line, exit 2.

Real files (the tiny corpus and model of conftest, WAVs written with soundfile, YAML and plugin
files); the CLI runs through ``funrl.cli.main`` and, once, as a process. Each case also checks
that Ray was not started and that the run directory was not created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from funrl.cli import main


def _train(capsys, tmp_path, manifest, model, *overrides, config=None) -> tuple[int, str]:
    import ray

    if config is None:
        config = tmp_path / "c.yaml"
        config.write_text("run:\n  name: t\n")
    args = ["train", str(config), f"run.output_dir={tmp_path / 'runs'}", f"data.train_manifest={manifest}",
            f"model.path={model}", "train.steps=2", "train.prompts_per_step=2", "algorithm.group_size=2",
            "cluster.num_cpus=4", *overrides]
    rc = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not ray.is_initialized()  # refused before Ray
    assert not (tmp_path / "runs").exists()  # nothing written
    return rc, err


def _copy_manifest(tmp_path: Path, corpus: Path, replace: dict[int, object]) -> Path:
    """train.jsonl of the corpus with absolute audio paths and lines ``replace`` swapped in."""
    rows = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
    lines = []
    for i, r in enumerate(rows, 1):
        r["audio"] = str(corpus / r["audio"])
        bad = replace.get(i)
        lines.append(bad if isinstance(bad, bytes) else json.dumps(bad if bad is not None else r).encode())
    m = tmp_path / "train.jsonl"
    m.write_bytes(b"\n".join(lines) + b"\n")
    return m


def test_a_corrupt_clip_on_one_line_is_refused_naming_that_line(tmp_path, capsys, tiny_corpus, tiny_model):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\0\0\0\0WAVEnot really audio")
    m = _copy_manifest(tmp_path, tiny_corpus, {4: {"id": "x4", "audio": str(tmp_path / "corrupt.wav"), "text": "hi"}})
    rc, err = _train(capsys, tmp_path, m, tiny_model)
    assert rc == 2
    assert err.startswith(f"funrl train: {m}:4: field 'audio': {tmp_path / 'corrupt.wav'}: not a readable audio file")
    assert err.count("\n") == 1


def test_a_zero_second_clip_and_a_non_utf8_line(tmp_path, capsys, tiny_corpus, tiny_model):
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 16000)
    m = _copy_manifest(tmp_path, tiny_corpus, {2: {"audio": str(tmp_path / "empty.wav"), "text": "hi"},
                                               3: b'{"audio": "a.wav", "text": "\xc3"}'})
    rc, err = _train(capsys, tmp_path, m, tiny_model)
    assert rc == 2
    assert err == (f"funrl train: {m}:2: field 'audio': {tmp_path / 'empty.wav'} has no samples; remove the line or "
                   f"replace the file (and 1 more problem(s): `funrl data check {m}` lists them)\n")


@pytest.mark.parametrize("overrides, needle", [
    (["algorithm.group_size=1"], "command line: algorithm.group_size: expected an integer >= 2, got 1"),
    (["rollout.temperature=0"], "command line: rollout.temperature: expected a number > 0 for training, got 0"),
    (["train.steps=0"], "command line: train.steps: expected an integer > 0, got 0 (no steps: nothing is trained)"),
    (["rewards.num_workers=0"], "command line: rewards.num_workers: expected an integer >= 1, got 0"),
    (["cluster.resources.gpu={num_gpus: 1}"],
     "command line: cluster.resources.gpu: expected a role name (encoder, rollout, policy, reward), got 'gpu'"),
    (["rewards.components=[{name: accuracy}, {name: acuracy}]"],
     "command line: rewards.components.1.name: unknown built-in reward 'acuracy'"),
])
def test_config_errors_stop_before_ray(tmp_path, capsys, tiny_corpus, tiny_model, overrides, needle):
    rc, err = _train(capsys, tmp_path, tiny_corpus / "train.jsonl", tiny_model, *overrides)
    assert rc == 2
    assert err.startswith(f"funrl: config error: {needle}"), err


def test_a_plugin_with_a_syntax_error_is_named_with_its_file_line(tmp_path, capsys, tiny_corpus, tiny_model):
    plugin = tmp_path / "mine.py"
    plugin.write_text("def score(completions, **kw)\n    return [0.0] * len(completions)\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"run:\n  name: t\nrewards:\n  components:\n    - name: accuracy\n    - name: '{plugin}:score'\n")
    rc, err = _train(capsys, tmp_path, tiny_corpus / "train.jsonl", tiny_model, config=config)
    assert rc == 2
    assert err.startswith(f"funrl: config error: {config}:6: rewards.components.1.name: reward plugin "
                          f"'{plugin}:score': running '{plugin}' raised SyntaxError: expected ':'"), err


def test_an_unknown_role_in_cluster_resources(tmp_path, capsys, tiny_corpus, tiny_model):
    config = tmp_path / "c.yaml"
    config.write_text("run:\n  name: t\ncluster:\n  resources:\n    gpu:\n      num_gpus: 1\n")
    rc, err = _train(capsys, tmp_path, tiny_corpus / "train.jsonl", tiny_model, config=config)
    assert rc == 2
    assert err.startswith(f"funrl: config error: {config}:5: cluster.resources.gpu: expected a role name "
                          "(encoder, rollout, policy, reward), got 'gpu'"), err


def test_a_missing_model_folder(tmp_path, capsys, tiny_corpus):
    rc, err = _train(capsys, tmp_path, tiny_corpus / "train.jsonl", tmp_path / "nope")
    assert rc == 2
    assert err.startswith(f"funrl: config error: command line: model.path: folder '{tmp_path / 'nope'}' not found")


def test_a_clip_longer_than_the_context_asks_for_max_duration(tmp_path, capsys, tiny_corpus, tiny_model):
    sf.write(str(tmp_path / "long.wav"), np.zeros(8000 * 70, np.int16), 8000)
    m = _copy_manifest(tmp_path, tiny_corpus, {1: {"id": "talk", "audio": str(tmp_path / "long.wav"), "text": "hi"}})
    limit = (1024 - 128 - 64) / 12.5  # rollout.max_new_tokens defaults to 64
    rc, err = _train(capsys, tmp_path, m, tiny_model)
    assert rc == 2
    assert err == (f"funrl: config error: {m}:1: field 'audio': clip 'talk' lasts 70.0 s, longer than the {limit:.1f} s of audio "
                   f"that fit in the context of {tiny_model}; set data.max_duration=67 (or less) to leave them "
                   "out of training\n")


def test_the_real_command_exits_2_without_a_traceback(tmp_path, tiny_corpus, tiny_model):
    m = _copy_manifest(tmp_path, tiny_corpus, {5: {"audio": str(tmp_path / "gone.wav"), "text": "hi"}})
    config = tmp_path / "c.yaml"
    config.write_text("run:\n  name: t\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "funrl", "train", str(config), f"run.output_dir={tmp_path / 'runs'}",
                        f"data.train_manifest={m}", f"model.path={tiny_model}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2
    assert p.stderr == (f"funrl train: {m}:5: field 'audio': {tmp_path / 'gone.wav'}: audio file not found; fix the "
                        "path (relative paths are resolved against the manifest's folder)\n")
    assert not (tmp_path / "runs").exists()
