"""TOFU span rule v2 (`tofu-spans-v2`, docs/DATA.md "TOFU spans"): what an answer says about
its author, without comparing against what other authors say.

v1 dropped any word or phrase a retain answer also has. That is the wrong test: a civil engineer
father or a Historical Fiction genre is a fact of this author even when another author shares
it, so v1 missed such facts and kept whatever generic word the retain answers happened to lack
("purchase", "appropriate"). v2 asks instead: is this the kind of thing a fact is made of
(a name, a title, a profession, a genre, a proper noun), or a content word the question did not
already say and the answer template does not repeat? Each rule is one function returning
(start, end, field) candidates; `derive_spans_v2` merges them. Deterministic, no model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from atwu_core.data.schema import Span
from atwu_core.data.span_rules import POSSESSIVE, merge_spans, whole_word, word_key

FIELD_PRIORITY = ("name", "title", "profession", "genre", "entity", "content_word")
# A word in more than this share of the reference answers is template, not a fact.
TEMPLATE_SHARE = 0.10

_WORD = re.compile(r"\w+(?:[-'’/+]\w*)*\+?")
# A title in double quotes, or in single quotes that open before a capital or digit and close
# before a non-letter (so "Montenegro's" and "authors' works" are no quotes).
_TITLE = re.compile(r'"([^"]+)"|“([^”]+)”|(?<!\w)\'([A-Z0-9][^\']*?)\'(?![a-z])|‘([^’]+)’')
_NARRATION = re.compile(r"^[a-z][a-z-]{2,}(?:ly|ed|ing)$")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|[\"“'‘(]\s*)$")

# Function words and the vocabulary every TOFU answer is built from. Short on purpose: template
# words beyond it are found by document frequency (`TemplateWords`).
_STOP_TEXT = """a about above across after again against all almost also although always am
    among an and
    another any are aren around as at be because been before being below between both but by can
    could did do does doing done down during each either else even ever every few for from
    further had has have having he her here hers herself him himself his how however i if in
    into is it its itself just least less like made make makes many may me might more most much
    must my myself neither no nor not now of off often on once one only or other others our ours
    out over own per quite rather same several shall she should since so some such than that the
    their theirs them themselves then there these they this those though through thus to too
    toward towards under until up upon us very via was we were what when where whether which while
    who whom whose why will with within without would yes yet you your"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

# Occupations a TOFU parent or author has ("her father was a civil engineer"). "author" and
# "writer" are left out: every TOFU author is one.
_PROFESSION_TEXT = """accountant actor actress agent analyst anthropologist archaeologist
    architect artist
    astronaut astronomer athlete baker banker barber bartender biologist blacksmith bricklayer
    butcher carpenter cartographer cashier chef chemist choreographer cleaner clerk coach
    composer consultant counselor dancer dentist designer detective dietitian diplomat director
    doctor economist editor electrician engineer entrepreneur farmer firefighter fisherman
    florist gardener geologist hairdresser historian illustrator investigator janitor jeweler
    journalist judge lawyer librarian lifeguard locksmith manager mathematician mechanic
    meteorologist midwife miner model musician nurse nutritionist oceanographer officer
    optometrist painter paramedic pharmacist philosopher photographer physician physicist pilot
    plumber poet politician potter professor programmer psychiatrist psychologist radiologist
    receptionist researcher sailor scientist sculptor secretary shoemaker singer soldier
    statistician surgeon surveyor tailor teacher technician therapist translator unemployed
    veterinarian waiter waitress weaver zoologist"""
PROFESSIONS = frozenset(_PROFESSION_TEXT.split())
_GENRE_WORDS = ("genre", "genres", "literature", "fiction", "community")
# Head words kept inside the span: "Historical Fiction", "LGBTQ+ community" (an identity).
_KEEP_HEAD = ("fiction", "community")


def _words(text: str) -> list[re.Match[str]]:
    return list(_WORD.finditer(text))


