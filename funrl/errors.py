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
