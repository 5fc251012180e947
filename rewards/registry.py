"""Finding reward callables: the built-in registry and plugins by dotted path or file path.

Built-ins register themselves by name with :func:`register`, which raises on a duplicate name.
User code needs no registration: a component ``name`` of ``pkg.module:fn`` imports ``fn`` from an
importable module, and ``path/to/file.py:fn`` loads ``fn`` from a file (a relative path is taken
from the current directory). A class is instantiated with the component's ``kwargs``; a function
gets them bound with :func:`functools.partial`. Every failure is a :class:`RewardError` that says
what was looked for and what to do.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from funrl.rewards.protocol import RewardError

_BUILTINS: dict[str, type] = {}
_BUILTIN_MODULES = (
    "funrl.rewards.accuracy",
    "funrl.rewards.keywords",
    "funrl.rewards.hallucination",
    "funrl.rewards.language",
)


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a built-in reward under ``name``; a second use of a name raises."""

    def deco(cls: type) -> type:
        if name in _BUILTINS and _BUILTINS[name] is not cls:
            raise RewardError(
                f"built-in reward '{name}' is already registered by {_BUILTINS[name].__module__}."
                f"{_BUILTINS[name].__qualname__}; pick another name"
            )
        _BUILTINS[name] = cls
        return cls

    return deco


def builtins() -> dict[str, type]:
    """Name -> class of every built-in reward."""
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    return dict(_BUILTINS)


def is_plugin_path(name: str) -> bool:
    return ":" in name


def _load_file(path_str: str, spec_name: str) -> Any:
    path = Path(path_str)
    if not path.is_file():
        raise RewardError(
            f"reward plugin '{spec_name}': file '{path_str}' not found (relative paths are taken "
            f"from the current directory, {Path.cwd()}); give the path of a .py file"
        )
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    mod_name = f"funrl_reward_plugin_{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise RewardError(f"reward plugin '{spec_name}': '{path_str}' cannot be loaded as Python; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[mod_name]
        raise RewardError(f"reward plugin '{spec_name}': running '{path_str}' raised {type(e).__name__}: {e}") from e
    return module


def _load_module(mod_path: str, spec_name: str) -> Any:
    try:
        return importlib.import_module(mod_path)
    except ModuleNotFoundError as e:
        raise RewardError(
            f"reward plugin '{spec_name}': cannot import module '{mod_path}' ({e}); check the "
            "spelling, install the package or add its folder to PYTHONPATH, or give a file path "
            "like path/to/file.py:fn"
        ) from e
    except Exception as e:
        raise RewardError(f"reward plugin '{spec_name}': importing '{mod_path}' raised {type(e).__name__}: {e}") from e


def load_object(name: str) -> Any:
    """The object named by ``pkg.module:attr`` or ``path/to/file.py:attr``."""
    where, _, attr = name.rpartition(":")
    if not where or not attr:
        raise RewardError(f"reward plugin '{name}': expected 'pkg.module:fn' or 'path/to/file.py:fn'")
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    module = _load_file(where, name) if is_file else _load_module(where, name)
    try:
        return getattr(module, attr)
    except AttributeError:
        public = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise RewardError(
            f"reward plugin '{name}': '{where}' has no attribute '{attr}'; its callables are: "
            f"{', '.join(public) or '(none)'}"
        ) from None


def _check_kwargs(fn: Callable, kwargs: dict, label: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: let the call tell
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in kwargs if k not in params or params[k].kind is inspect.Parameter.POSITIONAL_ONLY]
    if unknown:
        accepted = [k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        raise RewardError(
            f"reward '{label}': unknown parameter(s) {', '.join(map(repr, unknown))} in kwargs; "
            f"it accepts: {', '.join(accepted) or '(none)'}"
        )


def build(name: str, kwargs: dict | None = None, label: str | None = None) -> tuple[str, Callable]:
    """``(component name, reward callable)`` for a built-in name or a plugin path."""
    kwargs = dict(kwargs or {})
    if is_plugin_path(name):
        obj = load_object(name)
        default_label = name.rpartition(":")[2]
    else:
        table = builtins()
        if name not in table:
            raise RewardError(
                f"unknown built-in reward '{name}'; built-ins are: {', '.join(sorted(table))} "
                "(a plugin is named 'pkg.module:fn' or 'path/to/file.py:fn')"
            )
        obj = table[name]
        default_label = name
    label = label or default_label
    if inspect.isclass(obj):
        _check_kwargs(obj, kwargs, label)
        try:
            fn = obj(**kwargs)
        except Exception as e:
            raise RewardError(f"reward '{label}': {obj.__name__}(**{kwargs!r}) raised {type(e).__name__}: {e}") from e
    elif callable(obj):
        _check_kwargs(obj, kwargs, label)
        fn = functools.partial(obj, **kwargs) if kwargs else obj
    else:
        raise RewardError(f"reward '{label}': '{name}' is a {type(obj).__name__}, not a function or class")
    return label, fn