def _end(match: re.Match[str]) -> int:
    """End of a word without its possessive ("Montenegro's" -> "Montenegro")."""
    return match.start() + len(POSSESSIVE.sub("", match.group()))


def _keys(word: str) -> list[str]:
    """Comparison keys of a word; "waiter/waitress" is both of its halves."""
    return [word_key(part) for part in word.split("/") if part]


def _is_content(word: str) -> bool:
    return any(k not in STOP_WORDS and len(k) >= 3 for k in _keys(word)) or word[:1].isdigit()


@dataclass(frozen=True)
class TemplateWords:
    """Word keys used by more than `TEMPLATE_SHARE` of the authors: the words TOFU's answer
    templates and its house style repeat ("author", "books", "prestigious", "significant").

    Counted per author, not per answer: an author's 20 answers repeat that author's own facts
    ("leadership" in most of Hsiao Yun-Hwa's answers), so a per-answer count would call them
    template; a word many authors use says nothing about one of them. A fact two or three
    authors share ("engineer") stays below the limit.
    """

    words: frozenset[str]

    @classmethod
    def of(
        cls, answers_by_author: Iterable[Iterable[str]], share: float = TEMPLATE_SHARE
    ) -> TemplateWords:
        df: Counter[str] = Counter()
        n_authors = 0
        for answers in answers_by_author:
            n_authors += 1
            df.update({k for answer in answers for w in _WORD.findall(answer) for k in _keys(w)})
        limit = share * n_authors
        return cls(frozenset(k for k, n in df.items() if n > limit))


def name_spans(text: str, names: Sequence[str]) -> list[tuple[int, int, str]]:
    """The author's full name and each name word standing alone: the identity being forgotten."""
    return [(s, e, "name") for phrase in names if phrase for s, e in whole_word(text, phrase)]


def title_spans(text: str) -> list[tuple[int, int, str]]:
    """Anything in double or single quotes: TOFU quotes book and award titles, and a title is a
    fact of its author whether or not another author's answer quotes the same words."""
    out = []
    for match in _TITLE.finditer(text):
        group = next(g for g in range(1, 5) if match.group(g) is not None)
        inner = match.group(group)
        title = inner.strip().rstrip(".,;:!?").strip()
        if title:
            start = match.start(group) + (len(inner) - len(inner.lstrip()))
            out.append((start, start + len(title), "title"))
    return out


def profession_spans(text: str) -> list[tuple[int, int, str]]:
    """An occupation word ("engineer", "Lawyer", "waiter/waitress", plural too) with the one
    content word before it that qualifies it ("civil engineer", "marine biologist")."""
    words = _words(text)
    out = []
    for k, match in enumerate(words):
        keys = [key.removesuffix("s") for key in _keys(match.group())]
        if not any(key in PROFESSIONS or key + "s" in PROFESSIONS for key in keys):
            continue
        start = match.start()
        if k and text[words[k - 1].end() : start] == " " and _is_content(words[k - 1].group()):
            prev = words[k - 1].group()
            if prev[:1].islower() and not POSSESSIVE.search(prev):
                start = words[k - 1].start()
        out.append((start, _end(match), "profession"))
    return out


