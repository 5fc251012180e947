"""SGLang loads a Fun-ASR-Nano's text model as funrl exports it, and decodes the family's prompt
embeddings as the HF engine does (issue 13). Runs in the SGLang environment, for real, on CPU:
``$SGLANG_PY -m pytest -q -m sglang tests/rollout``.

The model is a tiny random-weight Fun-ASR-Nano built with transformers' own classes (its Qwen3
text model is what SGLang serves). The family side (processor, audio encoder, the text-LM export,
the HF engine's greedy tokens) runs in funrl's main environment (``.venv``, which ``make test``
builds first): the SGLang env's transformers 5.19 refuses Fun-ASR-Nano's feature extractor without
torchaudio. SGLang computes in bf16 and the HF engine in float32, so a greedy token may differ
only where the float32 top-2 logits are within ``TIE_MARGIN``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from funrl.rollout.config import SGLangConfig
from funrl.rollout.hf_engine import HFEngine
from funrl.rollout.protocol import SamplingParams

pytestmark = pytest.mark.sglang
TIE_MARGIN = 0.25
MAIN_PY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"

FAMILY_SIDE = """
import json, sys
from pathlib import Path
import numpy as np, soundfile as sf, torch
from safetensors.torch import save_file
from funrl.models.families import load_audio_llm
from funrl.models.families.testing import build_fun_asr_nano, chirp
from funrl.rollout.hf_engine import HFEngine
from funrl.rollout.protocol import SamplingParams
out = Path(sys.argv[1])
torch.set_num_threads(1)
rows = []
for i, seconds in enumerate((1.2, 2.0)):
    sf.write(out / f"a{i}.wav", chirp(seconds, seed=i).astype(np.float32), 16000)
    rows.append({"audio": str(out / f"a{i}.wav"), "text": "", "language": "en", "hotwords": []})
adapter = load_audio_llm(build_fun_asr_nano(out / "nano"))
with torch.inference_mode():
    embeds = [e.float().contiguous() for e in adapter.prompt_embeds(rows)]
adapter.save_text_lm(out / "text_lm")  # what funrl train writes as RUN_DIR/text_lm (and exports as model/llm)
save_file({str(i): e for i, e in enumerate(embeds)}, str(out / "embeds.safetensors"))
hf = HFEngine(out / "text_lm").generate(embeds, 1, SamplingParams(temperature=0.0, max_new_tokens=8, stop_token_ids=[-1]))
(out / "hf_tokens.json").write_text(json.dumps(hf.token_ids))
"""


def test_sglang_greedy_from_family_prompt_embeds_equals_hf_engine(tmp_path):
    from funrl.rollout.sglang_engine import SGLangEngine

    if not MAIN_PY.is_file():
        pytest.fail(f"{MAIN_PY} not found: run `make setup` first (make test does)")
    subprocess.run([str(MAIN_PY), "-c", FAMILY_SIDE, str(tmp_path)], check=True, timeout=300)
    llm_dir = tmp_path / "text_lm"
    loaded = load_file(str(tmp_path / "embeds.safetensors"))
    embeds = [loaded[str(i)] for i in range(len(loaded))]
    want_all = json.loads((tmp_path / "hf_tokens.json").read_text())
    torch.set_num_threads(1)
    sp = SamplingParams(temperature=0.0, max_new_tokens=8, stop_token_ids=[-1])
    assert HFEngine(llm_dir).generate(embeds, 1, sp).token_ids == want_all  # the same HF engine in this env
    eng = SGLangEngine(llm_dir, SGLangConfig(device="cpu", max_total_tokens=2048, context_length=512), seed=0)
    try:
        sg = eng.generate(embeds, 1, sp)
    finally:
        eng.shutdown()
    assert [len(t) for t in sg.token_ids] == [8, 8]
    ref = HFEngine(llm_dir)
    exact = 0
    for prompt, got, want in zip(embeds, sg.token_ids, want_all):
        for t, (g, w) in enumerate(zip(got, want)):
            if g == w:
                exact += 1
                continue
            prefix = torch.tensor(want[:t], dtype=torch.long)  # a bf16 near-tie may flip the argmax
            x = torch.cat([prompt, ref.model.get_input_embeddings()(prefix)])[None]
            top2 = ref.logits(x)[0, -1].topk(2).values
            assert float(top2[0] - top2[1]) < TIE_MARGIN, f"token {t}: SGLang {g}, HF {w}, margin {float(top2[0] - top2[1]):.3f}"
            break  # after a legitimate flip the continuations may differ
    assert exact >= 8  # and mostly exact
