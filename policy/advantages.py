"""Group-relative advantages (report Eq. 1) and DAPO's zero-variance group filter.

One scalar advantage per sampled sequence: ``A_i = (R_i - mean_g) / (std_g + eps)`` where ``g`` is
the group (the G samples of one prompt, rows sharing a ``group_index`` value). The loss broadcasts
it over the sequence's tokens.

Choices, and whose definition each follows:

- ``std_mode="group"``: Eq. 1; equals verl ``compute_grpo_outcome_advantage``
  (``norm_adv_by_std_in_grpo=True``) and TRL ``GRPOTrainer`` (``scale_rewards="group"``) given the
  same ε (verl 1e-6, TRL 1e-4; funrl's default is verl's).
- ``std_mode="batch"``: group mean, but the std of all rewards in the batch (TRL
  ``scale_rewards="batch"``). Pass the rewards of the whole step, not of one rank's shard.
- ``std_mode="none"``: ``A_i = R_i - mean_g`` (Dr.GRPO; verl ``norm_adv_by_std_in_grpo=False``).
- The std is the *unbiased* (Bessel-corrected, divide by n-1) sample std, as ``torch.std`` in verl
  and ``nanstd`` in TRL; the report does not say which.
- A group of one gets advantage 0 (its own mean is its reward). verl departs here: it uses mean 0
  and std 1 for a singleton, i.e. ``A = R``. funrl follows Eq. 1 literally, since a lone sample has
  no group baseline to compare against.
- A zero-variance group (all rewards equal, singletons included) gets advantage exactly 0 (verl and
  TRL give ~0 up to rounding). ``zero_variance_group_frac`` reports their share: such groups give no
  policy-gradient signal, only KL.

Dynamic sampling (DAPO, Yu et al. 2025): :func:`zero_variance_keep_mask` marks the rows of
informative groups. Dropping the others shrinks the batch by G rows per dropped group; the loss
normalisers (global token / sequence counts) must then be counted on the kept rows, so each kept
token weighs more than in the unfiltered batch. DAPO keeps sampling until the batch is full again;
this function does not resample (that is the driver's choice).

Metrics are 0-dim detached tensors (no host sync; call ``.item()`` when logging).
"""

from __future__ import annotations

import torch

from funrl.policy.config import ADV_STD_MODES


def group_index_from_size(num_rows: int, group_size: int) -> torch.Tensor:
    """``[0]*G + [1]*G + ...`` for prompt-major rows (the rollout protocol's layout)."""
    if group_size < 1 or num_rows % group_size:
        raise ValueError(f"{num_rows} rows cannot be split into groups of {group_size} (algorithm.group_size)")
    return torch.arange(num_rows) // group_size  # [N]


def _group_stats(rewards: torch.Tensor, group_index: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-row group mean, unbiased group std, zero-variance flag; per-group count."""
    if rewards.dim() != 1 or group_index.shape != rewards.shape:
        raise ValueError(
            f"rewards must be 1-D [N] with a matching group_index [N]; got {tuple(rewards.shape)} "
            f"and {tuple(group_index.shape)}"
        )
    if not torch.is_floating_point(rewards):
        raise TypeError(f"rewards must be a floating tensor, got {rewards.dtype}")
    bad = (~torch.isfinite(rewards)).nonzero()
    if bad.numel():
        i = int(bad[0])
        raise ValueError(f"reward of row {i} is {rewards[i].item()}; every scored sample needs a finite reward")
    _, inv, counts = torch.unique(group_index, return_inverse=True, return_counts=True)  # [N], [K]
    k = counts.numel()
    n_g = counts.to(rewards.dtype)  # [K]
    mean_g = torch.zeros(k, dtype=rewards.dtype).index_add_(0, inv, rewards) / n_g  # [K]
    dev = rewards - mean_g[inv]  # [N]
    sq_g = torch.zeros(k, dtype=rewards.dtype).index_add_(0, inv, dev * dev)  # [K]
    std_g = (sq_g / (n_g - 1).clamp(min=1)).sqrt()  # [K]  unbiased; 0 for singletons
    max_g = torch.full((k,), -torch.inf, dtype=rewards.dtype).scatter_reduce_(0, inv, rewards, "amax")  # [K]
    min_g = torch.full((k,), torch.inf, dtype=rewards.dtype).scatter_reduce_(0, inv, rewards, "amin")  # [K]
    zero_var_g = max_g == min_g  # [K]  all rewards equal (every singleton)
    return {"dev": dev, "std": std_g[inv], "zero_var": zero_var_g[inv], "zero_var_g": zero_var_g, "count_g": counts}


def group_advantages(
    rewards: torch.Tensor,  # [N] one scalar reward per sampled sequence
    group_index: torch.Tensor,  # [N] int, rows with the same value form a group
    *,
    std_mode: str = "group",
    eps: float = 1e-6,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Report Eq. 1: ``(R_i - mean_g) / (std_g + eps)`` per row, with the options above.

    Returns ``(advantages [N], metrics)``. No gradient flows (rewards are data).
    """
    if std_mode not in ADV_STD_MODES:
        raise ValueError(f"std_mode must be one of {ADV_STD_MODES} (algorithm.adv_std), got {std_mode!r}")
    with torch.no_grad():
        st = _group_stats(rewards, group_index)
        if std_mode == "group":
            adv = st["dev"] / (st["std"] + eps)  # [N]
        elif std_mode == "batch":
            batch_std = rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())  # []  unbiased
            adv = st["dev"] / (batch_std + eps)  # [N]
        else:
            adv = st["dev"]  # [N]
        adv = torch.where(st["zero_var"], torch.zeros_like(adv), adv)  # [N]
        metrics = {
            "reward_mean": rewards.mean(),
            "reward_std": rewards.std() if rewards.numel() > 1 else rewards.new_zeros(()),
            "adv_mean": adv.mean(),
            "adv_std": adv.std() if adv.numel() > 1 else adv.new_zeros(()),
            "adv_min": adv.min(),
            "adv_max": adv.max(),
            "adv_abs_mean": adv.abs().mean(),
            "num_groups": torch.tensor(float(st["count_g"].numel())),
            "zero_variance_group_frac": st["zero_var_g"].float().mean(),
        }
    return adv, metrics


def zero_variance_keep_mask(
    rewards: torch.Tensor,  # [N]
    group_index: torch.Tensor,  # [N] int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DAPO dynamic sampling: ``keep [N] bool``, False for every row of a zero-variance group.

    Metrics: ``filter_kept_rows`` and ``filter_dropped_groups`` (counts, as 0-dim float tensors).
    """
    with torch.no_grad():
        st = _group_stats(rewards, group_index)
        keep = ~st["zero_var"]  # [N]
        metrics = {
            "filter_kept_rows": keep.float().sum(),
            "filter_dropped_groups": st["zero_var_g"].float().sum(),
        }
    return keep, metrics


def truncated_keep_mask(finish_reasons: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Over-long filtering: ``keep [N] bool``, False for a completion the engine cut at
    ``max_new_tokens`` (finish reason ``"length"``). Metrics: ``truncated_masked_rows`` (a count).

    >>> keep, m = truncated_keep_mask(["stop", "length", "stop"])
    >>> keep.tolist(), int(m["truncated_masked_rows"])
    ([True, False, True], 1)
    """
    cut = torch.tensor([r == "length" for r in finish_reasons], dtype=torch.bool)  # [N]
    return ~cut, {"truncated_masked_rows": cut.float().sum()}
