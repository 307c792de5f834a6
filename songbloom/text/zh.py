"""Mandarin G2P onto the release vocabulary: jieba words, pypinyin syllables, tone sandhi, symbol split.

Every syllable becomes two tokens, an initial and a toned final (``zh`` + ``ir4``); zero-initial
syllables take a placeholder initial (``AA``/``EE``/``OO`` for a/e/o, ``y``/``w`` for i/u/ü). This is
the symbol scheme the released checkpoints were trained on, so the split rules below must not drift.
Input to :func:`chinese_to_phonemes` is a run of CJK characters, possibly with ``, . ! ? … -`` in it.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

PUNCTUATION = ("!", "?", "…", ",", ".", "-")
HANZI_RANGE = "\u4e00-\u9fa5"

_DATA_DIR = Path(__file__).with_name("data")
_lock = threading.Lock()

# Zero-initial pypinyin finals (strict style) -> (placeholder initial, symbol final).
_ZERO_INITIAL = {
    "a": ("AA", "a"), "ai": ("AA", "ai"), "an": ("AA", "an"), "ang": ("AA", "ang"), "ao": ("AA", "ao"),
    "e": ("EE", "e"), "ei": ("EE", "ei"), "en": ("EE", "en"), "eng": ("EE", "eng"), "er": ("EE", "er"),
    "o": ("OO", "o"), "ou": ("OO", "ou"),
    "i": ("y", "i"), "ia": ("y", "a"), "ian": ("y", "En"), "iang": ("y", "ang"), "iao": ("y", "ao"),
    "ie": ("y", "E"), "in": ("y", "in"), "ing": ("y", "ing"), "io": ("y", "o"), "iong": ("y", "ong"),
    "iou": ("y", "ou"),
    "u": ("w", "u"), "ua": ("w", "a"), "uai": ("w", "ai"), "uan": ("w", "an"), "uang": ("w", "ang"),
    "uei": ("w", "ei"), "uen": ("w", "en"), "ueng": ("w", "eng"), "uo": ("w", "o"),
    "v": ("y", "v"), "van": ("y", "van"), "ve": ("y", "ve"), "vn": ("y", "vn"),
}
# Finals spelled differently after an initial (pypinyin strict -> symbol).
_AFTER_INITIAL = {"uei": "ui", "iou": "iu", "uen": "un"}
_RETROFLEX = {"zh", "ch", "sh", "r"}
_DENTAL = {"z", "c", "s"}
_VALID_FINALS = {
    "a", "ai", "an", "ang", "ao", "e", "ei", "en", "eng", "i", "ia", "ian", "iang", "iao", "ie", "in", "ing",
    "iong", "iu", "o", "ong", "ou", "u", "ua", "uai", "uan", "uang", "ui", "un", "uo", "v", "van", "ve", "vn",
}
_INITIALS = {
    "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "zh", "ch", "sh", "r", "z", "c", "s",
}


def syllable_to_symbols(initial: str, final_tone: str) -> tuple[str, str] | None:
    """Map a pypinyin (initial, TONE3 final) pair to the vocabulary's (initial, toned final), or None."""
    if not final_tone or final_tone[-1] not in "12345":
        return None
    final, tone = final_tone[:-1], final_tone[-1]
    if not initial:
        pair = _ZERO_INITIAL.get(final)
        return None if pair is None else (pair[0], pair[1] + tone)
    if initial not in _INITIALS:
        return None
    final = _AFTER_INITIAL.get(final, final)
    if final == "i" and initial in _RETROFLEX:
        final = "ir"
    elif final == "i" and initial in _DENTAL:
        final = "i0"
    if final not in _VALID_FINALS and final not in {"ir", "i0"}:
        return None
    return initial, final + tone


