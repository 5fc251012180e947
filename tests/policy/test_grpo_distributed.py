"""Data-parallel invariance: 2 gloo ranks x 2 micro-batches give the single-process loss and gradients.

A tiny "policy" (an embedding table and an output matrix) maps the previous token to logits, so the
whole path runs: logits -> token_logprobs -> compute_grpo_loss with global counts -> backward ->
all_reduce(SUM) of the gradients. Each rank gets a different, ragged share of the rows, so the
ranks' token counts differ; only global normalisers make the sum of shares equal the whole.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from funrl.policy.advantages import group_advantages, group_index_from_size
from funrl.policy.config import AlgorithmConfig
from funrl.policy.logprobs import token_logprobs
from funrl.policy.loss import compute_grpo_loss, local_counts

B, T, V, H, G = 8, 7, 11, 4, 4
RANK_ROWS = ([0, 1, 2], [3, 4, 5, 6, 7])  # uneven split across the 2 ranks
CONFIGS = [
    AlgorithmConfig(),  # report form: seq-mean-token-mean, k3, β = 0.04
    AlgorithmConfig(loss_agg_mode="token-mean", clip_high=0.28, dual_clip=3.0, ratio_level="sequence"),
    AlgorithmConfig(loss_agg_mode="seq-mean-token-sum-norm", loss_norm_length=T, kl_estimator="k2"),
]


def make_data():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, V, (B, T + 1), generator=g)  # [B, T+1] previous token -> next token
    lengths = torch.tensor([7, 2, 5, 1, 7, 3, 6, 4])
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2.5  # [B, T]
    ref = old + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.2  # [B, T]
    rewards = torch.rand(B, generator=g, dtype=torch.float64)  # [B]
    adv, _ = group_advantages(rewards, group_index_from_size(B, G))  # driver-side, on the whole step
    return tokens, mask, old, ref, adv


def make_params():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(V, H, generator=g, dtype=torch.float64).requires_grad_()
    out = torch.randn(H, V, generator=g, dtype=torch.float64).requires_grad_()
    return emb, out


def shard_loss(params, rows, cfg, n_tok, n_seq, data):
    tokens, mask, old, ref, adv = (x[rows] for x in data)
    emb, out = params
    logits = emb[tokens[:, :-1]] @ out  # [b, T, V]
    logp, ent = token_logprobs(logits, tokens[:, 1:], temperature=0.7, with_entropy=True)  # [b, T]
    return compute_grpo_loss(logp, old, adv, mask, cfg, ref_logp=ref, entropy=ent, global_num_tokens=n_tok,
                             global_num_seqs=n_seq)


def _worker(rank: int, init: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    data = make_data()
    results = []
    for cfg in CONFIGS:
        params = make_params()
        micro = torch.tensor(RANK_ROWS[rank]).chunk(2)  # 2 micro-batches per rank
        counts = torch.stack([torch.stack(local_counts(data[1][m])) for m in micro]).sum(0)  # [2]
        dist.all_reduce(counts)  # global (tokens, sequences) of the step
        loss = torch.zeros((), dtype=torch.float64)
        for m in micro:
            part, _ = shard_loss(params, m, cfg, counts[0], counts[1], data)
            part.backward()  # gradients accumulate over micro-batches
            loss += part.detach()
        grads = [p.grad for p in params]
        for t in (loss, *grads):
            dist.all_reduce(t)  # SUM over ranks
        results.append((loss, grads, counts))
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_match_single_process(tmp_path):
    mp.spawn(_worker, args=(f"file://{tmp_path}/init", str(tmp_path)), nprocs=2, join=True)
    data = make_data()
    n_tok, n_seq = local_counts(data[1])
    for r in range(2):
        results = torch.load(tmp_path / f"rank{r}.pt")
        for cfg, (loss, grads, counts) in zip(CONFIGS, results):
            params = make_params()
            whole, _ = shard_loss(params, torch.arange(B), cfg, n_tok, n_seq, data)
            whole.backward()
            assert counts.tolist() == [n_tok.item(), n_seq.item()] == [35.0, 8.0]  # 7+2+5+1+7+3+6+4 tokens
            assert abs(loss.item() - whole.item()) < 1e-12, dataclasses.asdict(cfg)
            for got, p in zip(grads, params):
                assert p.grad.abs().sum() > 0
                assert torch.allclose(got, p.grad, atol=1e-12, rtol=0), dataclasses.asdict(cfg)
