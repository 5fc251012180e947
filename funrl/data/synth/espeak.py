"""eSpeak NG through ctypes, from the shared library shipped in the ``espeakng-loader`` wheel.

The C API used (``speak_lib.h``): ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)``
returns the sample rate (22 050 Hz); ``espeak_SetSynthCallback`` receives int16 chunks;
``espeak_SetVoiceByName("en+m3")`` picks a language voice plus a variant; ``espeak_SetParameter``
sets rate (words per minute) and pitch (0-100); ``espeak_Synth`` runs synchronously. The callback
also receives ``espeak_EVENT`` arrays: each ``espeakEVENT_WORD`` gives a word's character position in
the input and the sample where it starts, which :mod:`funrl.data.synth.timing` turns into word timings.

Thread safety and determinism (checked on espeakng-loader 0.2.4):

- eSpeak keeps its whole state in C globals (current voice, wave generator, callback), so it is
  neither thread-safe nor re-entrant. :class:`Espeak` is a per-process singleton guarded by a lock.
- Output is *not* a pure function of (text, voice, rate, pitch) inside one process: wave-generator
  state carries over from one utterance to the next (and breath noise uses ``rand()``), so the same
  call twice gives slightly different samples, even after ``espeak_Terminate`` + re-initialise.
  A fresh process that makes the same sequence of calls gives byte-identical output. Hence
  :class:`SynthWorker` runs all requests of one corpus, in order, in a fresh worker process,
  re-seeding eSpeak's generator and libc's ``rand()`` before every request. The worker also keeps
  eSpeak out of the caller's process (one process owns it, as its global state demands).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_PITCH = 1, 3
ESPEAK_CHARS_UTF8 = 1
POS_CHARACTER = 1
EE_OK = 0

EVENT_LIST_TERMINATED, EVENT_WORD = 0, 1


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of ``speak_lib.h``."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int),  # 1-based character position in the input
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int),  # ms
                ("sample", ctypes.c_int),  # samples since the start of this synthesis
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Speech:
    """One request's audio and where eSpeak says its words start: ``(character offset in the
    request's text (0-based), first sample)`` per word event."""

    samples: np.ndarray  # int16
    word_starts: tuple[tuple[int, int], ...] = ()


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or refused a request; the message says which and what to do."""


@dataclass(frozen=True)
class SynthRequest:
    """One eSpeak call: ``text`` in the voice's input form (English words, or pinyin with tone
    numbers for ``cmn-latn-pinyin``), ``voice`` as ``language+variant`` (``en+f2``)."""

    text: str
    voice: str
    rate: int = 175  # words per minute (eSpeak's default 175; 80..450 sensible)
    pitch: int = 50  # 0..100 (eSpeak's default 50)


class Espeak:
    """The process-wide eSpeak NG engine (see the module docstring on threads and determinism)."""

    _instance: "Espeak | None" = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - it is an install_requires dependency
            raise EspeakError("the espeakng-loader package is missing: "
                              "pip install espeakng-loader") from e
        lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            self._lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise EspeakError(f"cannot load eSpeak NG from {lib_path}: {e}; "
                              "reinstall espeakng-loader") from e
        self._libc = ctypes.CDLL(None)
        self._declare()
        self.sample_rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                       data_path.encode(), 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data path {data_path} "
                              f"(returned {self.sample_rate}); reinstall espeakng-loader")
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept on self: C holds only a raw pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    @classmethod
    def get(cls) -> "Espeak":
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._libc.srand.argtypes = [ctypes.c_uint]

    def _on_audio(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events and events[i].type != EVENT_LIST_TERMINATED:
            if events[i].type == EVENT_WORD:
                self._words.append((events[i].text_position - 1, events[i].sample))
            i += 1
        return 0  # 0 = continue synthesis

    def synth(self, req: SynthRequest) -> Speech:
        """int16 samples at :attr:`sample_rate` for one request, and its word events."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(req.voice.encode()) != EE_OK:
                raise EspeakError(f"eSpeak has no voice {req.voice!r}; use language+variant names "
                                  "such as 'en', 'en+m3', 'cmn-latn-pinyin+f2'")
            self._lib.espeak_SetParameter(ESPEAK_RATE, int(req.rate), 0)
            self._lib.espeak_SetParameter(ESPEAK_PITCH, int(req.pitch), 0)
            self._lib.espeak_ng_SetRandSeed(1)
            self._libc.srand(1)
            self._chunks, self._words = [], []
            data = req.text.encode("utf-8")
            rc = self._lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0,
                                        ESPEAK_CHARS_UTF8, None, None)
            if rc != EE_OK:
                raise EspeakError(f"espeak_Synth failed (code {rc}) for {req.text!r} "
                                  f"in {req.voice}")
            chunks, words, self._chunks, self._words = self._chunks, self._words, [], []
        return Speech(np.concatenate(chunks) if chunks else np.zeros(0, np.int16), tuple(words))


class SynthWorker:
    """A fresh ``python -m funrl.data.synth.espeak`` process that owns eSpeak; a context manager.

    Requests sent through one worker run in order in that process, so the same sequence of
    calls always gives byte-identical audio (see the module docstring). :meth:`submit` queues a
    chunk and returns at once, so the caller can work on the previous chunk meanwhile; results
    come back in submission order from :meth:`result`. A plain subprocess (not multiprocessing's
    spawn) so that callers need no ``if __name__ == "__main__"`` guard and forked threads are
    never an issue.
    """

    def __enter__(self) -> "SynthWorker":
        self._proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
        self._pending = 0
        return self

    def __exit__(self, *exc) -> None:
        self._proc.stdin.close()
        self._proc.stdout.close()
        self._proc.wait()

    def submit(self, requests: Sequence[SynthRequest]) -> None:
        """Queue one chunk (keep chunks to a few hundred requests: they travel through a pipe)."""
        pickle.dump([tuple(vars(r).values()) for r in requests], self._proc.stdin)
        self._proc.stdin.flush()
        self._pending += 1

    def result(self) -> tuple[int, list[Speech]]:
        """``(sample_rate, [Speech per request])`` of the oldest submitted chunk."""
        if self._pending == 0:
            raise RuntimeError("SynthWorker.result() called with nothing submitted")
        try:
            status, payload = pickle.load(self._proc.stdout)
        except EOFError:
            raise EspeakError(f"the eSpeak worker died (exit code {self._proc.wait()}); its "
                              "stderr above says why") from None
        self._pending -= 1
        if status != "ok":
            raise EspeakError(payload)
        rate, speeches = payload
        return rate, [Speech(*fields) for fields in speeches]

    def run(self, requests: Sequence[SynthRequest]) -> tuple[int, list[Speech]]:
        self.submit(requests)
        return self.result()


def _serve() -> None:
    """Worker loop: read pickled request chunks on stdin, write pickled audio on stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything eSpeak prints goes to stderr, never into the protocol
    inp = sys.stdin.buffer
    engine = None
    while True:
        try:
            chunk = pickle.load(inp)
        except EOFError:
            return
        try:
            engine = engine or Espeak.get()
            # plain tuples: this module runs as __main__ here, so its classes would not unpickle
            reply = ("ok", (engine.sample_rate, [tuple(vars(engine.synth(SynthRequest(*c))).values())
                                                 for c in chunk]))
        except EspeakError as e:
            reply = ("error", str(e))
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    _serve()
