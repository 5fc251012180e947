"""Text → a sequence of phoneme units, the same for a vocabulary term and a hypothesis.

- Mandarin (Han characters): pypinyin, each syllable as its initial (if any) and its final with
  the tone number: 高德 → ``g ao1 d e2``. A wrong tone is one substitution, a wrong initial another.
- English (Latin letters): eSpeak NG's phonemes (its ASCII phoneme names, ``espeak_TextToPhonemes``
  with the ``en`` voice; stress marks dropped): Netflix → ``n E t f l I k s``. Spelling that sounds
  the same gives the same units ("netflicks" too).
- Anything else (digits, other scripts): its characters, lower-cased (the word-piece fallback).

Units are strings; :func:`encode` maps each to one private-use character so that rapidfuzz can
compare unit sequences as strings.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import regex

_HAN = regex.compile(r"\p{Han}+")
_LATIN = regex.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
_TOKENS = regex.compile(r"\p{Han}+|[A-Za-z]+(?:['’][A-Za-z]+)*|[^\s\p{P}\p{S}]")
_ESPEAK_LOCK = threading.Lock()
_PHONEME_SEPARATOR = ord("_") << 8  # espeak_TextToPhonemes: bits 8-23 the separator, mode 0 ASCII names
_UNITS: dict[str, str] = {}  # unit -> one private-use character (encode)


def phonemes(text: str) -> list[str]:
    """The phoneme units of ``text`` (Mandarin, English, and anything else, in order)."""
    out: list[str] = []
    for tok in _TOKENS.findall(text):
        if _HAN.fullmatch(tok):
            out += _pinyin_units(tok)
        elif _LATIN.fullmatch(tok):
            out += _english_units(tok.lower())
        else:
            out += list(tok.lower())
    return out


def encode(units: list[str]) -> str:
    """One character per unit (stable within a process): a string rapidfuzz can align."""
    chars = []
    for u in units:
        c = _UNITS.get(u)
        if c is None:
            c = _UNITS.setdefault(u, chr(0xF0000 + len(_UNITS)))  # supplementary private use area
        chars.append(c)
    return "".join(chars)


def _pinyin_units(han: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    initials = lazy_pinyin(han, style=Style.INITIALS, strict=False)
    finals = lazy_pinyin(han, style=Style.FINALS_TONE3, strict=False, neutral_tone_with_five=True)
    out = []
    for i, f in zip(initials, finals):
        if i:
            out.append(i)
        if f:
            out.append(f)
    return out


@functools.lru_cache(maxsize=65536)
def _english_units_cached(word: str) -> tuple[str, ...]:
    lib = _espeak()
    buf = ctypes.create_string_buffer(word.encode())
    ptr = ctypes.c_void_p(ctypes.addressof(buf))
    parts = []
    with _ESPEAK_LOCK:
        while ptr.value:
            r = lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, _PHONEME_SEPARATOR)  # 1: UTF-8 text
            if not r:
                break
            parts.append(r.decode())
    units = [u.strip("',") for p in parts for chunk in p.split() for u in chunk.split("_")]
    return tuple(u for u in units if u)


def _english_units(word: str) -> list[str]:
    return list(_english_units_cached(word))


@functools.lru_cache(maxsize=1)
def _espeak():
    """eSpeak NG's library with the ``en`` voice, for phonemes only (no audio is made here)."""
    from funrl.data.synth.espeak import Espeak, EspeakError

    lib = Espeak.get()._lib
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    if lib.espeak_SetVoiceByName(b"en") != 0:
        raise EspeakError("eSpeak NG has no 'en' voice: reinstall espeakng-loader")
    return lib
