"""TRL's half of bench/vs_trl.py: GRPOTrainer on the same LLM, run in the TRL bench env.

Run by bench/vs_trl.py as ``$TRL_PY bench/_trl_side.py '<json spec>'`` (the env from
bench/trl_env.sh; funrl is not installed there, so nothing here imports it). Prints one line
``TRL_RESULT {json}`` with per-step wall times and generated-token counts.

Settings mirror the funrl side: text prompts whose token counts equal funrl's prompt-embedding
lengths, ``num_generations`` = G, B prompts per optimizer step (one generation per step,
``gradient_accumulation_steps`` = 1, all B·G rows in one forward/backward like funrl's single
micro-batch), ``loss_type="grpo"`` (funrl's default seq-mean-token-mean), group-std advantages,
β = ``kl``, AdamW at constant ``lr``, grad-norm clip 1.0, temperature 1, no top-k/top-p. With
``force_length`` generation is forced to ``max_new`` tokens (``min_new_tokens``). The reward is
a cheap character similarity to the transcript (funrl's reward actors score WER; both are a few
milliseconds and both are timed inside the step).
"""

from __future__ import annotations

import difflib
import json
import sys
import tempfile
import time


def text_of_length(tok, base: str, n: int) -> str:
    """A text that ``tok`` encodes to exactly ``n`` ids: repeat ``base``, cut at token ``n``, re-check."""
    reps = 1
    while len(tok(text=(base + " ") * reps)["input_ids"]) < n + 8:
        reps += 1
    ids = tok(text=(base + " ") * reps)["input_ids"]
    for cut in list(range(n, n + 8)) + list(range(n - 1, max(n - 8, 0), -1)):
        t = tok.decode(ids[:cut], skip_special_tokens=True)
        if len(tok(text=t)["input_ids"]) == n:
            return t
    raise ValueError(f"could not build a text of exactly {n} tokens from {base!r}")


# Timed TRL methods (wrapped on the instance, behaviour unchanged) -> phase names in the output.
# compute_loss runs the policy forward with grad; training_step holds generation, scoring, the
# reference pass, the loss forward and the backward; the optimizer step is outside it.
TIMED = {"_generate_single_turn": "generate", "_calculate_rewards": "reward",
         "_prepare_inputs": "prepare_inputs (generate+score+ref)", "compute_loss": "loss forward",
         "training_step": "training_step (all but the optimizer step)"}


def time_methods(trainer, acc: dict[str, float]) -> None:
    import functools
    import torch

    def wrap(name, label, fn):
        @functools.wraps(fn)
        def timed(*a, **kw):
            t = time.time()
            try:
                return fn(*a, **kw)
            finally:
                acc[label] = acc.get(label, 0.0) + time.time() - t
        return timed

    for name, label in TIMED.items():
        setattr(trainer, name, wrap(name, label, getattr(trainer, name)))
    logps = trainer._get_per_token_logps_and_entropies

    @functools.wraps(logps)
    def timed_logps(*a, **kw):
        t = time.time()
        try:
            return logps(*a, **kw)
        finally:
            label = "logps forward, no grad (ref)" if not torch.is_grad_enabled() else "logps forward, grad"
            acc[label] = acc.get(label, 0.0) + time.time() - t
    trainer._get_per_token_logps_and_entropies = timed_logps


def main(spec: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(spec["threads"])
    tok = AutoTokenizer.from_pretrained(spec["llm"])
    rows = [{"prompt": text_of_length(tok, p["text"], p["prompt_len"]), "ref": p["text"]} for p in spec["prompts"]]
    lens = [len(tok(text=r["prompt"])["input_ids"]) for r in rows]

    def similarity(completions, ref, **_):
        return [difflib.SequenceMatcher(None, c, r).ratio() for c, r in zip(completions, ref)]

    class Timer(TrainerCallback):
        def __init__(self):
            self.begin, self.end, self.tokens, self.phases, self.acc = [], [], [], [], {}

        def on_step_begin(self, args, state, control, **kw):
            self.begin.append(time.time())

        def on_step_end(self, args, state, control, **kw):
            self.end.append(time.time())
            self.phases.append(self.acc.copy())
            self.acc.clear()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                self.tokens.append(logs["completions/mean_length"] * spec["prompts_per_step"] * spec["group"])

    B, G, T = spec["prompts_per_step"], spec["group"], spec["max_new"]
    out = tempfile.mkdtemp(prefix="funrl-bench-trl-")
    args = GRPOConfig(
        output_dir=out, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
        max_steps=spec["steps"], per_device_train_batch_size=B * G, gradient_accumulation_steps=1,
        num_generations=G, max_completion_length=T,
        generation_kwargs={"min_new_tokens": T} if spec["force_length"] else None,
        temperature=1.0, top_p=1.0, top_k=0, learning_rate=spec["lr"], lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, beta=spec["kl"], epsilon=0.2,
        loss_type="grpo", scale_rewards="group", num_iterations=1, seed=spec["seed"],
        dataloader_num_workers=0, bf16=False, fp16=False, disable_dropout=True,
    )
    peft_config = None
    if spec["lora"]:
        from peft import LoraConfig

        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = AutoModelForCausalLM.from_pretrained(spec["llm"], dtype=torch.float32)
    timer = Timer()
    trainer = GRPOTrainer(model=model, reward_funcs=similarity, args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tok, peft_config=peft_config, callbacks=[timer])
    time_methods(trainer, timer.acc)
    t0 = time.time()
    trainer.train()
    intervals = [b - a for a, b in zip(timer.end, timer.end[1:])]  # step end to step end
    return {
        "trl_version": __import__("trl").__version__, "torch_version": torch.__version__,
        "train_s": time.time() - t0, "step_span_s": [e - b for b, e in zip(timer.begin, timer.end)],
        "interval_s": intervals, "phases": timer.phases, "tokens_per_step": timer.tokens, "prompt_len_mean": sum(lens) / len(lens),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }


if __name__ == "__main__":
    print("TRL_RESULT " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
