"""A small command-style sentence domain in English, Mandarin and code-switched Mandarin/English.

The domain is deliberately tiny (about 230 distinct words, sentences of 3-10 words, 1-4 s of
speech) so that a ~4M-parameter ASR model can learn it in minutes on a CPU, yet it has what the
RL rewards need: rare keywords (names, brands, places, technical terms) that a model misses
without help, listed in ``keywords``, and hotword lists (``hotwords``) that hold the sentence's
keywords plus distractors from the same rare-term pool.

Text conventions (the manifest ``text``): English is lower case without punctuation, except that
rare terms keep their usual spelling (``PyTorch``, ``Priya``); Mandarin is written in characters
without spaces; at a switch between Mandarin and English there is one space
(``把文件发给 Priya``, ``send a message to 张伟``).

Templates are strings with ``{slot}`` fields; Mandarin templates separate words with spaces (only
to count words, the text joins them). A slot filled from :data:`RARE` makes that term a keyword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from funrl.streaming.reference import join_words  # the manifest text convention (one implementation)

# rare terms: the keyword pool. slot -> terms
RARE: dict[str, list[str]] = {
    "name": ["Priya", "Dmitri", "Okafor", "Nakamura", "Ingrid", "Rafael"],
    "app": ["Spotify", "Netflix", "Dropbox", "Slack", "Zoom"],
    "pay": ["Venmo", "PayPal", "Alipay", "Stripe"],
    "tech": ["Kubernetes", "PyTorch", "Redis", "Nginx", "Postgres", "Grafana"],
    "city": ["Reykjavik", "Nairobi", "Tbilisi", "Valparaiso"],
    "zname": ["张伟", "李娜", "王芳", "赵敏", "欧阳修"],
    "zapp": ["支付宝", "微信", "淘宝", "抖音", "高德地图"],
    "zcity": ["乌鲁木齐", "呼和浩特", "西双版纳", "景德镇"],
}

# common fillers: slot -> phrases (not keywords)
COMMON: dict[str, list[str]] = {
    "when": ["now", "tomorrow", "tonight", "this evening", "after lunch", "on monday", "next week"],
    "onoff": ["on", "off"],
    "device": ["lights", "heater", "fan", "television", "radio", "speaker"],
    "room": ["kitchen", "bedroom", "living room", "office", "garage"],
    "hour": ["six", "seven", "eight", "nine", "ten", "eleven"],
    "part": ["in the morning", "at night"],
    "num": ["two", "three", "four", "five"],
    "machine": ["laptop", "server", "cluster"],
    "zwhen": ["现在", "明天", "今天 晚上", "下午", "周末"],
    "zroom": ["客厅", "卧室", "厨房", "书房"],
    "zdev": ["灯", "空调", "电视", "窗帘"],
    "zonoff": ["打开", "关掉"],
    "zhour": ["六", "七", "八", "九", "十"],
    "znum": ["两", "三", "四"],
}

TEMPLATES: dict[str, list[str]] = {
    "en": [
        "call {name} {when}",
        "send a message to {name}",
        "remind me to call {name} {when}",
        "share this photo with {name}",
        "open {app} on my phone",
        "play some music on {app}",
        "pay the bill with {pay}",
        "send money to {name} with {pay}",
        "restart the {tech} server",
        "show me the {tech} logs",
        "install {tech} on the {machine}",
        "what is the weather in {city} {when}",
        "how far is {city} from here",
        "turn {onoff} the {device} in the {room}",
        "set an alarm for {hour} {part}",
        "book a table for {num} people {when}",
        "please turn {onoff} the {device}",
        "cancel my meeting with {name} {when}",
        "add {name} to the team chat",
        "check the {tech} dashboard",
        "order a taxi to {city}",
    ],
    "zh": [
        "给 {zname} 打 电话",
        "提醒 我 {zwhen} 给 {zname} 发 消息",
        "帮 我 打开 {zapp}",
        "用 {zapp} 付款",
        "把 这 张 照片 发 给 {zname}",
        "{zwhen} {zcity} 天气 怎么样",
        "导航 到 {zcity}",
        "帮 我 订 一 张 去 {zcity} 的 票",
        "把 {zroom} 的 {zdev} {zonoff}",
        "设置 一个 {zhour} 点 的 闹钟",
        "{zwhen} 订 {znum} 个 人 的 位子",
        "请 把 {zdev} {zonoff}",
        "取消 {zwhen} 的 会议",
        "给 {zname} 转 {znum} 百 块 钱",
        "{zwhen} 提醒 我 去 开会",
    ],
    "mixed": [
        "帮 我 打开 {app}",
        "用 {pay} 付款",
        "重启 {tech} 服务器",
        "查看 {tech} 的 日志",
        "把 文件 发 给 {name}",
        "在 {app} 上 播放 音乐",
        "{zwhen} 给 {name} 打 电话",
        "在 {machine} 上 安装 {tech}",
        "send a message to {zname}",
        "open {zapp} on my phone",
        "用 {zapp} 给 {name} 转账",
    ],
}

LANGUAGES = ("en", "zh", "mixed")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_SLOT = re.compile(r"\{(\w+)\}")


def is_zh(word: str) -> bool:
    return bool(_CJK.search(word))


@dataclass(frozen=True)
class Sentence:
    """One sampled sentence: its words (each Mandarin or English), language and keywords."""

    words: tuple[str, ...]
    language: str
    keywords: tuple[str, ...]

    @property
    def text(self) -> str:
        return join_words(self.words)


def sample_sentence(rng: np.random.Generator, language: str) -> Sentence:
    """A random sentence of ``language`` (``en``, ``zh`` or ``mixed``)."""
    if language not in TEMPLATES:
        raise ValueError(f"unknown language {language!r}: expected one of {', '.join(LANGUAGES)}")
    templates = TEMPLATES[language]
    template = templates[int(rng.integers(len(templates)))]
    words: list[str] = []
    keywords: list[str] = []
    for token in template.split():
        slot = _SLOT.fullmatch(token)
        if slot is None:
            words.append(token)
            continue
        name = slot.group(1)
        pool = RARE.get(name) or COMMON[name]
        fill = pool[int(rng.integers(len(pool)))]
        if name in RARE and fill not in keywords:
            keywords.append(fill)
        words.extend(fill.split())
    return Sentence(tuple(words), language, tuple(keywords))


def rare_terms() -> list[str]:
    """Every rare term, in a fixed order (the keyword and distractor pool)."""
    return [t for terms in RARE.values() for t in terms]


def sample_hotwords(rng: np.random.Generator, keywords: tuple[str, ...] | list[str],
                    max_distractors: int = 3) -> list[str]:
    """The sentence's keywords plus 0..max_distractors other rare terms, shuffled."""
    others = [t for t in rare_terms() if t not in keywords]
    k = int(rng.integers(0, max_distractors + 1))
    picks = [others[i] for i in rng.choice(len(others), size=k, replace=False)] if k else []
    hot = list(keywords) + picks
    return [hot[i] for i in rng.permutation(len(hot))]


def vocabulary() -> set[str]:
    """Every distinct word the domain can produce (Mandarin words as segmented in templates)."""
    vocab: set[str] = set()
    for templates in TEMPLATES.values():
        for t in templates:
            vocab.update(w for w in t.split() if not _SLOT.fullmatch(w))
    for pool in (*RARE.values(), *COMMON.values()):
        for phrase in pool:
            vocab.update(phrase.split())
    return vocab
