"""``funrl sft``: the supervised warm start of the audio LLM (cross-entropy on the target + CTC)."""