def _load_neutral_words() -> tuple[frozenset[str], frozenset[str]]:
    must, must_not, target = set(), set(), None
    target = must
    for line in (_DATA_DIR / "zh_neutral_tone_words.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("# not"):
            target = must_not
        elif line and not line.startswith("#"):
            target.add(line)
    return frozenset(must), frozenset(must_not)


class ChineseG2P:
    """Chinese text -> vocabulary tokens. Heavy resources (jieba dictionary) load once, lazily."""

    NEUTRAL_END_PARTICLES = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"
    SANDHI_PUNCT = "：，；。？！“”‘’':,;.?!"

    def __init__(self) -> None:
        import jieba
        import jieba.posseg
        from pypinyin import Style, lazy_pinyin

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba
        self._posseg = jieba.posseg
        self._lazy_pinyin = lazy_pinyin
        self._style = Style
        self.neutral_words, self.keep_tone_words = _load_neutral_words()
        with _lock:
            jieba.initialize()

    # ----- pinyin -----------------------------------------------------------------------------------
    def _finals(self, word: str) -> list[str]:
        return self._lazy_pinyin(word, neutral_tone_with_five=True, style=self._style.FINALS_TONE3)

    def _initials(self, word: str) -> list[str]:
        return self._lazy_pinyin(word, neutral_tone_with_five=True, style=self._style.INITIALS)

    # ----- segment merging (so sandhi sees the right word boundaries) -------------------------------
    @staticmethod
    def _merge_bu(seg: list[list[str]]) -> list[list[str]]:
        out: list[list[str]] = []
        pending = False
        for word, pos in seg:
            if pending:
                word, pending = "不" + word, False
            if word == "不":
                pending = True
                continue
            out.append([word, pos])
        if pending:
            out.append(["不", "d"])
        return out

    @staticmethod
    def _merge_yi(seg: list[list[str]]) -> list[list[str]]:
        # 听 一 听 -> 听一听 (verbs only)
        step: list[list[str]] = []
        skip_next = False
        for i, (word, pos) in enumerate(seg):
            if skip_next:
                skip_next = False
                continue
            if (
                step
                and word == "一"
                and i + 1 < len(seg)
                and seg[i - 1][0] == seg[i + 1][0]
                and seg[i - 1][1] == "v"
                and seg[i + 1][1] == "v"
            ):
                step[-1][0] = step[-1][0] + "一" + step[-1][0]
                skip_next = True
                continue
            step.append([word, pos])
        # a lone 一 joins the word after it
        out: list[list[str]] = []
        for word, pos in step:
            if out and out[-1][0] == "一":
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    @staticmethod
    def _merge_repeats(seg: list[list[str]]) -> list[list[str]]:
        out: list[list[str]] = []
        for word, pos in seg:
            if out and word == out[-1][0]:
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    def _merge_third_tones(self, seg: list[list[str]], whole_words: bool) -> list[list[str]]:
        finals = [self._finals(w) for w, _ in seg]
        out: list[list[str]] = []
        merged_prev = False
        for i, (word, pos) in enumerate(seg):
            if i and not merged_prev:
                prev_word = seg[i - 1][0]
                if whole_words:
                    both = all(f[-1] == "3" for f in finals[i - 1]) and all(f[-1] == "3" for f in finals[i])
                else:
                    both = finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
                is_redup = len(prev_word) == 2 and prev_word[0] == prev_word[1]
                if both and not is_redup and len(prev_word) + len(word) <= 3:
                    out[-1][0] += word
                    merged_prev = True
                    continue
            out.append([word, pos])
            merged_prev = False
        return out

    @staticmethod
    def _merge_er(seg: list[list[str]]) -> list[list[str]]:
        out: list[list[str]] = []
        for word, pos in seg:
            if out and word == "儿" and out[-1][0] != "#":
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    def merge_segments(self, seg: list[tuple[str, str]]) -> list[list[str]]:
        merged = self._merge_bu([list(s) for s in seg])
        merged = self._merge_yi(merged)
        merged = self._merge_repeats(merged)
        merged = self._merge_third_tones(merged, whole_words=True)
        merged = self._merge_third_tones(merged, whole_words=False)
        return self._merge_er(merged)

    # ----- tone sandhi ------------------------------------------------------------------------------
    @staticmethod
    def _set_tone(final: str, tone: str) -> str:
        return final[:-1] + tone

    def _bu_sandhi(self, word: str, finals: list[str]) -> None:
        if len(word) == 3 and word[1] == "不":  # 看不懂
            finals[1] = self._set_tone(finals[1], "5")
            return
        for i, ch in enumerate(word[:-1]):
            if ch == "不" and finals[i + 1][-1] == "4":  # 不怕
                finals[i] = self._set_tone(finals[i], "2")

    def _yi_sandhi(self, word: str, finals: list[str]) -> None:
        if "一" in word and all(ch.isnumeric() for ch in word if ch != "一"):
            return  # digit string such as 一零零
        if len(word) == 3 and word[1] == "一" and word[0] == word[2]:  # 看一看
            finals[1] = self._set_tone(finals[1], "5")
        elif word.startswith("第一"):  # ordinal
            finals[1] = self._set_tone(finals[1], "1")
        else:
            for i, ch in enumerate(word[:-1]):
                if ch != "一":
                    continue
                if finals[i + 1][-1] == "4":
                    finals[i] = self._set_tone(finals[i], "2")
                elif word[i + 1] not in self.SANDHI_PUNCT:
                    finals[i] = self._set_tone(finals[i], "4")

    def _split_word(self, word: str) -> list[str]:
        parts = sorted(self._jieba.cut_for_search(word), key=len)
        first = parts[0]
        if word.find(first) == 0:
            return [first, word[len(first) :]]
        return [word[: -len(first)], first]

    def _is_neutral_word(self, word: str) -> bool:
        return word in self.neutral_words or word[-2:] in self.neutral_words

    def _neutral_position(self, word: str, pos: str) -> int | None:
        """The syllable a word-level rule makes neutral (particles, suffixes, directional complements, 个), or None."""
        ge = word.find("个")
        last = word[-1:]
        if last and (last in self.NEUTRAL_END_PARTICLES or last in "的地得"):
            return -1
        if len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
            return -1
        if len(word) > 1 and self._has_neutral_suffix(word, pos):
            return -1
        if (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")) or word == "个":
            return ge
        return -1 if self._is_neutral_word(word) else None

    def _has_neutral_suffix(self, word: str, pos: str) -> bool:
        """们/子 of pronouns and nouns, 上/下/里 of places, 来/去 after a directional verb."""
        last = word[-1]
        return (
            (last in "们子" and pos in {"r", "n"} and word not in self.keep_tone_words)
            or (last in "上下里" and pos in {"s", "l", "f"})
            or (last in "来去" and word[-2] in "上下进出回过起开")
        )

    def _neutral_sandhi(self, word: str, pos: str, finals: list[str]) -> list[str]:
        for j in range(1, len(word)):  # reduplicated nouns/verbs/adjectives: 奶奶 试试
            if word[j] == word[j - 1] and pos[:1] in {"n", "v", "a"} and word not in self.keep_tone_words:
                finals[j] = self._set_tone(finals[j], "5")
        neutral = self._neutral_position(word, pos)
        if neutral is not None:
            finals[neutral] = self._set_tone(finals[neutral], "5")

        parts = self._split_word(word)
        head, tail = finals[: len(parts[0])], finals[len(parts[0]) :]
        for part, sub in zip(parts, (head, tail), strict=True):
            if sub and self._is_neutral_word(part):
                sub[-1] = self._set_tone(sub[-1], "5")
        return head + tail

    @staticmethod
    def _all_third(finals: list[str]) -> bool:
        return all(f[-1] == "3" for f in finals)

    def _third_sandhi(self, word: str, finals: list[str]) -> list[str]:
        if len(word) == 2 and self._all_third(finals):
            finals[0] = self._set_tone(finals[0], "2")
        elif len(word) == 3:
            parts = self._split_word(word)
            if self._all_third(finals):
                if len(parts[0]) == 2:  # 蒙古/包
                    finals[0] = self._set_tone(finals[0], "2")
                    finals[1] = self._set_tone(finals[1], "2")
                elif len(parts[0]) == 1:  # 纸/老虎
                    finals[1] = self._set_tone(finals[1], "2")
            else:
                head, tail = finals[: len(parts[0])], finals[len(parts[0]) :]
                for i, sub in enumerate((head, tail)):
                    if len(sub) == 2 and self._all_third(sub):  # 所有/人
                        sub[0] = self._set_tone(sub[0], "2")
                    elif i == 1 and sub and head and not self._all_third(sub) and sub[0][-1] == head[-1][-1] == "3":
                        head[-1] = self._set_tone(head[-1], "2")  # 好/喜欢
                finals = head + tail
        elif len(word) == 4:  # idioms: two halves of two syllables
            for half in (slice(0, 2), slice(2, 4)):
                sub = finals[half]
                if self._all_third(sub):
                    finals[half.start] = self._set_tone(finals[half.start], "2")
        return finals

    def apply_sandhi(self, word: str, pos: str, finals: list[str]) -> list[str]:
        finals = list(finals)
        self._bu_sandhi(word, finals)
        self._yi_sandhi(word, finals)
        finals = self._neutral_sandhi(word, pos, finals)
        return self._third_sandhi(word, finals)

    # ----- public -----------------------------------------------------------------------------------
    def _sentence_phonemes(self, sentence: str) -> list[str]:
        with _lock:  # jieba's posseg tokenizer is not thread safe
            cut = [(p.word, p.flag) for p in self._posseg.lcut(sentence)]
        phones: list[str] = []
        for word, pos in self.merge_segments(cut):
            if pos == "eng":
                continue
            initials = self._initials(word)
            finals = self.apply_sandhi(word, pos, self._finals(word))
            for ini, fin in zip(initials, finals, strict=False):
                if ini == fin and ini in PUNCTUATION:
                    phones.append(ini)
                    continue
                pair = syllable_to_symbols(ini, fin)
                if pair is None:
                    logger.warning("no vocabulary symbols for pinyin %r%r in %r; syllable skipped", ini, fin, word)
                    continue
                phones.extend(pair)
        return phones

    def __call__(self, text: str) -> list[str]:
        """Phoneme tokens for a CJK run (punctuation from :data:`PUNCTUATION` becomes its own token)."""
        text = normalize_chinese(text)
        sentences = [s for s in re.split(r"(?<=[!?…,.\-])\s*", text) if s.strip()]
        phones: list[str] = []
        for sentence in sentences:
            phones.extend(self._sentence_phonemes(sentence))
        return phones


@lru_cache(maxsize=1)
def _to_simplified():
    from hanziconv import HanziConv

    return HanziConv.toSimplified


def normalize_chinese(text: str) -> str:
    """Traditional -> simplified, 嗯/呣 to readable stand-ins, and drop anything that is not hanzi/punctuation."""
    text = _to_simplified()(text)
    text = text.replace("嗯", "恩").replace("呣", "母")
    return re.sub(rf"[^{HANZI_RANGE}!?…,.\-]+", "", text)
