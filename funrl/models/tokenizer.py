"""A BPE tokenizer trained locally (``tokenizers``) on corpus text, English and Mandarin.

The model is BPE over characters with a Metaspace pre-tokenizer (spaces become ``▁``, as in
SentencePiece), so every CJK character seen in training is one base symbol and Latin words merge
into sub-words. Characters never seen map to ``<unk>``. The chat-template strings (system prompt,
task prompts, hotword preamble, role names, newlines) are added to the training text so the prompt
always tokenizes without ``<unk>``.

Saved as a transformers ``PreTrainedTokenizerFast`` in the LLM folder, so
``AutoTokenizer.from_pretrained(llm_dir)`` loads it with no funrl code.
"""

from __future__ import annotations

import unicodedata
from typing import Iterable

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|startofspeech|>", "<|endofspeech|>", "<unk>"]
PAD, IM_START, IM_END, SOS, EOS_SPEECH, UNK = SPECIAL_TOKENS


def train_tokenizer(texts: Iterable[str], vocab_size: int, extra_texts: Iterable[str] = ()):
    """Train a BPE on ``texts`` (+ ``extra_texts``, e.g. prompt strings) -> PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [t for t in list(texts) + list(extra_texts) if t]
    if not corpus:
        raise ValueError("train_tokenizer: no text to train on (the training manifest has only empty transcripts?)")
    alphabet = sorted({c for t in corpus for c in unicodedata.normalize("NFKC", t)})
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, len(SPECIAL_TOKENS) + len(alphabet) + 1),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet) + 1,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=IM_END,
        additional_special_tokens=[IM_START, SOS, EOS_SPEECH],
    )


def check_special_tokens(tokenizer) -> None:
    """Raise if a tokenizer lacks the chat-template special tokens (e.g. a foreign LLM folder)."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in SPECIAL_TOKENS[:5] if t not in vocab]
    if missing:
        raise ValueError(
            f"tokenizer lacks the special tokens {missing} that the Fun-ASR prompt needs; "
            "add them with tokenizer.add_special_tokens and resize the LLM's embeddings"
        )
