"""Play an audio file into a streaming transcription and print the partial results as they come.

    .venv/bin/python examples/stream_file.py AUDIO.wav [--model DIR] [--chunk-ms 720] [--rollback 5]
        [--realtime]

Each line is the text shown after another chunk of audio (``funrl.streaming``: the model gets the
audio so far and continues the committed text, revising only its last ``--rollback`` tokens). With
``--realtime`` it waits as long as the chunk lasts, as a live microphone would.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_MODEL = Path(__file__).resolve().parent / "checkpoints" / "tiny_fun_asr_nano"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("audio")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--chunk-ms", type=int, default=720)
    ap.add_argument("--rollback", type=int, default=5)
    ap.add_argument("--language", default=None, help="the prompt's language hint (en, zh), if any")
    ap.add_argument("--realtime", action="store_true", help="wait out each chunk's duration")
    a = ap.parse_args(argv)

    from funrl.data.audio import audio_info
    from funrl.models.families import load_audio_llm
    from funrl.streaming import StreamingDecoder
    from funrl.streaming.family import continue_fn

    model = load_audio_llm(a.model)
    row = {"audio": a.audio, "text": "", "language": a.language, "hotwords": []}
    duration = float(audio_info(a.audio).duration)
    cont = continue_fn(model, row)

    def shown(audio_s, prefix):
        if a.realtime:
            time.sleep(min(a.chunk_ms / 1000, audio_s))
        out = cont(audio_s, prefix)
        print(f"[{audio_s:5.2f} s] {model.tokenizer.decode(prefix + out, skip_special_tokens=True)}", flush=True)
        return out

    res = StreamingDecoder(shown, a.chunk_ms / 1000, a.rollback).run(duration)
    first = f"{res.first_token_s:.2f} s" if res.first_token_s is not None else "none"
    print(f"final: {model.tokenizer.decode(res.tokens, skip_special_tokens=True)}")
    print(f"first token after {first} of audio; {res.revisions} revised tokens; real-time factor {res.rtf:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
