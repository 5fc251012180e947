"""``funrl eval``: transcribe a manifest greedily and report WER/CER, hallucination, keywords, language.

>>> from funrl.eval import compute_metrics
>>> m = compute_metrics(["turn on the light", ""], [{"text": "turn on the light", "language": "en"},
...                                                  {"text": "", "noise": True}], n_boot=0)
>>> (m["overall"]["error_rate"], m["hallucination_rate"])
(0.0, 0.0)
"""

from funrl.eval.metrics import compute_metrics

__all__ = ["compute_metrics"]
