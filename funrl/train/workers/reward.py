"""Reward pool actor: scores a slice of the step's completions with the configured modules."""

from __future__ import annotations

from funrl.rewards.config import RewardsConfig
from funrl.rewards.protocol import RewardError
from funrl.train.workers.base import Worker


class RewardWorker(Worker):
    def __init__(self, name: str, cfg: RewardsConfig, torch_threads: int = 1, profile: bool = True):
        super().__init__(name, torch_threads, profile)
        from funrl.rewards.combiner import RewardCombiner

        self.combiner = RewardCombiner.from_config(cfg)

    def score(
        self,
        completions: list[str],
        samples: list[dict],
        group_ids: list[int],
        step: int,
        offset: int,
    ) -> dict[str, list]:
        """Per-sample components and totals of rows ``offset .. offset+len-1`` of the step."""
        with self.rec.span("reward", step=step, completions=len(completions)):
            try:
                res = self.combiner(
                    completions,
                    references=[s.get("text", "") for s in samples],
                    samples=samples,
                    group_ids=group_ids,
                    step=step,
                )
            except RewardError as e:
                where = f"; that is row {offset + e.index} of step {step}'s batch" if e.index is not None else ""
                raise RewardError(f"{e}{where} (reward worker {self.name})", e.component, e.index) from None
        return {"total": list(res.total), "components": {k: list(v) for k, v in res.components.items()},
                "error_rates": self.combiner.error_rates}
