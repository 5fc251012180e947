"""Speech data: JSONL manifests, audio loading, fbank features and synthetic eSpeak corpora.

- ``funrl.data.manifest``: :class:`Utterance`, ``load_manifest``, ``write_manifest``,
  ``ManifestError`` (the manifest format is documented there).
- ``funrl.data.audio``: ``load_audio(path, sample_rate=16000)`` -> float32 mono.
- ``funrl.data.features``: ``FbankExtractor``, ``collate``, ``compute_cmvn`` / ``Cmvn``.
- ``funrl.data.synth``: ``synthesize_corpus`` (eSpeak NG, English / Mandarin / code-switched,
  noise, pure-noise clips).
- ``funrl.data.config``: the ``data`` config section.

Submodules are imported on use, so importing this package stays cheap (the eSpeak worker
process imports only ``funrl.data.synth.espeak``).
"""
