"""The one base class of errors a user can fix (bad config, manifest, audio, reward plugin).

``funrl.cli.main`` prints a :class:`UserError` as one line and exits with code 2; anything else
is funrl's own bug and keeps its traceback. Subclasses also derive from ``ValueError`` where they
did before, so existing ``except ValueError`` callers are unchanged.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the user gave funrl; the message names where it is and what to do."""

    def one_line(self) -> str:
        """The message as the CLI prints it: one line (subclasses shorten long listings)."""
        return " ".join(str(self).split("\n"))


class ConfigError(UserError, ValueError):
    """A config problem a user can fix; the message says where and how (re-exported as
    ``funrl.config.ConfigError``; defined here so that config sections need not import the loader)."""


class ConfigValueError(UserError, ValueError):
    """A config value outside what its key accepts, raised by the sections' own checks.

    The loader reads ``key`` to put the file:line (or "command line") where the key was set in
    front of the message: ``examples/x.yaml:12: algorithm.clip_low: expected a number in [0, 1),
    got 1.5; fix it in the YAML file or pass algorithm.clip_low=... on the command line``.
    """

    def __init__(self, key: str, expected: str = "", got: object = None, why: str = "", fix: str | None = None,
                 *, message: str | None = None):
        self.key, self.expected, self.got = key, expected, got
        if message is None:
            fix = fix if fix is not None else f"fix it in the YAML file or pass {key}=... on the command line"
            message = f"expected {expected}, got {got!r}{why}; {fix}"
        super().__init__(f"{key}: {message}")


def check_value(key: str, ok: bool, expected: str, got: object, why: str = "") -> None:
    """Raise :class:`ConfigValueError` unless ``ok``."""
    if not ok:
        raise ConfigValueError(key, expected, got, why)
