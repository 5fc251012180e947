"""The role actors of a run and the driver's calls on them, with device ownership.

``Roles.start`` places every actor in one placement group (bundles from ``cluster.resources``):
one encoder, one rollout engine, ``policy.world_size`` policy ranks (one torch.distributed
group: gloo on CPU, NCCL on GPU) and ``rewards.num_workers`` reward actors.

Device ownership: the GPU roles share the devices (colocated). ``own(role)`` wakes the role's
actors, grants the device to that role for the phase (the grant goes into the trace), and puts
them to sleep afterwards, so exactly one role holds the device at a time. The weight sync is its
own holder: the policy (sending) and the rollout engine (receiving) both wake for it. On a
CPU-only run there is nothing to hand over: the grants are recorded, the wake/sleep calls skipped
(``cluster.switch_on_cpu=true`` makes them anyway; the tests do).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ray
import torch
from ray.exceptions import RayActorError, RayTaskError

from funrl.rewards.protocol import RewardError
from funrl.train.cluster import make_placement, ray_gpus, start_ray
from funrl.train.layout import plan, role_counts
from funrl.train.node_files import pack_folder, write_folder
from funrl.train.ownership import Ownership, sleep_limit_bytes

log = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """A role actor's process died; the message names it and says how to resume."""


@dataclass
class RoleSpec:
    """One role's actors: ``count`` instances of ``cls``, the i-th named ``{role}{i}`` and built
    with ``cls(name, *args(i))``, each in its own bundle of the placement group."""

    role: str  # the key of cluster.resources and of the placement bundles
    cls: type
    count: int
    args: Callable[[int], tuple]


