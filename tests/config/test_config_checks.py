"""Config checks beyond types: duplicate keys, ranges, runnable configs; each names file:line and key.

Real YAML files and plugin files; the CLI runs through ``funrl.cli.main``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from funrl.cli import main
from funrl.config import ConfigError, load_config
from funrl.config.checks import RUN_CHECKS

FIX = "; fix it in the YAML file or pass {key}=... on the command line"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def error_of(path, overrides=(), checks=()) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, list(overrides), checks=checks)
    return str(e.value)


# ----------------------------------------------------------------------------- duplicate keys


def test_a_second_section_is_an_error_naming_both_lines(tmp_path, capsys):
    p = write(tmp_path, """\
        run:
          name: first
        train:
          steps: 3
        run:
          seed: 2
        """)
    assert error_of(p) == f"{p}:5: key 'run' is set twice (lines 1 and 5); merge them into one"
    assert main(["config", "show", str(p)]) == 2
    err = capsys.readouterr().err
    assert err == f"funrl: config error: {p}:5: key 'run' is set twice (lines 1 and 5); merge them into one\n"


def test_a_duplicate_key_inside_a_section_or_list_item(tmp_path):
    p = write(tmp_path, "train:\n  steps: 3\n  prompts_per_step: 2\n  steps: 4\n")
    assert error_of(p) == f"{p}:4: key 'train.steps' is set twice (lines 2 and 4); merge them into one"
    p = write(tmp_path, "rewards:\n  components:\n    - name: accuracy\n      weight: 1\n      weight: 2\n")
    assert error_of(p) == (f"{p}:5: key 'rewards.components.0.weight' is set twice (lines 4 and 5); "
                           "merge them into one")


def test_a_config_file_that_is_not_utf8_names_the_line(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"run:\n  name: caf\xe9\n")
    assert error_of(p) == f"{p}:2: byte 0xe9 is not UTF-8; save the file as UTF-8"
    (tmp_path / "adir.yaml").mkdir()
    assert main(["config", "show", str(tmp_path / "adir.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"funrl: config error: {tmp_path / 'adir.yaml'}: cannot read config file (Is a directory)")


# ----------------------------------------------------------------------------- ranges (every load)


@pytest.mark.parametrize("yaml_text, line, key, expected", [
    ("train:\n  steps: 0\n", 2, "train.steps", "expected an integer > 0, got 0 (no steps: nothing is trained)"),
    ("train:\n  steps: -5\n", 2, "train.steps", "expected an integer > 0, got -5 (no steps: nothing is trained)"),
    ("train:\n  prompts_per_step: 0\n", 2, "train.prompts_per_step", "expected an integer >= 1, got 0"),
    ("checkpoint:\n  every: -1\n", 2, "checkpoint.every", "expected an integer >= 0 (0: only at the end), got -1"),
    ("checkpoint:\n  keep_last: -2\n", 2, "checkpoint.keep_last", "expected an integer >= 0 (0: keep all), got -2"),
    ("rewards:\n  num_workers: 0\n", 2, "rewards.num_workers", "expected an integer >= 1, got 0"),
    ("rewards:\n  components:\n    - name: accuracy\n    - name: keywords\n      weight: .nan\n", 5,
     "rewards.components.1.weight", "expected a finite number, got nan"),
    ("rewards:\n  components:\n    - name: accuracy\n      weight: -.inf\n", 4,
     "rewards.components.0.weight", "expected a finite number, got -inf"),
    ("cluster:\n  resources:\n    gpu:\n      num_cpus: 1\n", 3, "cluster.resources.gpu",
     "expected a role name (encoder, rollout, policy, reward), got 'gpu'"),
    ("cluster:\n  resources:\n    policy:\n      num_gpus: -1\n", 4, "cluster.resources.policy.num_gpus",
     "expected null (the layout's share) or a fraction of one device in [0, 1], got -1.0"),
    ("cluster:\n  resources:\n    reward:\n      num_cpus: .inf\n", 4, "cluster.resources.reward.num_cpus",
     "expected a finite number >= 0, got inf"),
    ("cluster:\n  gpus: yes please\n", 2, "cluster.gpus", "expected 'auto' (GPUs when Ray reports them) or 'none', got 'yes please'"),
    ("rollout:\n  num_engines: 0\n", 2, "rollout.num_engines", "expected an integer >= 1, got 0"),
    ("rollout:\n  reward_overlap_chunks: 2\n  reward_overlap_groups: true\n", 3, "rollout.reward_overlap_groups",
     "expected false when rollout.reward_overlap_chunks > 1 (two ways to overlap the rewards: choose one), got True"),
    ("model:\n  encoder_workers: 0\n", 2, "model.encoder_workers", "expected an integer >= 1, got 0"),
    ("cluster:\n  torch_threads: 0\n", 2, "cluster.torch_threads", "expected an integer >= 1, got 0"),
    ("cluster:\n  placement_strategy: pack\n", 2, "cluster.placement_strategy",
     "expected one of PACK, SPREAD, STRICT_PACK, STRICT_SPREAD, got 'pack'"),
])
def test_out_of_range_values_name_file_line_and_key(tmp_path, yaml_text, line, key, expected):
    p = write(tmp_path, yaml_text)
    assert error_of(p) == f"{p}:{line}: {key}: {expected}" + FIX.format(key=key)


def test_out_of_range_override_is_named_as_command_line():
    assert error_of(None, ["train.steps=0"]).startswith("command line: train.steps: expected an integer > 0")
    msg = error_of(None, ["rewards.components=[{name: accuracy, weight: .nan}]"])
    assert msg.startswith("command line: rewards.components.0.weight: expected a finite number, got nan")


# ----------------------------------------------------------------------------- runnable (validate, train)


BAD_PLUGIN = "def reward(completions, **kw)\n    return [0.0] * len(completions)\n"  # no colon


@pytest.mark.parametrize("component, needle", [
    ("accuracyy", "rewards.components.1.name: unknown built-in reward 'accuracyy'; built-ins are: accuracy,"),
    ("{dir}/nope.py:reward", "rewards.components.1.name: reward plugin '{dir}/nope.py:reward': file '{dir}/nope.py' "
                             "not found"),
    ("{dir}/bad.py:reward", "rewards.components.1.name: reward plugin '{dir}/bad.py:reward': running "
                            "'{dir}/bad.py' raised SyntaxError: expected ':'"),
    ("{dir}/good.py:missing", "rewards.components.1.name: reward plugin '{dir}/good.py:missing': "
                              "'{dir}/good.py' has no attribute 'missing'; its callables are: reward"),
])
def test_validate_builds_every_reward_component(tmp_path, capsys, component, needle):
    (tmp_path / "bad.py").write_text(BAD_PLUGIN)
    (tmp_path / "good.py").write_text(BAD_PLUGIN.replace(")\n", "):\n", 1))
    component, needle = component.format(dir=tmp_path), needle.format(dir=tmp_path)
    p = write(tmp_path, f"rewards:\n  components:\n    - name: accuracy\n    - name: '{component}'\n")
    assert main(["config", "validate", str(p)]) == 2
    out = capsys.readouterr().out
    assert f"FAIL  {p}:4: {needle}" in out, out
    assert "0 valid, 1 invalid" in out
    load_config(p)  # a plain load (e.g. `config show`) does not import plugins


def test_validate_checks_the_model_folder(tmp_path, capsys):
    p = write(tmp_path, "run:\n  seed: 1\nmodel:\n  path: no/such/model\n")
    assert main(["config", "validate", str(p)]) == 2
    out = capsys.readouterr().out
    assert f"FAIL  {p}:4: model.path: folder 'no/such/model' not found (relative paths are taken from" in out
    (tmp_path / "m").mkdir()
    msg = error_of(None, [f"model.path={tmp_path / 'm'}"], RUN_CHECKS)
    assert msg == (f"command line: model.path: '{tmp_path / 'm'}' has no funrl_model.json or config.json, so it is "
                   "not a model folder; give a folder written by `funrl sft` or `funrl train`")


@pytest.mark.parametrize("text, line, key, why", [
    ("algorithm:\n  group_size: 1\n", 2, "algorithm.group_size",
     "expected an integer >= 2, got 1 (GRPO's advantage is a sample's reward minus its group's mean: with one "
     "sample per prompt every advantage is 0 and nothing is learned; 8 is usual)"),
    ("rollout:\n  temperature: 0\n", 2, "rollout.temperature",
     "expected a number > 0 for training, got 0.0 (0 is greedy: all G samples of a prompt are the same, their "
     "rewards equal, every advantage 0 and nothing is learned; 1.0 is usual)"),
])
def test_settings_that_learn_nothing_are_refused_for_training(tmp_path, text, line, key, why):
    p = write(tmp_path, text)
    load_config(p)  # a valid config for scoring or eval
    assert error_of(p, checks=RUN_CHECKS) == f"{p}:{line}: {key}: {why}" + FIX.format(key=key)


def test_the_examples_validate_as_runnable(monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)  # model.path and plugin paths are relative to the repository
    for path in sorted((repo / "examples").rglob("*.yaml")):
        load_config(path, checks=RUN_CHECKS)
