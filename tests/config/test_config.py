"""The config loader: defaults, YAML, overrides, and the exact messages a user sees."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from funrl.cli import main
from funrl.config import ConfigError, load_config
from funrl.config.loader import suggest, valid_keys


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_defaults_are_the_schema():
    cfg = load_config(None)
    assert cfg.run.seed == 0
    assert [c.name for c in cfg.rewards.components] == ["accuracy", "keywords", "hallucination", "language"]


def test_yaml_sets_only_what_differs(tmp_path):
    cfg = load_config(write(tmp_path, "run:\n  seed: 7\n"))
    assert cfg.run.seed == 7
    assert cfg.run.name == "funrl"  # untouched default


def test_overrides_nested_keys_lists_and_list_items(tmp_path):
    path = write(tmp_path, "run:\n  seed: 7\n")
    cfg = load_config(
        path,
        [
            "run.seed=9",
            "run.name=exp 1",
            "rewards.components=[{name: accuracy, weight: 2.0}]",
            "rewards.num_workers=3",
        ],
    )
    assert cfg.run.seed == 9 and cfg.run.name == "exp 1" and cfg.rewards.num_workers == 3
    assert len(cfg.rewards.components) == 1
    assert cfg.rewards.components[0].weight == 2.0
    cfg = load_config(None, ["rewards.components.1.weight=0.5", "rewards.components.1.kwargs={beta: 2}"])
    assert cfg.rewards.components[1].name == "keywords"
    assert cfg.rewards.components[1].weight == 0.5
    assert cfg.rewards.components[1].kwargs == {"beta": 2}


def test_unknown_key_in_file_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, "run:\n  seed: 1\n  sed: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}:3: unknown key 'run.sed' — did you mean 'run.seed'?"


def test_unknown_key_on_command_line():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["run.output_directory=x"])
    assert str(e.value) == "command line: unknown key 'run.output_directory' — did you mean 'run.output_dir'?"


def test_abbreviation_is_suggested():
    # 'learning_rate' -> 'lr' by initials, the classic typo from other toolkits.
    assert suggest("optim.learning_rate", ["optim.lr", "optim.weight_decay", "optim.warmup_steps"]) == "optim.lr"
    assert suggest("zzz.qqq", ["run.seed"]) is None


def test_wrong_type_names_key_expected_type_and_file(tmp_path):
    path = write(tmp_path, "run:\n  name: x\n  seed: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}:3: key 'run.seed' expects int, got 'many'"


def test_wrong_type_on_command_line():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["rewards.num_workers=two"])
    assert str(e.value) == "command line (rewards.num_workers=two): key 'rewards.num_workers' expects int, got 'two'"


def test_missing_required_value(tmp_path):
    path = write(tmp_path, "rewards:\n  components:\n    - weight: 2.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}: missing required value 'rewards.components.0.name' (str); "
        "set it in the config file or pass rewards.components.0.name=... on the command line"
    )


def test_override_without_equals_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'run.seed' must look like key=value"):
        load_config(None, ["run.seed"])
    path = write(tmp_path, "run:\n  seed: [1,\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: invalid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_valid_keys_lists_nested_sections():
    keys = valid_keys()
    assert "run.seed" in keys and "rewards.components.0.weight" in keys


def test_cli_show_and_validate(tmp_path, capsys, monkeypatch):
    good = write(tmp_path, "run:\n  seed: 4\n", "good.yaml")
    bad = write(tmp_path, "run:\n  sed: 4\n", "bad.yaml")
    assert main(["config", "show", str(good), "run.name=x"]) == 0
    out = capsys.readouterr().out
    assert "seed: 4" in out and "name: x" in out
    assert main(["config", "validate", str(good), str(bad)]) == 2
    out = capsys.readouterr().out
    assert f"ok    {good}" in out
    assert f"FAIL  {bad}:2: unknown key 'run.sed' — did you mean 'run.seed'?" in out
    assert "1 valid, 1 invalid" in out
    assert main(["config", "show", str(bad)]) == 2
    assert "config error" in capsys.readouterr().err


def test_section_value_checks_name_file_line_or_command_line(tmp_path):
    path = write(tmp_path, "algorithm:\n  group_size: 4\n  clip_low: 2.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:3: algorithm.clip_low: expected a number in [0, 1), got 2.0")
    with pytest.raises(ConfigError) as e:
        load_config(None, ["algorithm.adv_std=foo"])
    assert str(e.value).startswith("command line: algorithm.adv_std: expected one of")
