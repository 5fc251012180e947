"""The GRPO driver: one step is encode → rollout → reward → advantage → update → weight sync.

:meth:`Trainer.fit` is the data-flow diagram of docs/ARCHITECTURE.md in code; each phase is a
method below it that calls one role's actors, grants the device to that role for the phase
(``wake`` before, ``sleep`` after, the grant in the trace), and times it as a named span.

Where funrl departs from the report (§4.2.4): the report's FunRL keeps the audio encoder on the
GPU between phases; here the encoder role sleeps like the others, so exactly one role holds a
device at a time and its switch cost is visible in the trace. Old log-probs are recomputed by the
policy (not taken from the rollout engine) so the importance ratio is exact even when the engine
runs in bf16; with one optimizer step per rollout they are the update's own detached log-probs
(``algorithm.recompute_old_logprobs=true`` runs verl's separate no-grad pass instead).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import logging
import random
import time
from pathlib import Path

import numpy as np
import ray
import torch

from funrl.config import FunRLConfig, to_yaml
from funrl.policy.advantages import group_advantages, truncated_keep_mask, zero_variance_keep_mask
from funrl.profiling import Profiler
from funrl.rewards.combiner import reward_stats
from funrl.rollout.protocol import RolloutBatch
from funrl.train import checkpoint as ckpt
from funrl.train.evaluation import eval_metrics, eval_utterances, improves, replace_folder, write_best
from funrl.train.metrics import MetricsLogger, sample_records
from funrl.train.refill import combine_rounds, informative_groups
from funrl.train.run_dir import config_dict, config_hash
from funrl.train.run_dir import prepare as prepare_run_dir
from funrl.train.roles import Roles, consecutive_runs
from funrl.train.sampler import PromptSampler

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """The run stopped; the message says which worker and what to do."""


class Trainer:
    def __init__(self, cfg: FunRLConfig):
        from funrl.train.preflight import preflight

        utts = preflight(cfg)  # config, every manifest row and its audio: before anything is written
        eval_utts = eval_utterances(cfg)  # data.eval_manifest when train.eval_every > 0, checked alike
        self.cfg = cfg
        self.run_dir = Path(cfg.run.output_dir) / cfg.run.name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.start = prepare_run_dir(cfg, self.run_dir)  # old outputs, half-written checkpoints, resume
        (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        self.rows = [u.to_dict() for u in utts]
        self.eval_rows = [u.to_dict() for u in eval_utts]
        self.best: float | None = None  # checkpoint.best_metric's best value so far
        self.sampler = PromptSampler(len(self.rows), cfg.train.prompts_per_step, cfg.run.seed, cfg.train.shuffle)
        self.G = cfg.algorithm.group_size
        self._phase: dict[str, float] = {}
        self.prof = Profiler(self.run_dir, enabled=cfg.profile.enabled)
        self.roles = Roles.start(cfg, self.run_dir)
        self._spans_pending: list = []  # the workers' spans of the last step, on their way (see log)
        self._prefetched: tuple | None = None  # (step, rows, embeds, sampler state before): prefetch
        self._stream_tok = None  # data.streaming: the model's tokenizer (draw)
        self.metrics = MetricsLogger(self.run_dir, cfg.train.steps, start_step=self.start.step, tracker=self._tracker())
        self.device = self.roles.device
        self.overlap = cfg.rollout.reward_overlap_groups or cfg.rollout.reward_overlap_chunks > 1
        self._guides = None  # algorithm.guide: (the step's embeddings ref, their guides)

    def _tracker(self):
        """W&B when ``logging.wandb.enabled`` (:mod:`funrl.train.wandb_log`), else None."""
        w = self.cfg.logging.wandb
        if not w.enabled:
            return None
        from funrl.train.wandb_log import WandbTracker

        return WandbTracker(w, self.run_dir, self.cfg.run.name, config_dict(self.cfg), resumed=self.start.step > 0)

    # ------------------------------------------------------------------ the loop (one screen)

    def fit(self) -> Path:
        try:
            self.run_steps()
        except BaseException:
            with contextlib.suppress(Exception):  # what the living workers recorded, for the trace
                self.prof.add(self.roles.collect_spans(self._spans_pending + self.roles.request_spans(), timeout=5.0))
            with contextlib.suppress(Exception):
                self.metrics.close()  # writes the TensorBoard events still queued
            self.roles.shutdown()
            self.roles.end_ray()  # a private cluster's processes and folder go with the run
            self.prof.flush()
            raise
        return self.finish()

    def run_steps(self, start: int | None = None) -> None:
        start = self.resume() if start is None else start
        for step in range(start, self.cfg.train.steps):
            with self.prof.step(step):
                t0 = time.time()
                rows, embeds = self.prompts(step)  # B manifest rows → encoder role → prompt embeddings (ref)
                if self.overlap:  # groups (or chunks) scored while the rest generate
                    rollout, texts, rewards = self.rollout_overlapped(step, rows, embeds)
                    self.prefetch_alone(step)
                else:
                    rollout, texts = self.rollout(step, embeds)  # rollout role → B·G completions
                    rewards = self.reward(step, rows, texts)  # reward pool → components + total (+ prefetch)
                rows, embeds, rollout, texts, rewards, refill = self.refill(step, rows, embeds, rollout, texts, rewards)
                adv, rows_kept, adv_metrics = self.advantage(step, rewards, rollout)  # driver → Eq. 1
                adv_metrics.update(refill)
                upd = self.update(step, embeds, rollout, adv, rows_kept)  # policy role → Eq. 2–3
                self.weight_sync(step)  # policy → rollout engine
                self.maybe_checkpoint(step)
                ev = self.evaluate(step)  # rollout engine, greedy on data.eval_manifest (train.eval_every)
                self.log(step, time.time() - t0, rollout, rewards, adv_metrics, {**upd, **ev})
                self.log_samples(step, rows, texts, rollout, rewards, adv, rows_kept)  # train.samples_every

    # ------------------------------------------------------------------ phases

    @contextlib.contextmanager
    def phase(self, name: str, step: int):
        """A driver-level span (the profiler's phase table) that also feeds ``time/<phase>``."""
        t = time.time()
        with self.prof.span(name, step=step):
            yield
        self._phase[name] = self._phase.get(name, 0.0) + time.time() - t

    def prompts(self, step: int) -> tuple[list[dict], object]:
        """The step's B manifest rows and their prompt embeddings: prefetched during the step
        before (``train.prefetch_prompts``), else sampled and encoded now."""
        if self._prefetched is not None:
            at, rows, embeds, _ = self._prefetched
            self._prefetched = None
            assert at == step, f"prefetched step {at}, running step {step}"
            with self.phase("encode", step=step):  # what is left of the encode, if anything
                refs = embeds if isinstance(embeds, list) else [embeds]
                ray.wait(refs, num_returns=len(refs), fetch_local=False)
            return rows, embeds
        rows = self.draw(step)
        return rows, self.encode(step, rows)

    def draw(self, step: int, draw: int = 0) -> list[dict]:
        """The next B manifest rows; with ``data.streaming`` a share cut at a chunk boundary
        (:mod:`funrl.streaming.training`), the same ones again on a resume."""
        rows = [self.rows[i] for i in self.sampler.next()]
        s = self.cfg.data.streaming
        if not s.enabled:
            return rows
        from funrl.streaming.training import draw_chunk, row_rng, streaming_view

        if self._stream_tok is None:  # the model's tokenizer: the prefix's rollback is counted in its tokens
            from transformers import AutoTokenizer

            self._stream_tok = AutoTokenizer.from_pretrained(self.cfg.model.path)
        seed = self.cfg.run.seed if s.seed is None else s.seed
        ks = [draw_chunk(row, row_rng(seed, step, draw, i), s) for i, row in enumerate(rows)]
        own = self.own_prefixes(step, rows, ks) if s.prefix == "model" else {}
        return [row if k is None else streaming_view(row, k, s.chunk_s, self._stream_tok, s.rollback,
                                                     model_prefix=own.get(i, "") if s.prefix == "model" else None)
                for i, (row, k) in enumerate(zip(rows, ks))]

    def own_prefixes(self, step: int, rows: list[dict], ks: list) -> dict[int, str]:
        """``data.streaming.prefix=model``: the policy's own greedy decode (the rollout engine, with
        the weights it was last synced) of each cut row's audio up to the boundary before its own,
        as a streaming decoder would have shown it one chunk earlier."""
        chunk = self.cfg.data.streaming.chunk_s
        todo = [i for i, k in enumerate(ks) if k is not None and k > 1]
        if not todo:
            return {}
        cut = [{**rows[i], "audio_end_s": (ks[i] - 1) * chunk} for i in todo]
        greedy = dataclasses.replace(self.cfg.rollout.sampling(), temperature=0.0)
        with self.roles.own("encoder", step, self.prof), self.phase("stream_prefix", step=step):
            embeds = self.roles.encode(cut, step)
        with self.roles.own("rollout", step, self.prof), self.phase("stream_prefix", step=step):
            _, texts = self.roles.generate(embeds, len(cut), 1, greedy, step)
        return dict(zip(todo, texts))

    def prefetch(self, step: int) -> None:
        """``train.prefetch_prompts``: draw step+1's rows now and start encoding them, to run while
        this step scores rewards, updates and syncs. The sampler's state before the draw is what a
        checkpoint of this step keeps, so a resume draws the same rows. On CPU nothing waits for
        it here; on a GPU the encoder holds the device only while the reward pool (on the CPU)
        scores (:meth:`reward`), so ownership stays exclusive."""
        if not self.cfg.train.prefetch_prompts or step + 1 >= self.cfg.train.steps:
            return
        before = self.sampler.state_dict()
        rows = self.draw(step + 1)
        self._prefetched = (step + 1, rows, self.roles.encode(rows, step + 1, wait=False), before)

    def prefetch_alone(self, step: int) -> None:
        """:meth:`prefetch` where no phase runs beside it to hide it on a GPU (the overlapped
        rollout scored the rewards already): there it is an encoder grant of its own."""
        if self.device == "cpu" or not self.cfg.train.prefetch_prompts:
            return self.prefetch(step)
        with self.roles.own("encoder", step, self.prof):
            self.prefetch(step)
            if self._prefetched is not None:
                refs = self._prefetched[2] if isinstance(self._prefetched[2], list) else [self._prefetched[2]]
                ray.wait(refs, num_returns=len(refs), fetch_local=False)

    def encode(self, step: int, rows: list[dict]):
        """Prompt embeddings, left in the object store (a ref, or one per encoder worker)."""
        with self.roles.own("encoder", step, self.prof):
            with self.phase("encode", step=step):
                return self.roles.encode(rows, step)

    def sampling(self, step: int, chunk: int = 0):
        """The step's sampling parameters; ``chunk`` > 0 (an overlapped chunk or a refill round) shifts the seed."""
        sampling = self.cfg.rollout.sampling()
        seed = self.cfg.rollout.seed if self.cfg.rollout.seed is not None else self.cfg.run.seed
        sampling.seed = seed * 100_003 + step + 7_919 * chunk
        return sampling

    def rollout(self, step: int, embeds: ray.ObjectRef, draw: int = 0):
        """``draw`` > 0: a refill round's own sampling seed (``refill``)."""
        B = self.cfg.train.prompts_per_step
        with self.roles.own("rollout", step, self.prof):
            with self.phase("rollout", step=step):
                batch, texts = self.roles.generate(embeds, B, self.G, self.sampling(step, draw), step)
        return self.guided(embeds, list(range(B)), batch, texts)

    def guided(self, embeds, prompts: list[int], batch, texts: list[str]) -> tuple:
        """``algorithm.guide``: the last sample of each group of ``prompts`` (a hand-back, prompt-major)
        replaced by the prompt's guide transcript, which the encoder packed with its embeddings
        (:mod:`funrl.train.guide`)."""
        if self.cfg.algorithm.guide == "none":
            return batch, texts
        from funrl.train.guide import apply_guides, read_guides

        if self._guides is None or self._guides[0] is not embeds:  # once per step's embeddings
            packs = [ray.get(r) for r in (embeds if isinstance(embeds, list) else [embeds])]
            self._guides = (embeds, read_guides(packs))
        apply_guides(prompts, batch, texts, self._guides[1], self.G)
        return batch, texts

    def rollout_overlapped(self, step: int, rows: list[dict], embeds: ray.ObjectRef) -> tuple:
        """The rewards scored while the rollout still decodes. ``rollout.reward_overlap_groups``: one
        generate call hands back each group as soon as its G samples have ended, and the reward pool
        scores it at once. ``rollout.reward_overlap_chunks`` = k: the prompts in k consecutive
        chunks, each chunk scored while the next generates (chunk k samples with its own seed).
        Either way a group is scored whole, by one worker; the rollout phase holds the overlapped
        scoring and the reward phase what is left to wait for after the last group."""
        B, G = len(rows), self.G
        got, pending, turn = {}, [], 0  # prompt -> (hand-back batch, its texts, the group's first row there)
        with self.roles.own("rollout", step, self.prof), self.phase("rollout", step=step):
            for prompts, batch, texts in self.finished_groups(step, B, embeds):
                for run in consecutive_runs(prompts):  # one reward call per run of neighbouring groups
                    at, n = prompts.index(run[0]) * G, len(run) * G  # the run's rows in this hand-back
                    refs = self.roles.score_submit(texts[at:at + n], [rows[p] for p in run for _ in range(G)],
                                                   [p for p in run for _ in range(G)], step, offset=run[0] * G,
                                                   first_worker=turn)
                    turn += len(refs)  # the next run starts at the next worker
                    pending.append((run[0], refs))
                got.update({p: (batch, texts, k * G) for k, p in enumerate(prompts)})
        with self.phase("reward", step=step):
            refs = [r for _, rs in sorted(pending, key=lambda x: x[0]) for r in rs]  # row order
            rewards = self.roles.score_merge(self.roles.wait_all(refs))
        out, all_texts = RolloutBatch([], [], [], []), []  # prompt-major, as one call returns it
        for p in range(B):
            batch, texts, a = got[p]
            out.token_ids += batch.token_ids[a:a + G]
            out.logprobs += batch.logprobs[a:a + G]
            out.finish_reasons += batch.finish_reasons[a:a + G]
            out.prompt_index += [p] * G
            all_texts += texts[a:a + G]
        return out, all_texts, rewards

    def finished_groups(self, step: int, B: int, embeds):
        """``(prompts, batch, texts)`` as the rollout hands groups back (:meth:`rollout_overlapped`):
        group by group from one call, or chunk by chunk from ``reward_overlap_chunks`` calls."""
        if self.cfg.rollout.reward_overlap_groups:
            for prompts, batch, texts in self.roles.generate_groups(embeds, B, self.G, self.sampling(step), step):
                yield (prompts, *self.guided(embeds, prompts, batch, texts))
            return
        k = self.cfg.rollout.reward_overlap_chunks
        for j, sel in enumerate(c for c in (list(range(i * B // k, (i + 1) * B // k)) for i in range(k)) if c):
            batch, texts = self.roles.generate(embeds, B, self.G, self.sampling(step, j), step, sel)
            yield (sel, *self.guided(embeds, sel, batch, texts))

    def reward(self, step: int, rows: list[dict], texts: list[str], prefetch: bool = True) -> dict:
        """The reward pool on the completions; with ``train.prefetch_prompts`` the next step's
        prompts are encoded meanwhile (on a GPU inside an encoder grant that ends with both)."""
        samples = [rows[i // self.G] for i in range(len(texts))]
        group_ids = [i // self.G for i in range(len(texts))]
        gpu = prefetch and self.cfg.train.prefetch_prompts and self.device != "cpu"
        with self.roles.own("encoder", step, self.prof) if gpu else contextlib.nullcontext():
            if prefetch:
                self.prefetch(step)
            with self.phase("reward", step=step):
                rewards = self.roles.score(texts, samples, group_ids, step)
            if gpu and self._prefetched is not None:  # the device goes back before the update
                refs = self._prefetched[2] if isinstance(self._prefetched[2], list) else [self._prefetched[2]]
                ray.wait(refs, num_returns=len(refs), fetch_local=False)
        return rewards

    def refill(self, step: int, rows, embeds, rollout, texts, rewards) -> tuple:
        """DAPO dynamic sampling with refill (``algorithm.max_refill_rounds``): more rounds of B prompts
        until B groups have rewards that differ; the step's batch is the first B such groups."""
        a, B = self.cfg.algorithm, self.cfg.train.prompts_per_step
        if not a.max_refill_rounds or len(informative_groups(rewards["total"], self.G)) >= B:
            return rows, embeds, rollout, texts, rewards, {}
        rounds = [(rows, ray.get(embeds), rollout, texts, rewards)]
        while len(rounds) <= a.max_refill_rounds:
            more = self.draw(step, len(rounds))
            ref = self.encode(step, more)
            out, more_texts = self.rollout(step, ref, draw=len(rounds))  # fresh noise for each round
            rounds.append((more, ray.get(ref), out, more_texts, self.reward(step, more, more_texts, prefetch=False)))
            if sum(len(informative_groups(r[4]["total"], self.G)) for r in rounds) >= B:
                break
        found = sum(len(informative_groups(r[4]["total"], self.G)) for r in rounds)
        rows, packed, rollout, texts, rewards = combine_rounds(rounds, self.G, B)
        rewards["metrics"] = reward_stats(rewards["components"], rewards["total"], rewards["error_rates"])
        stats = {"refill_rounds": float(len(rounds) - 1), "zero_variance_share": 1.0 - found / (B * len(rounds))}
        return rows, ray.put(packed), rollout, texts, rewards, stats

    def advantage(self, step: int, rewards: dict, rollout) -> tuple[torch.Tensor, list[int], dict]:
        """Eq. 1 per group; with ``algorithm.filter_zero_variance_groups`` (DAPO dynamic sampling)
        the rows of groups whose rewards are all equal are left out of the update, and with
        ``algorithm.mask_truncated`` the completions cut at ``max_new_tokens``."""
        with self.phase("advantage", step=step):
            a = self.cfg.algorithm
            total = torch.tensor(rewards["total"], dtype=torch.float32)  # [B*G]
            groups = torch.arange(len(total)) // self.G  # [B*G]
            adv, m = group_advantages(total, groups, std_mode=a.adv_std, eps=a.adv_eps)
            keep = torch.ones(len(total), dtype=torch.bool)
            if a.filter_zero_variance_groups:
                keep, fm = zero_variance_keep_mask(total, groups)
                m.update(fm)
            if a.mask_truncated:
                uncut, tm = truncated_keep_mask(rollout.finish_reasons)
                keep = keep & uncut
                m.update(tm)
            if a.guide != "none":  # the guide is each group's last row (funrl/train/guide.py)
                r = total.view(-1, self.G)  # [B, G]
                m["guide_better_share"] = (r[:, -1] > r[:, :-1].max(1).values).float().mean()
                m["guide_reward_gain"] = (r[:, -1] - r[:, :-1].mean(1)).mean()
            return adv, torch.nonzero(keep).flatten().tolist(), {k: float(v) for k, v in m.items()}

    def update(self, step: int, embeds, rollout, adv: torch.Tensor, rows: list[int]) -> dict:
        if not rows:  # every group had equal rewards and filtering is on: nothing to learn from
            return {"update_skipped": 1.0}
        with self.roles.own("policy", step, self.prof):
            # the passes go to the ranks at once and run there in order (each reads what the one
            # before left on the rank); the driver times each by waiting for it in turn, so the
            # update's arguments travel while the reference pass computes
            passes = []
            if self.cfg.algorithm.recompute_old_logprobs:
                passes.append(("logprob_old", self.roles.policy_logprobs(step, embeds, rollout, rows, "old")))
            if self.cfg.algorithm.kl_coef > 0:
                passes.append(("logprob_ref", self.roles.policy_logprobs(step, embeds, rollout, rows, "ref")))
            passes.append(("update", self.roles.policy_update(step, embeds, rollout, adv, rows)))
            for name, refs in passes:
                with self.phase(name, step=step):
                    result = self.roles.wait_all(refs)
            return result[0]  # the update's metrics, already reduced across ranks

    def weight_sync(self, step: int) -> None:
        with self.roles.own("weight_sync", step, self.prof):
            with self.phase("weight_sync", step=step):
                self.roles.sync_weights(step)

    def evaluate(self, step: int) -> dict:
        every = self.cfg.train.eval_every
        if not every or (step + 1) % every:
            return {}
        greedy = dataclasses.replace(self.cfg.rollout.sampling(), temperature=0.0)
        with self.roles.own("encoder", step, self.prof), self.phase("eval", step=step):
            embeds = self.roles.encode(self.eval_rows, step)
        with self.roles.own("rollout", step, self.prof), self.phase("eval", step=step):
            _, hyps = self.roles.generate(embeds, len(self.eval_rows), 1, greedy, step)
            ev = eval_metrics(hyps, self.eval_rows)
        metric = self.cfg.checkpoint.best_metric
        if metric and improves(metric, ev[metric], self.best):
            self.best = ev[metric]
            with self.phase("checkpoint", step=step):
                tmp = self.run_dir / ".best.tmp"
                self.roles.export_model(tmp)
                write_best(tmp, step, metric, self.best)
                replace_folder(tmp, self.run_dir / "best")
        return ev

    def maybe_checkpoint(self, step: int) -> None:
        every, last = self.cfg.checkpoint.every, step == self.cfg.train.steps - 1
        if (every and (step + 1) % every == 0) or (last and self.cfg.checkpoint.save_final):
            with self.phase("checkpoint", step=step):
                self.save(step)

    # ------------------------------------------------------------------ state

    def save(self, step: int) -> Path:
        config = config_dict(self.cfg)
        state = {
            "step": step,
            # before the next step's prefetched draw, if any: a resume draws those rows again
            "sampler": self._prefetched[3] if self._prefetched is not None else self.sampler.state_dict(),
            "rng": driver_rng_state(),
            "best": self.best,  # checkpoint.best_metric's best value so far
            "config_sha256": config_hash(config),
            "config": config,  # a resume refuses or applies each changed key (funrl.train.run_dir)
        }
        return ckpt.save_checkpoint(
            self.run_dir, step, state, lambda tmp: self.roles.save_policy(tmp / "policy"), self.cfg.checkpoint.keep_last
        )

    def resume(self) -> int:
        """Restore the checkpoint :func:`~funrl.train.run_dir.prepare` chose; the first step to take."""
        path = self.start.checkpoint
        if path is None:
            return 0
        state = ckpt.load_state(path)
        self.sampler.load_state_dict(state["sampler"])
        restore_driver_rng(state["rng"])
        self.best = state.get("best")
        self.roles.load_policy(path / "policy")
        self.weight_sync(state["step"])  # the rollout engine starts from the restored policy
        log.info("resumed from %s", path)
        return state["step"] + 1

    def log_samples(self, step: int, rows, texts, rollout, rewards: dict, adv, kept: list[int]) -> None:
        every = self.cfg.train.samples_every
        if every and step % every == 0:
            self.metrics.log_samples(step, sample_records(
                step, rows, texts, rewards, adv, kept, rollout.finish_reasons, self.G, self.cfg.train.samples_prompts))

    def log(self, step: int, wall: float, rollout, rewards: dict, adv_metrics: dict, upd: dict) -> None:
        lens = [len(t) for t in rollout.token_ids]
        m = {
            **rewards["metrics"],  # reward/<name>_mean|_std|_applicable, total, declared error rates (wer)
            **{f"adv/{k}": v for k, v in adv_metrics.items()},
            **upd,
            "response_len_mean": float(np.mean(lens)),
            "response_len_max": int(max(lens)),
            "rollout/tokens": int(sum(lens)),
            "rollout/truncated_frac": float(np.mean([r == "length" for r in rollout.finish_reasons])),
            "rollout/tokens_per_s": sum(lens) / max(self._phase.get("rollout", 0.0), 1e-9),
            "time/step": wall,
            **{f"time/{k}": v for k, v in self._phase.items()},
        }
        self.metrics.log(step, m)
        self._phase = {}
        if (step + 1) % self.cfg.profile.drain_every == 0:
            # the workers' spans travel while the next step runs: ask now, take them next time
            # (collecting inside the step costs a call to every actor)
            done, self._spans_pending = self._spans_pending, self.roles.request_spans()
            self.prof.add(self.roles.collect_spans(done))

    def finish(self) -> Path:
        from funrl.profiling.report import print_report

        self.metrics.close()
        self.prof.add(self.roles.collect_spans(self._spans_pending + self.roles.request_spans()))
        self._spans_pending = []
        self.roles.collect_files()  # torch.profiler traces, written on the workers' nodes
        with self.phase("checkpoint", step=None):
            self.roles.export_model(self.run_dir / "model")  # a complete model folder for funrl eval
        self.roles.shutdown()
        self.roles.end_ray()
        report = self.prof.close(plots=self.cfg.profile.plots)
        if report is not None and self.cfg.profile.summary:
            print_report(report)
        return self.run_dir


def driver_rng_state() -> dict:
    """The driver's Python, NumPy and torch RNG states as JSON values."""
    version, internal, gauss = random.getstate()
    s = np.random.get_state()
    return {"python": [version, list(internal), gauss], "numpy": [s[0], s[1].tolist(), int(s[2]), int(s[3]), float(s[4])],
            "torch": torch.get_rng_state().tolist()}


def restore_driver_rng(rng: dict) -> None:
    """Inverse of :func:`driver_rng_state` (also reads the Python state older checkpoints stored as a repr)."""
    py = ast.literal_eval(rng["python"]) if isinstance(rng["python"], str) else rng["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = rng["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
