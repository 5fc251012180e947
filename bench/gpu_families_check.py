"""GPU check of funrl.models.families (issue 13), printed as lines of measured differences.

    python bench/gpu_families_check.py

1. Fun-ASR-Nano's fbank: funrl's kaldi-native-fbank against torchaudio's own
   ``compliance.kaldi.fbank`` (where torchaudio is installed, as on the GPU image; not on the dev
   machines) and against the transcription the CPU tests use; then transformers' own
   ``FunAsrNanoFeatureExtractor`` (torchaudio inside) against ``KnfFunAsrNanoFeatureExtractor``.
2. The tiny model of each family on CUDA, fp32 (TF32 off) and bf16: adapter prompt embeddings + text
   LM logits against the family's ``forward``; greedy tokens of funrl's loop against ``generate``.
3. Fun-ASR-Nano at its published size (random weights, built on the GPU) through the adapter: the
   same two comparisons, with times and peak memory.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funrl.models.families import FunAsrNanoAdapter, load_family  # noqa: E402
from funrl.models.families.fbank import kaldi_fbank  # noqa: E402
from funrl.models.families.testing import (BUILDERS, FUN_ASR_NANO_SPECIAL, chirp,  # noqa: E402
                                           qwen2_style_tokenizer)
from funrl.rollout.generation import generate  # noqa: E402
from funrl.rollout.protocol import SamplingParams  # noqa: E402

NEW = 16
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def fbank_check() -> None:
    from tests.models.families.reference_kaldi import torchaudio_fbank

    rng = np.random.default_rng(3)
    waves = {"chirp": chirp(1.3), "noise": (0.3 * rng.standard_normal(12345)).astype(np.float32),
             "quiet": (1e-4 * rng.standard_normal(4000)).astype(np.float32)}
    try:
        import torchaudio
    except ImportError as e:
        print(f"fbank: torchaudio not importable ({e}); skipped")
        return
    print(f"fbank: torchaudio {torchaudio.__version__}")
    for name, w in waves.items():
        ta = torchaudio.compliance.kaldi.fbank(torch.from_numpy(w)[None], num_mel_bins=80, frame_length=25,
                                               frame_shift=10, sample_frequency=16000, window_type="hamming")
        ours, transcribed = kaldi_fbank(w), torchaudio_fbank(torch.from_numpy(w))
        d1, d2 = (ours - ta).abs(), (transcribed - ta).abs()
        print(f"fbank {name:6s} shape {tuple(ta.shape)}: knf vs torchaudio max {d1.max():.2e} mean {d1.mean():.2e}; "
              f"transcription vs torchaudio max {d2.max():.2e}")
    from transformers.models.fun_asr_nano.feature_extraction_fun_asr_nano import FunAsrNanoFeatureExtractor

    from funrl.models.families.fun_asr_nano import KnfFunAsrNanoFeatureExtractor

    clips = [chirp(1.3), chirp(0.61, 900, 200, seed=2)]
    a = FunAsrNanoFeatureExtractor()(clips, sampling_rate=16000)
    b = KnfFunAsrNanoFeatureExtractor()(clips, sampling_rate=16000)
    print(f"extractor: transformers(torchaudio) vs knf: features max diff "
          f"{(a['input_features'] - b['input_features']).abs().max():.2e}, "
          f"masks equal {torch.equal(a['input_features_mask'], b['input_features_mask'])}")


def compare(adapter, rows, label: str) -> None:
    """Logits of the text LM on the prompt embeddings vs the family forward; greedy tokens."""
    lm = adapter.text_lm()
    stop = adapter.stop_token_ids
    with torch.inference_mode():
        t = time.perf_counter()
        embeds = adapter.prompt_embeds(rows)
        sync()
        t_embed = time.perf_counter() - t
        diffs = []
        for row, e in zip(rows, embeds):
            ref = adapter.model(**adapter.on_model(adapter.prompt_inputs([row]))).logits[0].float()
            diffs.append((lm(inputs_embeds=e[None]).logits[0].float() - ref).abs().max().item())
        t = time.perf_counter()
        ours = generate(lm, embeds, 1, SamplingParams(temperature=0, max_new_tokens=NEW, stop_token_ids=stop)).token_ids
        sync()
        t_gen = time.perf_counter() - t
        theirs = []
        for row in rows:
            inputs = adapter.on_model(adapter.prompt_inputs([row]))
            out = adapter.model.generate(**inputs, do_sample=False, max_new_tokens=NEW, eos_token_id=stop,
                                         pad_token_id=adapter.tokenizer.pad_token_id)
            theirs.append(out[0, inputs["input_ids"].shape[1]:].tolist())
        batch = adapter.prompt_embeds(rows)
        single = [adapter.prompt_embeds([r])[0] for r in rows]
        bdiff = max((x - y).abs().max().item() for x, y in zip(batch, single))
    same = [o == th for o, th in zip(ours, theirs)]
    print(f"{label}: logits max diff {max(diffs):.2e}; greedy tokens equal {same}; batched vs single embeds "
          f"{bdiff:.2e}; embed {t_embed:.3f} s, funrl greedy {NEW} tokens {t_gen:.3f} s; "
          f"ours {ours[0][:8]}.. theirs {theirs[0][:8]}..")


def tiny_check(rows) -> None:
    for model_type, build in BUILDERS.items():
        path = Path(tempfile.mkdtemp()) / model_type
        build(path)
        for dtype in (torch.float32, torch.bfloat16):
            compare(load_family(path, dtype=dtype, device=DEVICE), rows, f"tiny {model_type} {dtype}")


def real_size_check(rows) -> None:
    from transformers import FunAsrNanoConfig, FunAsrNanoForConditionalGeneration, FunAsrNanoProcessor

    from funrl.models.families.fun_asr_nano import KnfFunAsrNanoFeatureExtractor

    tok = qwen2_style_tokenizer(FUN_ASR_NANO_SPECIAL)
    config = FunAsrNanoConfig(audio_token_id=tok.convert_tokens_to_ids("<|object_ref_start|>"))
    config._attn_implementation = "sdpa"
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = FunAsrNanoForConditionalGeneration(config)
    torch.cuda.synchronize()
    n = sum(p.numel() for p in model.parameters())
    print(f"real size: {n / 1e6:.1f}M parameters built on the GPU in {time.perf_counter() - t:.1f} s")
    adapter = FunAsrNanoAdapter(model, FunAsrNanoProcessor(KnfFunAsrNanoFeatureExtractor(), tok))
    compare(adapter, rows, "real-size fun_asr_nano fp32")
    adapter.model.to(torch.bfloat16)
    compare(adapter, rows, "real-size fun_asr_nano bf16")
    print(f"real size: peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def main() -> int:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if DEVICE == 'cuda' else 'CPU'}")
    fbank_check()
    d = Path(tempfile.mkdtemp())
    sf.write(d / "rise.wav", chirp(1.3, 150, 2500, seed=0), 16000)
    sf.write(d / "fall.wav", chirp(0.8, 3000, 300, seed=1), 16000)
    rows = [{"audio": str(d / "rise.wav"), "language": "en"}, {"audio": str(d / "fall.wav"), "language": "zh"}]
    tiny_check(rows)
    if DEVICE == "cuda":
        real_size_check(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