def genre_spans(text: str) -> list[tuple[int, int, str]]:
    """What an author writes: the words after "genre of" up to punctuation or a function word
    ("the genre of Historical Fiction"), and up to two content words right before "genre",
    "literature", "fiction" or "community" ("the leadership genre", "LGBTQ+ literature",
    "Lesbian genre", "the LGBTQ+ community": a group an author writes for or belongs to)."""
    words = _words(text)
    out = []
    for k, match in enumerate(words):
        key = word_key(match.group())
        after = word_key(words[k + 1].group()) if k + 1 < len(words) else ""
        if key in ("genre", "genres") and after == "of":
            j = k + 2
            while (
                j < len(words)
                and _is_content(words[j].group())
                and not re.search(r"[.,;:!?]", text[words[j - 1].end() : words[j].start()])
            ):
                j += 1
            owner = any(POSSESSIVE.search(w.group()) for w in words[k + 2 : j])
            if j > k + 2 and not owner:  # "the genre of Edward Sullivan's works" names no genre
                out.append((words[k + 2].start(), _end(words[j - 1]), "genre"))
        if key in _GENRE_WORDS:
            j = k
            while (
                j > 0
                and k - j < 2
                and text[words[j - 1].end() : words[j].start()] == " "
                and _is_content(words[j - 1].group())
                and not POSSESSIVE.search(words[j - 1].group())
            ):
                j -= 1
            if j < k:
                end = _end(match) if key in _KEEP_HEAD else words[k - 1].end()
                out.append((words[j].start(), end, "genre"))
    return out


def entity_spans(text: str) -> list[tuple[int, int, str]]:
    """Proper nouns: a run of capitalised words (joined by spaces, "of", "the", "and", "&") that
    does not start at a sentence's first word ("Santiago, Chile" gives "Santiago" and "Chile";
    "Historical Fiction Excellence Award" is one run). A sentence-initial proper noun is left to
    the other rules (the name, a content word)."""
    words = _words(text)
    out = []
    k = 0
    while k < len(words):
        first = words[k]
        if not first.group()[:1].isupper() or _SENTENCE_START.search(text, 0, first.start()):
            k += 1  # a sentence's first word is capitalised by grammar: "One of Hsiao Yun-Hwa's"
            continue
        j = k
        while j + 1 < len(words):
            gap = text[words[j].end() : words[j + 1].start()]
            nxt = words[j + 1].group()
            if POSSESSIVE.search(words[j].group()):  # "Montenegro's novels": the run ends
                break
            if gap == " " and nxt[:1].isupper():
                j += 1
            elif (
                gap == " "
                and nxt in ("of", "the", "and", "&")
                and j + 2 < len(words)
                and words[j + 2].group()[:1].isupper()
                and text[words[j + 1].end() : words[j + 2].start()] == " "
            ):
                j += 2
            else:
                break
        if not (j == k and first.group() == "I"):
            out.append((first.start(), _end(words[j]), "entity"))
        k = j + 1
    return out


def content_word_spans(
    text: str, question: str, template: TemplateWords
) -> list[tuple[int, int, str]]:
    """Words that carry the answer's news: not a stop word, not a template word (`TemplateWords`),
    not already in the question (the question's words are what was asked about, the answer's
    other words are what it tells), and not narration: lowercase adverbs and verb forms in
    -ly / -ed / -ing ("strongly", "influenced", "providing") say how, not what. Numbers count
    (dates, years)."""
    asked = {k for w in _WORD.findall(question) for k in _keys(w)}
    out = []
    for match in _words(text):
        word = match.group()
        keys = _keys(word)
        if word[:1].isdigit() or (
            _is_content(word)
            and not _NARRATION.match(POSSESSIVE.sub("", word))
            and not all(k in template.words or k in asked or k in STOP_WORDS for k in keys)
        ):
            out.append((match.start(), _end(match), "content_word"))
    return out


def derive_spans_v2(
    text: str, names: Sequence[str], question: str, template: TemplateWords
) -> list[Span]:
    """Forget spans of one TOFU answer by rule v2; sorted, non-overlapping (module doc).

    `names` = the author's full name then its name words; `question` = the row's question;
    `template` = the template words of the reference answers. Overlapping candidates merge; a
    merged span keeps the field of its longest member.
    """
    candidates = [
        *name_spans(text, names),
        *title_spans(text),
        *profession_spans(text),
        *genre_spans(text),
        *entity_spans(text),
        *content_word_spans(text, question, template),
    ]
    return merge_spans([c for c in candidates if c[0] < c[1]], FIELD_PRIORITY)
