"""The Fun-ASR-style audio LLM: encoder -> adaptor -> causal LM (+ CTC head), its prompt, I/O, generation.

>>> from funrl.models import load_pretrained, build_prompt_embeds, generate    # doctest: +SKIP
>>> model, tok = load_pretrained("examples/checkpoints/tiny_warmstart")        # doctest: +SKIP
"""

from funrl.models.audio_llm import AudioLLM, build_model
from funrl.models.config import ModelConfig, PromptConfig
from funrl.models.generation import decode, generate
from funrl.models.io import load_pretrained, save_pretrained
from funrl.models.prompt import Prompts, build_prompt_embeds, completion_logprobs, pack_completions
from funrl.models.tokenizer import train_tokenizer

__all__ = [
    "AudioLLM", "ModelConfig", "PromptConfig", "Prompts", "build_model", "build_prompt_embeds",
    "completion_logprobs", "decode", "generate", "load_pretrained", "pack_completions", "save_pretrained",
    "train_tokenizer",
]
