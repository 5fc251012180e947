"""``examples/stream_file.py``: the streaming demo runs the same code as ``funrl eval --streaming``."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from funrl.data.manifest import load_manifest
from funrl.models.families import load_audio_llm
from funrl.streaming.family import stream_rows

from tests.hotwords.test_rag_eval import WARM, corpus  # noqa: F401 - fixture

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stream_file.py"


def test_stream_file_prints_a_partial_per_chunk_and_the_evals_final_text(corpus, capsys):  # noqa: F811
    spec = importlib.util.spec_from_file_location("stream_file", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    u = next(u for u in load_manifest(corpus / "train.jsonl") if not u.noise)
    row = {**u.to_dict(), "audio": u.audio}
    assert mod.main([str(u.audio), "--model", str(WARM), "--chunk-ms", "500", "--rollback", "3",
                     "--language", u.language]) == 0
    lines = capsys.readouterr().out.splitlines()
    partials = [ln for ln in lines if ln.startswith("[")]
    assert len(partials) == math.ceil(u.duration / 0.5 - 1e-9)
    (want,), _ = stream_rows(load_audio_llm(WARM), [row], 0.5, 3, 64)
    assert lines[-2] == f"final: {want}"
    assert lines[-1].startswith("first token after ")
