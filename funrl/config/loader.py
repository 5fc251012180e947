"""Load a YAML config plus ``key=value`` overrides onto the dataclass schema.

Every error names the file and line (or "command line"), the dotted key, what was expected and
what to do. Unknown keys get the nearest valid name. The result is a plain ``FunRLConfig``
dataclass instance (``OmegaConf.to_object``), so code gets attribute access with real types.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from funrl.config.checks import RUN_CHECKS, check_ranges
from funrl.config.schema import FunRLConfig
from funrl.errors import ConfigError, ConfigValueError, UserError  # ConfigError: re-exported by funrl.config

CMDLINE = "command line"


# ----------------------------------------------------------------------------- schema walking


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (list, typing.List):
        (arg,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(arg)}"
    if origin in (dict, typing.Dict):
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return f"section ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def valid_keys(cls: type = FunRLConfig, prefix: str = "") -> list[str]:
    """All dotted keys of the schema (list items shown as ``key.0``)."""
    out = []
    for name, tp in _fields(cls).items():
        key = f"{prefix}{name}"
        out.append(key)
        tp = _unwrap(tp)
        if dataclasses.is_dataclass(tp):
            out += valid_keys(tp, key + ".")
        elif typing.get_origin(tp) in (list, typing.List):
            (arg,) = typing.get_args(tp) or (Any,)
            if dataclasses.is_dataclass(_unwrap(arg)):
                out += valid_keys(_unwrap(arg), key + ".0.")
    return out


def _initials(name: str) -> str:
    return "".join(part[:1] for part in name.split("_") if part)


def suggest(key: str, candidates: Iterable[str]) -> str | None:
    """The nearest valid dotted key for an unknown one, or None."""
    candidates = list(candidates)
    leaf = key.rsplit(".", 1)[-1]
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    siblings = [c for c in candidates if (c.rsplit(".", 1)[0] if "." in c else "") == parent]

    def score(c: str) -> float:
        cleaf = c.rsplit(".", 1)[-1]
        s = difflib.SequenceMatcher(None, leaf, cleaf).ratio()
        if cleaf == _initials(leaf) or leaf == _initials(cleaf):  # learning_rate ~ lr
            s = max(s, 0.95)
        return s

    for pool, cutoff in ((siblings, 0.55), (candidates, 0.75)):
        ranked = sorted(pool, key=score, reverse=True)
        if ranked and score(ranked[0]) >= cutoff:
            return ranked[0]
    return None


def _dotted(key: str) -> str:
    """OmegaConf writes list items as ``a[0].b``; funrl writes ``a.0.b`` everywhere."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def _resolve_path(key: str, cls: type = FunRLConfig) -> Any:
    """The schema type at a dotted key; raises KeyError at the first unknown part."""
    tp: Any = cls
    parts = key.split(".")
    for i, part in enumerate(parts):
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            fields = _fields(tp)
            if part not in fields:
                raise KeyError(".".join(parts[: i + 1]))
            tp = fields[part]
        elif origin in (list, typing.List):
            if not part.isdigit():
                raise KeyError(".".join(parts[: i + 1]))
            (tp,) = typing.get_args(tp) or (Any,)
        elif origin in (dict, typing.Dict) or tp is Any:
            return Any  # free-form below this point
        else:
            raise KeyError(".".join(parts[: i + 1]))
    return tp


# ----------------------------------------------------------------------------- YAML with lines


