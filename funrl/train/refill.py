"""Dynamic sampling with refill (DAPO; ``algorithm.max_refill_rounds``): when groups whose G rewards
are all equal are filtered out (``algorithm.filter_zero_variance_groups``), the driver samples more
prompts, up to ``max_refill_rounds`` more rounds, until the step holds B groups that teach
something; :func:`combine_rounds` then builds one step's batch from the first B such groups in the
order they were drawn. With fewer after the last round, the step trains on what it has (as verl's
``max_num_gen_batches`` does when it gives up; DAPO's paper keeps sampling).

A round is ``(rows, embeds, rollout, texts, rewards)`` as the step's phases return them: ``rows``
the B manifest rows, ``embeds`` the encoder's packed prompt embeddings (fetched), ``rollout`` the
engine's :class:`~funrl.rollout.protocol.RolloutBatch`, ``texts`` the decoded completions,
``rewards`` the reward pool's ``{"total", "components", "error_rates"}``.
"""

from __future__ import annotations

from typing import Sequence

import torch


def informative_groups(total: Sequence[float], group_size: int) -> list[int]:
    """Indices of the groups whose rewards are not all equal.

    >>> informative_groups([1.0, 1.0, 0.0, 1.0, 0.5, 0.5], 2)
    [1]
    """
    t = torch.tensor(list(total), dtype=torch.float64).view(-1, group_size)  # [B, G]
    return torch.nonzero(t.max(-1).values > t.min(-1).values).flatten().tolist()


def combine_rounds(rounds: list[tuple], group_size: int, want: int) -> tuple:
    """``(rows, embeds, rollout, texts, rewards)`` of the first ``want`` informative groups over the
    rounds, re-indexed as one step's batch (prompt-major, group g's rows at ``g*G .. g*G+G-1``)."""
    from funrl.rollout.protocol import RolloutBatch
    from funrl.train.transport import PackedTensors
    from funrl.train.workers.base import prompt_tensors

    picked = [(r, g) for r, rnd in enumerate(rounds) for g in informative_groups(rnd[4]["total"], group_size)][:want]
    rows, prompts, texts, token_ids, logprobs, finish = [], [], [], [], [], []
    total: list[float] = []
    comps: dict[str, list] = {name: [] for name in rounds[0][4]["components"]}
    for r, g in picked:
        rnd_rows, embeds, rollout, rnd_texts, rewards = rounds[r]
        rows.append(rnd_rows[g])
        prompts.append(prompt_tensors(embeds)[g])
        span = range(g * group_size, (g + 1) * group_size)
        for i in span:
            assert rollout.prompt_index[i] == g, "rollout rows must be prompt-major"
        texts += [rnd_texts[i] for i in span]
        token_ids += [rollout.token_ids[i] for i in span]
        logprobs += [rollout.logprobs[i] for i in span]
        finish += [rollout.finish_reasons[i] for i in span]
        total += [rewards["total"][i] for i in span]
        for name in comps:
            comps[name] += [rewards["components"][name][i] for i in span]
    rollout = RolloutBatch(token_ids, logprobs, finish, [i // group_size for i in range(len(token_ids))])
    embeds = PackedTensors.pack([(str(i), e) for i, e in enumerate(prompts)])
    rewards = {"total": total, "components": comps, "error_rates": rounds[0][4]["error_rates"]}
    return rows, embeds, rollout, texts, rewards