class Roles:
    def __init__(self, cfg, run_dir: Path):
        self.cfg = cfg
        self.run_dir = run_dir
        counts = role_counts(cfg)
        self.started_ray = not ray.is_initialized()
        self.session = start_ray(cfg.cluster, run_dir, counts)  # None unless private
        try:
            self.layout = plan(cfg, ray_gpus())  # GPU roles on GPUs when Ray reports them
            for note in self.layout.notes:
                log.info(note)
            self.device = self.layout.device
            self._start(cfg, self._specs(cfg))
        except BaseException:
            self.end_ray()
            raise

    def _specs(self, cfg) -> list[RoleSpec]:
        from funrl.train.workers.encoder import EncoderWorker
        from funrl.train.workers.policy import PolicyActor
        from funrl.train.workers.reward import RewardWorker
        from funrl.train.workers.rollout import RolloutWorker

        ws, th, prof, model = cfg.policy.world_size, cfg.cluster.torch_threads, cfg.profile.enabled, cfg.model.path
        n = self.layout.counts
        dev = lambda role, i: self.layout.slots[(role, i)].device  # noqa: E731
        return [
            RoleSpec("encoder", EncoderWorker, n["encoder"],
                     lambda i: (model, dev("encoder", i), th, prof, cfg.model.prompt, cfg.model.embed_cache_mib,
                                cfg.data.hotwords, cfg.data.hotword_list, cfg.data.rag_k, cfg.algorithm.guide,
                                cfg.rollout.max_new_tokens)),
            RoleSpec("rollout", RolloutWorker, n["rollout"],
                     lambda i: (cfg.rollout, model, cfg.run.name, dev("rollout", i), th, prof, cfg.run.seed + 1_000_003 * i)),
            RoleSpec("reward", RewardWorker, n["reward"], lambda i: (cfg.rewards, 1, prof)),
            RoleSpec("policy", PolicyActor, ws, lambda r: (cfg, r, ws, dev("policy", r), th, prof)),
        ]

    def _start(self, cfg, specs: list[RoleSpec]) -> None:
        self.placement = make_placement(cfg.cluster, self.layout)
        self.actors: dict[str, list] = {}
        self.names: dict[Any, str] = {}
        for s in specs:
            opts = lambda i: {**self.placement.options(s.role, i), "max_restarts": 0}  # noqa: E731
            self.actors[s.role] = [ray.remote(s.cls).options(**opts(i)).remote(f"{s.role}{i}", *s.args(i))
                                   for i in range(s.count)]
            self.names.update({a: f"{s.role}{i}" for i, a in enumerate(self.actors[s.role])})
        self.encoders, self.engines = self.actors["encoder"], self.actors["rollout"]
        self.encoder, self.rollout = self.encoders[0], self.engines[0]  # the first of each (tests, inspection)
        self.rewarders, self.policy = self.actors["reward"], self.actors["policy"]
        self.wait_all([a.ping.remote() for a in self.names])
        self.multi_node = len({n["NodeID"] for n in ray.nodes() if n.get("Alive")}) > 1
        addr = self._rendezvous()
        self.wait_all([p.init_distributed.remote(addr) for p in self.policy])
        self.switching = self.device != "cpu" or cfg.cluster.switch_on_cpu  # wake/sleep calls (see own)
        self.ownership = Ownership(
            {r: self._actors(r) for r in ("encoder", "rollout", "policy", "weight_sync")}, self.names,
            {n: self._device_name(n) for n in self.names.values()}, self.wait_all, self.switching,
            sleep_limit_bytes(cfg.cluster, self.device))
        if self.switching:
            self.asleep_all()

    def _device_name(self, name: str) -> str:
        """``gpu{d}`` for an actor computing on layout device d, else ``cpu``."""
        role, i = name.rstrip("0123456789"), int(name[len(name.rstrip("0123456789")):])
        slot = self.layout.slots[(role, i)]
        return f"gpu{slot.gpu}" if slot.device == "cuda" else "cpu"

    def _rendezvous(self) -> str:
        """Where the policy ranks meet: on a one-node loopback cluster (a private one, or one this
        process shares) a file store in a 0700 folder, so no TCPStore listens on every interface;
        else rank 0's address."""
        name = f"dist-store-{uuid.uuid4().hex}"
        if self.session is not None:
            return f"file://{self.session.root}/{name}"
        if ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback:
            self._dist_dir = tempfile.mkdtemp(prefix="funrl-dist-")
            return f"file://{self._dist_dir}/{name}"
        return self.call(self.policy[0].rendezvous.remote())

    @classmethod
    def start(cls, cfg, run_dir: Path) -> "Roles":
        return cls(cfg, run_dir)

    # ------------------------------------------------------------------ calls and failures

    def call(self, ref):
        return self.wait_all([ref])[0]

    def wait_all(self, refs: list) -> list:
        """ray.get that fails on the first error instead of waiting for the rest."""
        pending, done = list(refs), {}
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done[ready[0]] = self._get(ready[0])
        return [done[r] for r in refs]

    def _get(self, ref):
        try:
            return ray.get(ref)
        except RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, RewardError):
                raise RewardError(str(cause), cause.component, cause.index) from None
            if isinstance(cause, RayActorError):
                raise self._died(cause, ref) from None
            raise
        except RayActorError as e:
            raise self._died(e, ref) from None

    def _died(self, e: RayActorError, ref=None) -> WorkerDied:
        actor_id = getattr(e, "actor_id", None) or (ref.task_id().actor_id().hex() if ref is not None else None)
        cause = f"({type(e).__name__}: {str(e).splitlines()[0][:300]})"
        if getattr(e, "actor_init_failed", False):
            return WorkerDied(f"worker {self.name_of(actor_id)} failed to start {cause}; its own error is "
                              "in the log above: fix that and rerun")
        return WorkerDied(
            f"worker {self.name_of(actor_id)} died {cause}. "
            f"The run stopped; checkpoints in {self.run_dir / 'checkpoints'} are intact: "
            "rerun the same command with train.resume=latest to continue."
        )

    def name_of(self, actor_id: str | None) -> str:
        """The role name (``rollout0``, ``policy1``, ``reward0`` …) of the actor with this id."""
        ids = {a._actor_id.hex(): n for a, n in getattr(self, "names", {}).items()}
        return ids.get(actor_id, f"(actor {actor_id})")

    # ------------------------------------------------------------------ device ownership

    def _actors(self, role: str) -> list:
        return {"encoder": self.encoders, "rollout": self.engines, "policy": self.policy,
                "weight_sync": [*self.policy, *self.engines]}[role]

    def own(self, role: str, step: int, prof):
        """Grant the role's devices for a ``with`` block: wake, grant, sleep, with the memory each
        actor reports at grant and release in the grant (:mod:`funrl.train.ownership`)."""
        return self.ownership.own(role, step, prof)

    def asleep_all(self) -> None:
        self.wait_all([a.sleep.remote(None) for a in [*self.encoders, *self.engines, *self.policy]])

    def request_spans(self) -> list:
        """Ask every actor for its recorded spans without waiting (:meth:`collect_spans` takes them)."""
        return [a.drain_spans.remote() for a in self.names]

    def collect_spans(self, refs: list, timeout: float | None = None) -> list[dict]:
        if timeout is not None:  # best effort (a run that is stopping): whatever arrives in time
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
            refs = ready
        return [s for spans in self.wait_all(refs) for s in spans]

    # ------------------------------------------------------------------ phases

    def encode(self, rows: list[dict], step: int, wait: bool = True):
        """Prompt embeddings of ``rows``, left in the object store: one ref (one encoder worker) or
        a list of refs, one per worker's contiguous slice, in order (``model.encoder_workers``);
        :func:`funrl.train.workers.base.prompt_tensors` reads either. ``wait=False``: return as
        soon as the work is sent (the prefetch)."""
        if self.multi_node:  # the encoders may not see the driver's disk: the audio goes with the rows
            rows = [{**r, "audio_bytes": Path(r["audio"]).read_bytes()} for r in rows]
        parts = [p for p in split(list(range(len(rows))), len(self.encoders)) if p]
        refs = [w.encode.remote([rows[i] for i in part], step) for w, part in zip(self.encoders, parts)]
        if wait:  # ready; stays in the object store
            ray.wait(refs, num_returns=len(refs), fetch_local=False)
        return refs[0] if len(refs) == 1 else refs

    def generate(self, embeds, num_prompts: int, n: int, sampling, step: int, select: list[int] | None = None):
        """``n`` completions for each prompt (those at ``select``, when given), the prompts split
        across the rollout engines in contiguous slices (``rollout.num_engines``); engine ``e``
        samples with ``seed + 104_729·e``. ``(batch, texts)`` in prompt order."""
        from funrl.rollout.protocol import RolloutBatch

        if len(self.engines) == 1:
            return self.call(self.engines[0].generate.remote(embeds, n, sampling, step, select))
        sel = list(range(num_prompts)) if select is None else list(select)
        refs = []
        for e, (eng, part) in enumerate(zip(self.engines, split(sel, len(self.engines)))):
            if part:
                seed = None if sampling.seed is None else sampling.seed + 104_729 * e
                refs.append(eng.generate.remote(embeds, n, dataclasses.replace(sampling, seed=seed), step, part))
        results = self.wait_all(refs)
        return RolloutBatch.concat([b for b, _ in results]), [t for _, texts in results for t in texts]

    def generate_groups(self, embeds, num_prompts: int, n: int, sampling, step: int):
        """:meth:`generate` as the engines finish groups (``rollout.reward_overlap_groups``): yields
        ``(prompts, batch, texts)``, ``prompts`` the step's prompt numbers of ``batch``'s rows
        (``batch.prompt_index`` holds the same numbers), in the order the groups finish, each
        prompt once; every engine streams its contiguous slice (seeds as in :meth:`generate`)."""
        gens = []
        for e, (eng, part) in enumerate(zip(self.engines, split(list(range(num_prompts)), len(self.engines)))):
            if part:
                seed = None if sampling.seed is None else sampling.seed + 104_729 * e
                gens.append(eng.generate_groups.options(num_returns="streaming").remote(
                    embeds, n, dataclasses.replace(sampling, seed=seed), step, part))
        while gens:
            ready, _ = ray.wait(gens, num_returns=1)
            try:
                ref = next(ready[0])
            except StopIteration:
                gens.remove(ready[0])
                continue
            yield self._get(ref)

    def score(self, texts: list[str], samples: list[dict], group_ids: list[int], step: int) -> dict:
        """The reward pool on the step's completions: ``{"total", "components", "error_rates", "metrics"}``.

        Each worker gets whole groups (a plugin may look at a group's completions together), and
        the step's reward metrics are computed once, on the merged lists
        (:func:`funrl.rewards.combiner.reward_stats`)."""
        return self.score_merge(self.wait_all(self.score_submit(texts, samples, group_ids, step)))

    def score_submit(self, texts: list[str], samples: list[dict], group_ids: list[int], step: int,
                     offset: int = 0, first_worker: int = 0) -> list:
        """Send rows ``offset ..`` of the step to the reward pool, whole groups per worker, the
        first slice to worker ``first_worker`` (mod the pool; a caller sending one group at a time
        turns it to spread them); refs whose results, in order, :meth:`score_merge` takes (with
        those of other chunks after them)."""
        k = len(self.rewarders)
        bounds = group_bounds(group_ids, k)
        return [self.rewarders[(first_worker + j) % k].score.remote(texts[a:b], samples[a:b], group_ids[a:b], step,
                                                                     offset + a)
                for j, (a, b) in enumerate(bounds) if b > a]

    def score_merge(self, parts: list[dict]) -> dict:
        """The reward workers' results, in row order, as one step's rewards and metrics."""
        from funrl.rewards.combiner import reward_stats

        total = [x for p in parts for x in p["total"]]
        names = parts[0]["components"].keys()
        comps = {c: [x for p in parts for x in p["components"][c]] for c in names}
        rates = parts[0]["error_rates"]
        return {"total": total, "components": comps, "error_rates": rates, "metrics": reward_stats(comps, total, rates)}

    def shard(self, rows: list[int]) -> list[list[int]]:
        """Contiguous, near-equal slices of the step's rows, one per policy rank."""
        return split(rows, len(self.policy))

    def policy_logprobs(self, step: int, embeds, rollout, rows: list[int], which: str) -> list:
        """Old or reference log-probs, kept on the policy ranks for the update (refs to wait on)."""
        return [p.compute_logprobs.remote(step, embeds, rollout, idx, which)
                for p, idx in zip(self.policy, self.shard(rows))]

    def policy_update(self, step: int, embeds, rollout, adv: torch.Tensor, rows: list[int]) -> list:
        """One optimizer step on every rank (refs to wait on; each returns the same reduced metrics)."""
        return [p.update.remote(step, embeds, rollout, adv, idx) for p, idx in zip(self.policy, self.shard(rows))]

    def sync_weights(self, step: int) -> None:
        """The policy's weights to every rollout engine: gathered once, each bucket sent to all engines."""
        self.wait_all([p.push_weights.remote(self.engines, self.cfg.rollout.bucket_bytes, step) for p in self.policy])

    def save_policy(self, folder: Path) -> None:
        """A policy checkpoint into ``folder`` here, its files sent by rank 0 through Ray."""
        write_folder(self.wait_all([p.save.remote() for p in self.policy])[0], folder)

    def export_model(self, folder: Path) -> None:
        """The trained model folder into ``folder`` here (atomically), sent by rank 0 through Ray."""
        write_folder(self.wait_all([p.export_model.remote() for p in self.policy])[0], folder)

    def collect_files(self) -> None:
        """Files the policy ranks made for the run directory (torch.profiler traces), written here."""
        for files in self.wait_all([p.drain_files.remote() for p in self.policy]):
            for rel, data in files.items():
                dest = self.run_dir / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.tmp")
                tmp.write_bytes(data)
                tmp.replace(dest)

    def load_policy(self, folder: Path) -> None:
        """Restore the policy from a checkpoint folder here: its files go to rank 0 through Ray."""
        files = ray.put(pack_folder(folder))  # one copy in the object store
        self.wait_all([p.load.remote(files) for p in self.policy])

    def end_ray(self) -> None:
        """Stop the Ray this run started; a private cluster's folder and processes go with it."""
        if self.session is not None:
            self.session.end()
        elif self.started_ray and ray.is_initialized():
            ray.shutdown()

    def shutdown(self) -> None:
        if getattr(self, "_dist_dir", None):
            shutil.rmtree(self._dist_dir, ignore_errors=True)
        with contextlib.suppress(Exception):
            ray.get([e.shutdown.remote() for e in self.engines], timeout=30)
        for a in self.names:
            with contextlib.suppress(Exception):
                ray.kill(a)
        with contextlib.suppress(Exception):
            self.placement.remove()


