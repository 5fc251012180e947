"""Streaming ASR (report §4.2.5; issue 19): the audio arrives chunk by chunk and the model keeps the
text it has committed, revising only its last few tokens.

- :func:`partial_reference`: what a streaming model should have said by a chunk boundary, from word
  timings (``funrl data synth`` writes them from eSpeak's word events; ``funrl data align`` derives
  them by CTC forced alignment);
- :class:`StreamingDecoder` (:mod:`.decode`): the chunk loop with its rollback policy and latency
  figures, over any ``continue_fn``; :mod:`.family`: the transformers families' ``continue_fn`` and
  ``stream_rows`` (``funrl eval --streaming``, ``examples/stream_file.py``);
- :mod:`.training`: streaming-mode training data (``data.streaming``) for ``funrl sft`` and GRPO.
"""

from funrl.streaming.decode import StreamingDecoder, StreamResult
from funrl.streaming.reference import join_words, partial_reference

__all__ = ["StreamResult", "StreamingDecoder", "join_words", "partial_reference"]
