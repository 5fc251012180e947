"""The plain side of bench/real_size.py: the same GRPO steps in one process, no Ray, no roles.

    .venv/bin/python bench/_plain_grpo.py '<json spec>'     # run by bench/real_size.py; prints PLAIN_RESULT {json}

What a user would write with transformers and peft alone: load the family model, LoRA (peft) on
its text LM, and per step: the family's processor and audio encoder make the prompt embeddings
(``FamilyAdapter.prompt_embeds``, the placeholder merge); HF ``generate`` samples G completions per
prompt from ``inputs_embeds`` (left-padded, temperature 1, no top-k/top-p, ``min_new_tokens`` =
``max_new_tokens`` so every completion has the full length, as funrl's out-of-vocabulary stop id
does); reward 1 - WER (jiwer) against the transcript; group-normalised advantages; a reference
pass with the adapter disabled (β > 0); one forward+backward of the GRPO loss (token ratios to the
detached current log-probs, clip ε = 0.2, k3 KL, per-sequence then batch mean: funrl's defaults)
and one AdamW step (grad-norm clip 1). Logits only for the completion positions
(``logits_to_keep``), as funrl's policy does. Nothing is synced: generation uses the training
module itself (LoRA unmerged), as TRL does without vLLM.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def left_pad(embeds: list, rows: int = 1):
    """``[B, L, H]`` left-padded embeddings and their ``[B, L]`` attention mask."""
    import torch

    L, H = max(e.shape[0] for e in embeds), embeds[0].shape[1]
    x = torch.zeros(len(embeds), L, H, dtype=embeds[0].dtype)
    mask = torch.zeros(len(embeds), L, dtype=torch.long)
    for i, e in enumerate(embeds):
        x[i, L - e.shape[0]:] = e
        mask[i, L - e.shape[0]:] = 1
    return x, mask


def completion_logprobs(model, prompt, mask, comp):
    """``[N, T]`` log-probs of the completion tokens ``comp`` after the left-padded ``prompt``."""
    import torch

    T = comp.shape[1]
    tok_embeds = model.get_input_embeddings()(comp)  # [N, T, H]
    x = torch.cat([prompt, tok_embeds], 1)
    m = torch.cat([mask, torch.ones_like(comp)], 1)
    pos = (m.cumsum(-1) - 1).clamp(min=0)
    logits = model(inputs_embeds=x, attention_mask=m, position_ids=pos, logits_to_keep=T + 1).logits[:, :-1]
    return torch.log_softmax(logits.float(), -1).gather(-1, comp[..., None]).squeeze(-1)  # [N, T]


def grpo_loss(lp, ref, adv, eps: float = 0.2, beta: float = 0.04):
    import torch

    ratio = torch.exp(lp - lp.detach())
    a = adv[:, None]
    surr = -torch.min(ratio * a, ratio.clamp(1 - eps, 1 + eps) * a)
    d = (ref - lp).clamp(-20, 20)
    kl = (torch.exp(d) - d - 1).clamp(-10, 10)
    return (surr + beta * kl).mean(-1).mean()


def rewards(texts: list[str], refs: list[str]) -> list[float]:
    import jiwer

    return [max(0.0, 1.0 - jiwer.wer(r, t)) if t.strip() else 0.0 for t, r in zip(texts, refs)]


def run(spec: dict) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from funrl.data.manifest import load_manifest
    from funrl.models.families import load_family

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    B, G, T = spec["prompts"], spec["group"], spec["max_new"]
    t0 = time.perf_counter()
    fam = load_family(spec["model"])
    fam.model.requires_grad_(False)
    lm = get_peft_model(fam.text_lm(), LoraConfig(r=spec["lora_r"], lora_alpha=2 * spec["lora_r"], lora_dropout=0.0,
                                                  target_modules=spec["lora_targets"]))
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-5)
    load_s = time.perf_counter() - t0
    rows = [u.to_dict() for u in load_manifest(spec["manifest"])]
    tok, steps = fam.tokenizer, []
    for step in range(spec["steps"]):
        ph, t_step = {}, time.perf_counter()
        batch = [rows[(step * B + i) % len(rows)] for i in range(B)]
        t = time.perf_counter()
        with torch.no_grad():
            prompt, mask = left_pad([e.float() for e in fam.prompt_embeds(batch)])
        ph["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        with torch.no_grad():
            comp = lm.generate(inputs_embeds=prompt, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                               top_p=1.0, max_new_tokens=T, min_new_tokens=T, num_return_sequences=G,
                               pad_token_id=tok.pad_token_id)  # [B*G, T]
        ph["rollout"] = time.perf_counter() - t
        t = time.perf_counter()
        r = torch.tensor(rewards(tok.batch_decode(comp, skip_special_tokens=True),
                                 [b["text"] for b in batch for _ in range(G)])).view(B, G)
        adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).flatten()
        ph["reward"] = time.perf_counter() - t
        prompt_g, mask_g = prompt.repeat_interleave(G, 0), mask.repeat_interleave(G, 0)
        t = time.perf_counter()
        with torch.no_grad(), lm.disable_adapter():
            ref = completion_logprobs(lm, prompt_g, mask_g, comp)
        ph["logprob_ref"] = time.perf_counter() - t
        t = time.perf_counter()
        loss = grpo_loss(completion_logprobs(lm, prompt_g, mask_g, comp), ref, adv)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in lm.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ph["update"] = time.perf_counter() - t
        steps.append({"step": step, "wall_s": time.perf_counter() - t_step, "phases": ph,
                      "tokens": int(comp.numel()), "loss": float(loss.detach())})
        print(f"plain step {step}: {steps[-1]['wall_s']:.1f} s {json.dumps({k: round(v, 2) for k, v in ph.items()})}",
              file=sys.stderr, flush=True)
    return {"load_s": load_s, "steps": steps, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


if __name__ == "__main__":
    print("PLAIN_RESULT " + json.dumps(run(json.loads(sys.argv[1]))), flush=True)
