"""A tiny random Qwen3 causal-LM folder for rollout-engine tests and benchmarks (no model hub).

:func:`make_tiny_qwen3` writes a standard Hugging Face folder (``config.json``, safetensors
weights, a fast tokenizer) that transformers and SGLang both load: a ``Qwen3ForCausalLM`` with a
few layers and a byte-level BPE tokenizer trained on a few sentences, with the ChatML special
tokens (``<|im_start|>``, ``<|im_end|>`` as EOS, ``<|endoftext|>`` as padding). It has the layout
of the real model's ``llm/`` folder, so an engine that loads it loads the real one the same way.

The weights are random but deliberately *peaked* (``initializer_range`` well above Qwen3's 0.02),
so greedy decoding rarely meets near-ties that bf16 rounding could flip between two engines.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "speech recognition turns audio into text with a language model",
    "reinforcement learning rewards the model for fewer word errors",
    "hello world this is a tiny tokenizer for tests",
    "one two three four five six seven eight nine ten",
    "transcribe the following audio clip please",
]


def make_tokenizer(folder: Path, vocab_size: int = 320):
    """Train a byte-level BPE on a fixed corpus and save it as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(str(folder))
    return fast


def make_tiny_qwen3(folder: str | Path, *, layers: int = 2, hidden: int = 64, seed: int = 0,
                    init_range: float = 0.3, tie_word_embeddings: bool = True) -> Path:
    """Write a tiny random ``Qwen3ForCausalLM`` + tokenizer to ``folder`` (bf16 weights)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(folder)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    cfg = Qwen3Config(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=1024,
        initializer_range=init_range, tie_word_embeddings=tie_word_embeddings, eos_token_id=eos,
        pad_token_id=tok.pad_token_id, bos_token_id=None, torch_dtype="bfloat16", rope_theta=10000.0,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(str(folder))
    return folder


def add_tiny_batch_args(ap) -> None:
    """The engine benches' shared flags: batch shape and the tiny model's size."""
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=48)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)


def tiny_batch(args, prefix: str = "funrl-bench-"):
    """``(folder, embeds)``: a tiny random Qwen3 of ``args.layers`` x ``args.hidden`` written to a fresh
    temporary folder and ``args.prompts`` prompt embeddings of ``args.prompt_len`` rows (bf16-exact)."""
    import tempfile

    import torch

    folder = make_tiny_qwen3(tempfile.mkdtemp(prefix=prefix), layers=args.layers, hidden=args.hidden)
    g = torch.Generator().manual_seed(0)
    embeds = [(0.3 * torch.randn(args.prompt_len, args.hidden, generator=g)).to(torch.bfloat16).float()
              for _ in range(args.prompts)]
    return folder, embeds
