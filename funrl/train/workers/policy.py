"""Policy role: one Ray actor per FSDP2 rank around :class:`funrl.policy.fsdp_worker.PolicyWorker`.

The driver sends every rank the whole step (prompt embeddings by reference, the rollout batch)
plus the row indices that rank owns; old and reference log-probs stay on the rank that computed
them until its update. Weights go to the rollout engine from rank 0, bucket by bucket, while all
ranks take part in gathering them (FSDP2's all-gathers are collective).
"""

from __future__ import annotations

import socket
from pathlib import Path

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
        self.files: dict[str, bytes] = {}  # for the driver's run directory (drain_files)

    def rendezvous(self) -> str:
        """Rank 0: a torch.distributed address on this node for the other ranks to join."""
        host = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        return f"tcp://{host}:{port}"

    def init_distributed(self, init_method: str) -> None:
        from funrl.models.families import text_lm_folder
        from funrl.policy.fsdp_worker import PolicyWorker

        from funrl.train.node_files import node_dir

        dev = "cuda" if self.device == "cuda" else "cpu"
        llm = str(text_lm_folder(self.cfg.model.path, node_dir(self.cfg.run.name)))  # on this node
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
        """One optimizer step on this rank's rows. A torch.profiler trace (``profile.torch_steps``)
        is written in this node's scratch and kept for the driver (:meth:`drain_files`)."""
        from funrl.profiling import torch_profile
        from funrl.profiling.torch_capture import torch_trace_path
        from funrl.train.node_files import node_dir

        scratch = node_dir(self.cfg.run.name)
        with self.rec.span("update", step=step) as s, torch_profile(scratch, step, self.cfg.profile.torch_steps, self.name):
            batch = self._batch(embeds, rollout, idx, adv, with_cache=True)
            metrics = self.worker.update(batch, max_response_length=self.cfg.rollout.max_new_tokens)
            s.args["tokens"] = sum(len(rollout.token_ids[i]) for i in idx)
        trace = torch_trace_path(scratch, step, self.name)
        if trace.is_file():
            self.files[trace.relative_to(scratch).as_posix()] = trace.read_bytes()
            trace.unlink()
        self.cache = {}
        return metrics

    def drain_files(self) -> dict[str, bytes]:
        """Files for the run directory written here since the last call (torch.profiler traces),
        by their path relative to it."""
        out, self.files = self.files, {}
        return out

    def push_weights(self, engines, bucket_bytes: int, step: int) -> int:
        """All ranks gather what trains, once; rank 0 sends each bucket to every rollout engine.
        Returns the bytes of one copy of the update.

        What: :meth:`funrl.policy.fsdp_worker.PolicyWorker.export_update` (LoRA: the adapter only;
        full fine-tuning: the parameters that train). How: :func:`send_buckets`: engines on this
        node read it through shared memory, the others one object-store copy of each bucket.
        """
        engines = list(engines) if isinstance(engines, (list, tuple)) else [engines]
        sent = 0
        with self.rec.span("weight_sync", step=step, engines=len(engines)) as s:
            stream = self.worker.export_update(bucket_bytes)
            if self.rank == 0:
                chan, local = self._channel(engines)
                sent = send_buckets(stream, engines, step, chan, local)
                s.args["transport"] = "shm" if all(local) else "packed" if not any(local) else "shm+packed"
            else:
                for _ in stream:  # the gathers are collective: every rank walks the whole stream
                    pass
            s.args["bytes"] = sent
        return sent

    def _channel(self, engines: list) -> tuple:
        """``(ShmChannel or None, [engine on this node?])``: shared memory for the engines on this
        node when it has /dev/shm (asked once)."""
        if not hasattr(self, "_chan"):
            from funrl.train.transport import ShmChannel, shm_available

            here = ray.get_runtime_context().get_node_id()
            self._local = [n == here for n in ray.get([e.node_id.remote() for e in engines])]
            use = any(self._local) and shm_available()
            self._chan = ShmChannel(self.cfg.run.name) if use else None
            self._local = [x and use for x in self._local]
        return self._chan, self._local

    # ---- inspection (tests, debugging); collective like everything on this actor
    def exported(self) -> list[dict[str, torch.Tensor]]:
        return [{n: t.detach().cpu() for n, t in b} for b in self.worker.export_weights(1 << 30)]

    def score(self, embeds, completions: list[list[int]], prompt_index: list[int]) -> list[torch.Tensor]:
        """Log-probs of given completions under the current policy (no update)."""
        from funrl.policy.batch import PolicyBatch

        b = PolicyBatch(prompt_tensors(embeds), list(prompt_index), [torch.tensor(c, dtype=torch.long) for c in completions])
        return [t.cpu() for t in self.worker.compute_logprobs(b, "old")]

    def export_model(self) -> dict[str, bytes] | None:
        """The trained policy as a complete model folder's files (collective; rank 0 returns them,
        the other ranks None): written in this node's scratch and handed to the driver through Ray
        (:mod:`funrl.train.node_files`), which writes it into the run directory.

        The audio side (encoder, adaptor, CTC head) is frozen during GRPO, so it comes from
        ``model.path``; the text LM gets the LoRA-merged weights. A transformers family is written
        in its own format (its ``from_pretrained``, processor and ``generate`` work on it) with the
        text LM beside it as a plain causal-LM folder (``llm/``); a funrl folder as a funrl folder.
        Under LoRA the PEFT adapter goes to ``adapter/`` as well (on the text LM's module names).
        """
        import shutil

        from funrl.models.families import load_audio_llm
        from funrl.train.node_files import pack_folder, scratch_folder

        state = {}
        for bucket in self.worker.export_weights(1 << 30):
            if self.rank == 0:
                state.update({n: t.detach().cpu() for n, t in bucket})
        tmp = str(scratch_folder(self.cfg.run.name, "export")) if self.rank == 0 else ""
        try:
            if self.cfg.policy.lora.enabled:  # the PEFT adapter too (collective: every rank gathers)
                from funrl.policy.checkpoint import save_adapter

                save_adapter(self.worker, tmp)
            if self.rank != 0:
                return None
            load_audio_llm(self.cfg.model.path).export(Path(tmp), state)
            return pack_folder(tmp)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)

    def save(self) -> dict[str, bytes] | None:
        """A checkpoint of the policy (collective): rank 0 writes it in this node's scratch and
        returns its files for the driver to write (:mod:`funrl.train.node_files`); others None."""
        import shutil

        from funrl.train.node_files import pack_folder, scratch_folder

        tmp = str(scratch_folder(self.cfg.run.name, "ckpt")) if self.rank == 0 else ""
        try:
            self.worker.save(tmp)  # only rank 0 writes (funrl.policy.checkpoint)
            return pack_folder(tmp) if self.rank == 0 else None
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)

    def load(self, files: dict[str, bytes]) -> None:
        """Restore from a checkpoint's files (collective): rank 0 writes them in this node's
        scratch and reads them, then broadcasts (funrl.policy.checkpoint); others read nothing."""
        import shutil

        from funrl.train.node_files import scratch_folder, write_folder

        tmp = scratch_folder(self.cfg.run.name, "resume") if self.rank == 0 else None
        try:
            if tmp is not None:
                write_folder(files, tmp / "policy")
            self.worker.load(str(tmp / "policy") if tmp is not None else "")
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def sleep(self, step: int | None = None) -> dict | None:
        """Release the device (GPU: offload; CPU: nothing to free); returns what is still held."""
        if self.worker is not None:
            with self.rec.span("sleep", step=step):
                self.worker.sleep()
        return self.memory(self.device)

    def wake(self, step: int | None = None) -> dict | None:
        with self.rec.span("wake", step=step):
            self.worker.wake()
        return self.memory(self.device)

    def resident_tensors(self) -> list:
        """This rank's shards of the policy (and reference) weights and gradients, the optimizer
        state, and the cached old/reference log-probs."""
        w = self.worker
        if w is None:
            return []
        out = [t for m in (w.model, w.ref) if m is not None for t in (*m.parameters(), *m.buffers())]
        out += [p.grad for p in w.model.parameters() if p.grad is not None]
        out += [v for st in w.optim.state.values() for v in st.values() if torch.is_tensor(v)]
        out += [t for lps in self.cache.values() for t in lps.values()]
        return out


