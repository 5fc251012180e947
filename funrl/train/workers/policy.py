"""Policy role: one Ray actor per FSDP2 rank around :class:`funrl.policy.fsdp_worker.PolicyWorker`.

The driver sends every rank the whole step (prompt embeddings by reference, the rollout batch)
plus the row indices that rank owns; old and reference log-probs stay on the rank that computed
them until its update. Weights go to the rollout engine from rank 0, bucket by bucket, while all
ranks take part in gathering them (FSDP2's all-gathers are collective).
"""

from __future__ import annotations

import socket

import ray
import torch

from funrl.train.workers.base import Worker, prompt_tensors


class PolicyActor(Worker):
    def __init__(self, name: str, cfg, rank: int, world_size: int, device: str = "cpu",
                 torch_threads: int = 1, profile: bool = True):
        super().__init__(name, torch_threads, profile)
        if cfg.policy.world_size != world_size:
            raise ValueError(f"policy.world_size={cfg.policy.world_size} but {world_size} policy actors were placed")
        self.cfg, self.rank, self.device = cfg, rank, device
        self.worker = None
        self.cache: dict[str, dict[int, torch.Tensor]] = {}

    def rendezvous(self) -> str:
        """Rank 0: a torch.distributed address on this node for the other ranks to join."""
        host = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        return f"tcp://{host}:{port}"

    def init_distributed(self, init_method: str) -> None:
        from pathlib import Path

        from funrl.policy.fsdp_worker import PolicyWorker

        from funrl.models.families import text_lm_folder

        dev = "cuda" if self.device == "cuda" else "cpu"
        llm = str(text_lm_folder(self.cfg.model.path, Path(self.cfg.run.output_dir) / self.cfg.run.name))
        self.worker = PolicyWorker(self.cfg.policy, self.cfg.algorithm, llm, rank=self.rank,
                                   init_method=init_method, device=dev, temperature=self.cfg.rollout.temperature)

    def _batch(self, embeds, rollout, idx: list[int], adv=None, with_cache: bool = False):
        from funrl.policy.batch import PolicyBatch

        b = PolicyBatch(
            prompt_embeds=prompt_tensors(embeds),
            prompt_index=[rollout.prompt_index[i] for i in idx],
            completion_ids=[torch.tensor(rollout.token_ids[i], dtype=torch.long) for i in idx],
        )
        if adv is not None:
            b.advantages = adv[idx].float()
            b.rollout_logprobs = [torch.tensor(rollout.logprobs[i], dtype=torch.float32) for i in idx]
        if with_cache:
            if "old" in self.cache:
                b.old_logprobs = [self.cache["old"][i] for i in idx]
            if "ref" in self.cache:
                b.ref_logprobs = [self.cache["ref"][i] for i in idx]
        return b

    def compute_logprobs(self, step: int, embeds, rollout, idx: list[int], which: str) -> None:
        with self.rec.span(f"logprob_{which}", step=step) as s:
            lps = self.worker.compute_logprobs(self._batch(embeds, rollout, idx), which)
            s.args["tokens"] = sum(len(rollout.token_ids[i]) for i in idx)
        self.cache[which] = dict(zip(idx, lps))

    def update(self, step: int, embeds, rollout, adv: torch.Tensor, idx: list[int]) -> dict:
        from pathlib import Path

        from funrl.profiling import torch_profile

        run_dir = Path(self.cfg.run.output_dir) / self.cfg.run.name
        with self.rec.span("update", step=step) as s, torch_profile(run_dir, step, self.cfg.profile.torch_steps, self.name):
            batch = self._batch(embeds, rollout, idx, adv, with_cache=True)
            metrics = self.worker.update(batch, max_response_length=self.cfg.rollout.max_new_tokens)
            s.args["tokens"] = sum(len(rollout.token_ids[i]) for i in idx)
        self.cache = {}
        return metrics

    def push_weights(self, rollout_actor, bucket_bytes: int, step: int) -> int:
        """All ranks gather what trains; rank 0 sends each bucket to the rollout engine. Returns bytes sent.

        What: :meth:`funrl.policy.fsdp_worker.PolicyWorker.export_update` (LoRA: the adapter only;
        full fine-tuning: the parameters that train). How: :func:`send_buckets`, through shared
        memory when the rollout actor is on this node, else packed through the object store.
        """
        sent = 0
        with self.rec.span("weight_sync", step=step) as s:
            stream = self.worker.export_update(bucket_bytes)
            if self.rank == 0:
                sent = send_buckets(stream, rollout_actor, step, self._channel(rollout_actor))
                s.args["transport"] = "shm" if self._chan else "packed"
            else:
                for _ in stream:  # the gathers are collective: every rank walks the whole stream
                    pass
            s.args["bytes"] = sent
        return sent

    def _channel(self, rollout_actor):
        """A :class:`ShmChannel` if the rollout actor shares this node and it has /dev/shm, else None (asked once)."""
        if not hasattr(self, "_chan"):
            from funrl.train.transport import ShmChannel, shm_available

            same = ray.get(rollout_actor.node_id.remote()) == ray.get_runtime_context().get_node_id()
            self._chan = ShmChannel(self.cfg.run.name) if same and shm_available() else None
        return self._chan

    # ---- inspection (tests, debugging); collective like everything on this actor
    def exported(self) -> list[dict[str, torch.Tensor]]:
        return [{n: t.detach().cpu() for n, t in b} for b in self.worker.export_weights(1 << 30)]

    def score(self, embeds, completions: list[list[int]], prompt_index: list[int]) -> list[torch.Tensor]:
        """Log-probs of given completions under the current policy (no update)."""
        from funrl.policy.batch import PolicyBatch

        b = PolicyBatch(prompt_tensors(embeds), list(prompt_index), [torch.tensor(c, dtype=torch.long) for c in completions])
        return [t.cpu() for t in self.worker.compute_logprobs(b, "old")]

    def export_model(self, out: str) -> None:
        """Write the trained policy as a complete model folder (collective; rank 0 writes).

        The audio side (encoder, adaptor, CTC head) is frozen during GRPO, so it comes from
        ``model.path``; the text LM gets the LoRA-merged weights. A transformers family is written
        in its own format (its ``from_pretrained``, processor and ``generate`` work on it) with the
        text LM beside it as a plain causal-LM folder (``llm/``); a funrl folder as a funrl folder.
        Under LoRA the PEFT adapter goes to ``adapter/`` as well (on the text LM's module names).
        """
        import shutil
        from pathlib import Path

        from funrl.models.families import load_audio_llm

        state = {}
        for bucket in self.worker.export_weights(1 << 30):
            if self.rank == 0:
                state.update({n: t.detach().cpu() for n, t in bucket})
        dst = Path(out)
        tmp = dst.with_name(dst.name + ".tmp")
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        if self.cfg.policy.lora.enabled:  # the PEFT adapter too (collective: every rank gathers)
            from funrl.policy.checkpoint import save_adapter

            save_adapter(self.worker, str(tmp))
        if self.rank != 0:
            return
        load_audio_llm(self.cfg.model.path).export(tmp, state)
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)

    def save(self, path: str) -> None:
        self.worker.save(path)

    def load(self, path: str) -> None:
        self.worker.load(path)

    def sleep(self, step: int | None = None) -> None:
        if self.worker is not None:
            with self.rec.span("sleep", step=step):
                self.worker.sleep()

    def wake(self, step: int | None = None) -> None:
        with self.rec.span("wake", step=step):
            self.worker.wake()


def send_buckets(stream, rollout_actor, step: int, channel=None) -> int:
    """Send ``(kind, bucket)`` pairs to ``rollout_actor.update_weights``, pipelined; returns bytes sent.

    With a :class:`funrl.train.transport.ShmChannel`, bucket k goes into region ``k % 2`` and only
    its table crosses Ray: the call for bucket k is sent without waiting, the next bucket is
    gathered (``stream``) while the engine loads k, and a region is rewritten only after the call
    that read it has returned; then the region files are unlinked (the mappings live on). Without
    one, each bucket is packed into the object store
    (:class:`funrl.train.transport.PackedTensors`), equally pipelined.
    """
    from funrl.train.transport import PackedTensors

    sent, pending = 0, {}
    for k, (kind, bucket) in enumerate(stream):
        slot = k % 2
        if slot in pending:
            ray.get(pending.pop(slot))  # the engine is done with this region
        payload = channel.write(slot, bucket) if channel is not None else PackedTensors.pack(bucket)
        pending[slot] = rollout_actor.update_weights.remote(payload, step, kind)
        sent += payload.nbytes
    ray.get(list(pending.values()))
    if channel is not None:
        channel.unlink()  # the receiver has mapped every region: no file is left to orphan
    return sent