def _compose(path: Path) -> tuple[Any, dict[str, int]]:
    """Parse YAML, returning (data, {dotted key: line number})."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror}); check the path") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: byte 0x{raw[e.start]:02x} is not UTF-8; save the file "
                          "as UTF-8") from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    lines: dict[str, int] = {}

    def walk(n: Any, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in n.value:
                key = f"{prefix}{k.value}"
                line = k.start_mark.line + 1
                if k.value in seen:  # PyYAML keeps the last silently
                    raise ConfigError(f"{path}:{line}: key '{key}' is set twice (lines "
                                      f"{seen[k.value]} and {line}); merge them into one")
                seen[k.value] = line
                lines[key] = line
                walk(v, key + ".")
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[f"{prefix}{i}"] = v.start_mark.line + 1
                walk(v, f"{prefix}{i}.")

    walk(node, "")
    data = yaml.safe_load(text) if node is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a config file must be a mapping of sections, got {type(data).__name__}")
    return data, lines


def _check_keys(data: Any, where: str, lines: dict[str, int], prefix: str = "", cls: Any = FunRLConfig) -> None:
    cls = _unwrap(cls)
    if isinstance(data, dict):
        if not (dataclasses.is_dataclass(cls)):
            return  # a free-form mapping (kwargs) or a type error OmegaConf will name
        fields = _fields(cls)
        for k, v in data.items():
            key = f"{prefix}{k}"
            if k not in fields:
                raise ConfigError(_unknown(key, f"{where}:{lines.get(key, '?')}"))
            _check_keys(v, where, lines, key + ".", fields[k])
    elif isinstance(data, list) and typing.get_origin(cls) in (list, typing.List):
        (arg,) = typing.get_args(cls) or (Any,)
        for i, v in enumerate(data):
            _check_keys(v, where, lines, f"{prefix}{i}.", arg)


def _unknown(key: str, where: str) -> str:
    hint = suggest(key, valid_keys())
    tail = f" — did you mean '{hint}'?" if hint else " — run `funrl config show` to list the valid keys"
    return f"{where}: unknown key '{key}'{tail}"


# ----------------------------------------------------------------------------- loading


def _explain(e: OmegaConfBaseException, where_of: Any) -> ConfigError:
    key = _dotted(str(getattr(e, "full_key", "") or ""))
    try:
        expected = _type_name(_resolve_path(key)) if key else "?"
    except KeyError:
        expected = "?"
    value = getattr(e, "value", None)
    msg = str(e).split("\n")[0]
    got = f"got {value!r}" if value is not None else msg
    return ConfigError(f"{where_of(key)}: key '{key}' expects {expected}, {got}")


def load_config(path: str | Path | None, overrides: Sequence[str] = (),
                checks: Sequence[Callable[[FunRLConfig], None]] = ()) -> FunRLConfig:
    """Load ``path`` (or only the defaults when None) and apply ``key=value`` overrides.

    Every load runs the sections' own checks and :func:`funrl.config.checks.check_ranges`;
    ``checks`` adds more (e.g. :data:`funrl.config.checks.RUN_CHECKS`). Each raises
    :class:`funrl.errors.ConfigValueError`, whose ``key`` the loader reads to report the problem
    at that key's file:line (or the command line).
    """
    cfg = OmegaConf.structured(FunRLConfig)
    where_file = "defaults"
    lines: dict[str, int] = {}
    if path is not None:
        p = Path(path)
        data, lines = _compose(p)
        where_file = str(p)
        _check_keys(data, where_file, lines)
        try:
            cfg = OmegaConf.merge(cfg, data)
        except OmegaConfBaseException as e:
            raise _explain(e, lambda k: f"{where_file}:{lines.get(k, '?')}") from None

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{CMDLINE}: override '{item}' must look like key=value (e.g. run.seed=1)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            _resolve_path(key)
        except KeyError:
            raise ConfigError(_unknown(key, CMDLINE)) from None
        value = yaml.safe_load(raw) if raw.strip() else ""
        try:
            with open_dict(cfg):
                OmegaConf.update(cfg, key, _as_section(key, value), merge=True)
        except OmegaConfBaseException as e:
            raise _explain(e, lambda k: f"{CMDLINE} ({item})") from None
        except (IndexError, KeyError) as e:
            raise ConfigError(f"{CMDLINE}: cannot set '{key}': {e}") from None

    missing = sorted(_dotted(k) for k in OmegaConf.missing_keys(cfg))
    if missing:
        key = missing[0]
        raise ConfigError(
            f"{where_file}: missing required value '{key}' ({_type_name(_resolve_path(key))}); "
            f"set it in the config file or pass {key}=... on the command line"
        )
    try:
        obj = OmegaConf.to_object(cfg)
        for f in dataclasses.fields(obj):  # sections with cross-field checks (e.g. rollout.check)
            check = getattr(getattr(obj, f.name), "check", None)
            if callable(check):
                check()
        for check in (check_ranges, *checks):
            check(obj)
    except OmegaConfBaseException as e:
        raise _explain(e, lambda k: f"{where_file}:{lines.get(k, '?')}") from None
    except ConfigValueError as e:  # a section's own value check names its key
        raise ConfigError(f"{_where_set(e.key, overrides, where_file, lines)}: {e}") from None
    return obj  # type: ignore[return-value]


def _as_section(key: str, value: Any) -> Any:
    """A mapping given for a new entry of a mapping of sections (``cluster.resources.NAME={...}``)
    as that section type: OmegaConf adds a typed entry only in that form."""
    parent = key.rpartition(".")[0]
    if not parent or not isinstance(value, dict):
        return value
    tp = _unwrap(_resolve_path(parent))
    if typing.get_origin(tp) in (dict, typing.Dict):
        section = _unwrap((typing.get_args(tp) or (Any, Any))[1])
        if dataclasses.is_dataclass(section):
            return OmegaConf.merge(OmegaConf.structured(section), value)
    return value


def _where_set(key: str, overrides: Sequence[str], where_file: str, lines: dict[str, int]) -> str:
    """Where ``key`` got its value: the command line (it or a parent was overridden), else the
    line of the key in the file (or of its nearest parent there), else the file."""
    set_keys = [o.split("=", 1)[0].strip() for o in overrides]
    if key and any(key == k or key.startswith(k + ".") for k in set_keys):
        return CMDLINE
    while key:
        if key in lines:
            return f"{where_file}:{lines[key]}"
        key = key.rsplit(".", 1)[0] if "." in key else ""
    return where_file


def to_yaml(cfg: FunRLConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def validate_files(paths: Sequence[str | Path]) -> list[tuple[str, str | None]]:
    """[(file, error or None)] for each config file, checked as a training run would be
    (:data:`funrl.config.checks.RUN_CHECKS`: rewards built, model folder, settings that learn)."""
    results = []
    for p in paths:
        try:
            load_config(p, checks=RUN_CHECKS)
            results.append((str(p), None))
        except ConfigError as e:
            results.append((str(p), str(e)))
    return results