def send_buckets(stream, engines, step: int, channel=None, local: list[bool] | None = None) -> int:
    """Send ``(kind, bucket)`` pairs to each engine's ``update_weights``, pipelined; returns the
    bytes of one copy (each bucket is gathered once, whatever the number of engines).

    ``engines``: one rollout actor or a list. ``local[i]``: engine ``i`` reads through ``channel``,
    a :class:`funrl.train.transport.ShmChannel` (default: all of them when a channel is given).
    Bucket k goes into region ``k % 2`` and only its table crosses Ray; the calls for bucket k are
    sent without waiting, the next bucket is gathered (``stream``) while the engines load k, and a
    region is rewritten only after every call that read it has returned; then the region files are
    unlinked (the mappings live on). The other engines get the bucket packed
    (:class:`funrl.train.transport.PackedTensors`) and put into the object store once: one copy,
    the same reference to each, equally pipelined.
    """
    from funrl.train.transport import PackedTensors

    engines = list(engines) if isinstance(engines, (list, tuple)) else [engines]
    local = [channel is not None] * len(engines) if local is None else list(local)
    if any(local) and channel is None:
        raise ValueError("send_buckets: local engines need a channel")
    sent, pending = 0, {}
    for k, (kind, bucket) in enumerate(stream):
        slot = k % 2
        if slot in pending:
            ray.get(pending.pop(slot))  # the engines are done with this region
        table = channel.write(slot, bucket) if any(local) else None
        packed = PackedTensors.pack(bucket) if not all(local) else None
        ref = ray.put(packed) if packed is not None and len(engines) > 1 else packed  # one copy for all
        pending[slot] = [e.update_weights.remote(table if loc else ref, step, kind) for e, loc in zip(engines, local)]
        sent += (table or packed).nbytes
    ray.get([r for refs in pending.values() for r in refs])
    if channel is not None and any(local):
        channel.unlink()  # the receivers have mapped every region: no file is left to orphan
    return sent
