"""Streaming ASR (report §4.2.5; issue 19): the audio arrives chunk by chunk and the model keeps the
text it has committed, revising only its last few tokens.

Built so far: :func:`partial_reference` (what a streaming model should have said by a chunk
boundary, from word timings) and :class:`StreamingDecoder` (the chunk loop with its rollback
policy and latency figures) over any ``continue_fn``. Not built yet: word timings in
``funrl data synth`` (eSpeak word events) and ``funrl data align``, the ``continue_fn`` of the audio
LLMs (audio prefix + committed text as the prompt), ``funrl eval --streaming``, the streaming
training data (``data.streaming``) and streaming GRPO.
"""

from funrl.streaming.decode import StreamingDecoder, StreamResult
from funrl.streaming.reference import join_words, partial_reference

__all__ = ["StreamResult", "StreamingDecoder", "join_words", "partial_reference"]
