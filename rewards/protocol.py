"""The reward protocol: what a reward is and every keyword the trainer passes to it.

A reward is a callable::

    fn(completions: list[str], *, references: list[str], samples: list[dict], **kwargs)
        -> list[float | None]

or a class whose ``__init__`` takes its parameters from the config (``rewards.components[i].kwargs``)
and whose ``__call__`` has that signature. It scores a whole batch in one call and returns one
value per completion, in order. ``None`` means "not applicable to this sample" (e.g. a keyword
reward on a sample without keywords): it is left out of that component's mean and std and adds
nothing to the sample's total. Anything else must be a finite real number; a wrong length, NaN,
inf or a non-number is a :class:`RewardError`, never silently zeroed.

Keywords the trainer passes (all lists are aligned with ``completions``, index ``i`` throughout):

``completions: list[str]``
    The decoded policy outputs (special tokens stripped), positional.
``references: list[str]``
    The reference transcript of each completion's sample (``samples[i]["text"]``); ``""`` for a
    pure-noise sample.
``samples: list[dict]``
    The manifest row of each completion's sample, as a plain dict:

    - ``id`` (str) — the utterance id;
    - ``audio`` (str) — path of the audio file;
    - ``text`` (str) — reference transcript (same as ``references[i]``); empty for noise;
    - ``language`` (str) — ``"en"``, ``"zh"`` or ``"mixed"`` (code-switched Mandarin/English);
    - ``keywords`` (list[str]) — terms actually spoken in the utterance (may be empty);
    - ``hotwords`` (list[str]) — the context list shown to the model: the keywords plus
      distractors that were *not* spoken;
    - ``duration`` (float) — seconds of audio;
    - ``noise`` (bool) — true for a pure-noise sample (``text`` is empty).

    - ``words`` (list) — word timings ``[[word, start_s, end_s], …]`` where the manifest has them.

    Streaming-mode prompts (``data.streaming``, :mod:`funrl.streaming.training`) also carry:

    - ``stream_boundary_s`` (float) — where the prompt's audio ends (a chunk boundary);
    - ``stream_prefix`` (str) — the committed text the prompt carries as the answer's start;
    - ``stream_reference`` (str) — every word spoken entirely by the boundary (prefix included);
    - ``full_text`` (str) — the whole clip's transcript;

    and there ``text`` (= ``references[i]``) is what the completion should say: the words spoken
    entirely by the boundary after the prefix, and ``keywords`` the keywords among them. A word cut
    by the boundary is in neither, so a plugin penalising words "not yet spoken" compares the
    completion with ``text`` (the built-in hallucination reward's length and noise rules do).

    A row read from a user's manifest may lack the optional fields; use ``.get``.
``group_ids: list[int]``
    The GRPO group of each completion: completions of one prompt share an id (the group layout
    of the advantage, prompt-major, see ``funrl.rollout.protocol``).
``step: int``
    The optimiser step of the rollout (0-based), for curricula or schedules.

More keywords may be added later, so a plugin should accept ``**kwargs`` and ignore what it does
not use. Within a batch the same sample appears ``G`` times (once per completion of its group).

Declared metric: a reward whose value is ``1 − error rate`` may say so with a class attribute
``error_rate_metric = "wer"`` (the built-in ``accuracy`` does). The trainer then logs that name as
``1 − mean`` of the component, whatever the component's ``label``.

Errors: every problem with a reward (it raises, returns a bad value, cannot be imported or is
configured wrongly) is a :class:`RewardError` whose message names the component and, where
there is one, the sample index.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

from funrl.errors import UserError


class RewardError(UserError, ValueError):
    """A reward problem a user can fix; the message names the component, the sample and the fix.

    ``component`` is the reward's name and ``index`` the batch index of the offending sample,
    where known (the CLI turns the index into ``file:line``).
    """

    def __init__(self, message: str, component: Optional[str] = None, index: Optional[int] = None):
        super().__init__(message)
        self.component = component
        self.index = index


@runtime_checkable
class RewardFn(Protocol):
    def __call__(
        self, completions: list[str], *, references: list[str], samples: list[dict], **kwargs: Any
    ) -> list[Optional[float]]: ...