def split(items: list, k: int) -> list[list]:
    """``k`` contiguous, near-equal slices of ``items`` (empty ones when there are fewer than ``k``).

    >>> split([0, 1, 2, 3, 4], 2)
    [[0, 1], [2, 3, 4]]
    """
    n = len(items)
    return [items[j * n // k : (j + 1) * n // k] for j in range(k)]


def group_bounds(group_ids: list[int], k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ``(start, end)`` row ranges, near-equal in groups, that never cut a group
    (rows are group-major: a group's rows are consecutive). Ranges may be empty when there are
    fewer groups than workers.

    >>> group_bounds([0, 0, 1, 1, 2, 2], 2)
    [(0, 2), (2, 6)]
    """
    starts = [i for i, g in enumerate(group_ids) if i == 0 or g != group_ids[i - 1]]
    n, m = len(group_ids), len(starts)
    cut = [starts[j * m // k] if j * m // k < m else n for j in range(k)] + [n]
    return [(cut[j], cut[j + 1]) for j in range(k)]


def consecutive_runs(items: list[int]) -> list[list[int]]:
    """``items`` (ascending) cut where they stop counting up by one.

    >>> consecutive_runs([0, 1, 3, 5, 6])
    [[0, 1], [3], [5, 6]]
    """
    runs: list[list[int]] = []
    for x in items:
        if runs and x == runs[-1][-1] + 1:
            runs[-1].append(x)
        else:
            runs.append([x])
    return runs
