"""The corpus's hotword vocabulary, ``hotwords.txt``: the domain's rare terms plus sound-alike
distractors, so that hotword retrieval (:mod:`funrl.hotwords`) has real confusions to resolve.

Distractors, deterministic in the seed:
- English: each rare term with one or two letters swapped for a letter that sounds near it
  (b/p, d/t, g/k, v/f, s/z, m/n, and vowels among themselves): Ingrid → Inkrid, Ingred, ...;
- Mandarin: each rare term with one character replaced by one whose pinyin differs only in its
  tone or only in its initial (from a pool of common characters): 张伟 → 章伟, 张尾, ...;
- invented names, places, brands and technical terms in both languages (2-4 syllables or
  characters), so the list is large like a real user vocabulary.
Every distractor differs from every rare term; the list is sorted and one term a line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from funrl.data.synth.domain import RARE

NEAR = {"b": "p", "p": "b", "d": "t", "t": "d", "g": "k", "k": "g", "v": "f", "f": "v", "s": "z", "z": "s",
        "m": "n", "n": "m", "a": "e", "e": "i", "i": "e", "o": "u", "u": "o", "c": "k", "y": "i", "r": "l", "l": "r"}
POOL = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天而"
        "能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进"
        "把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西"
        "再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车"
        "白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建"
        "南度统色字请交爱让章伟尾维李理娜纳芳方赵照敏民欧阳修秀支付宝微信淘宝抖音德地图乌鲁木齐呼和浩特西双版纳景镇")
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "ch", "br", "tr", "kl", "st"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ee", "oo", "ia"]
CODAS = ["", "", "n", "r", "s", "l", "k", "m"]


def rare_terms() -> list[str]:
    return sorted({t for ts in RARE.values() for t in ts})


def _pinyin(ch: str) -> tuple[str, str]:
    from pypinyin import Style, lazy_pinyin

    return (lazy_pinyin(ch, style=Style.INITIALS, strict=False)[0],
            lazy_pinyin(ch, style=Style.FINALS_TONE3, strict=False, neutral_tone_with_five=True)[0])


def _sound_alike_chars() -> dict[str, list[str]]:
    """char -> the pool's characters whose pinyin differs only in tone or only in initial."""
    py = {c: _pinyin(c) for c in dict.fromkeys(POOL)}
    out: dict[str, list[str]] = {}
    for c, (ini, fin) in py.items():
        base = fin.rstrip("012345")
        out[c] = [d for d, (i2, f2) in py.items() if d != c and (
            (i2 == ini and f2.rstrip("012345") == base and f2 != fin) or (f2 == fin and i2 != ini))]
    return out


def distractors(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sound-alike or invented terms, none of them a rare term."""
    rng = np.random.default_rng([seed, 7])
    rare = rare_terms()
    taken = set(rare)
    out: list[str] = []

    def add(t: str) -> None:
        if t and t not in taken:
            taken.add(t)
            out.append(t)

    alike = _sound_alike_chars()
    for _ in range(8):  # sound-alikes of every rare term first
        for t in rare:
            if t.isascii():
                chars = list(t)
                for _ in range(int(rng.integers(1, 3))):
                    idx = [i for i, c in enumerate(chars) if c.lower() in NEAR]
                    if idx:
                        i = int(rng.choice(idx))
                        swap = NEAR[chars[i].lower()]
                        chars[i] = swap.upper() if chars[i].isupper() else swap
                add("".join(chars))
            else:
                idx = [i for i, c in enumerate(t) if alike.get(c)]
                if idx:
                    i = int(rng.choice(idx))
                    add(t[:i] + str(rng.choice(alike[t[i]])) + t[i + 1:])
    while len(out) < n:  # then invented names, places, brands and terms, half of them Mandarin
        if rng.random() < 0.5:
            k = int(rng.integers(2, 5))
            add("".join(str(rng.choice(ONSETS)) + str(rng.choice(VOWELS)) + str(rng.choice(CODAS))
                        for _ in range(k)).capitalize())
        else:
            add("".join(str(rng.choice(list(POOL))) for _ in range(int(rng.integers(2, 5)))))
    return out[:n]


def write_hotword_list(path: str | Path, n_distractors: int = 1200, seed: int = 0) -> Path:
    """``hotwords.txt``: the rare terms and ``n_distractors`` distractors, sorted, one a line."""
    path = Path(path)
    terms = sorted(set(rare_terms()) | set(distractors(n_distractors, seed)))
    path.write_text("# funrl data synth: the domain's rare terms and sound-alike distractors\n"
                    + "\n".join(terms) + "\n", encoding="utf-8")
    return path
