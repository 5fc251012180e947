"""Synthetic speech corpora without any download: eSpeak NG voices, a small command domain with
rare keywords, noise mixing and pure-noise clips. Entry point: ``synthesize_corpus`` in
``funrl.data.synth.corpus`` (or ``funrl data synth``)."""
