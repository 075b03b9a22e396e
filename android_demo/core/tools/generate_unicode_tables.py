"""Writes ``UnicodeTables.java``: the character classes the Java tokenizer needs, read off the
Hugging Face ``tokenizers`` library itself rather than off the JVM's Unicode tables.

Why: ``tokenizers`` classifies characters with the ``unicode_categories`` crate (an older
Unicode than Java 17's), lowercases with Rust's (a newer one), and Android's
``java.lang.Character`` follows the device's ICU version. Tables taken from the reference make
the Java core give the same answer on every JVM and Android release.

Every table is measured by running one ``tokenizers`` normalizer or pre-tokenizer on each code
point, so the output is what the library does, not what its source says. The JVM test
``UnicodeParityTest`` re-checks all 1,112,064 code points against goldens written at test time.

Usage (from the repository root, with the project venv)::

    python android_demo/core/tools/generate_unicode_tables.py \
        android_demo/core/src/main/java/dev/bertmobilekit/core/UnicodeTables.java
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import tokenizers
from tokenizers import normalizers, pre_tokenizers

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # decomposed algorithmically in Java
_CHUNK = 60_000  # stay below the JVM's 65,535-byte limit on one string constant


def code_points() -> Iterable[int]:
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def bert(**flags: bool | None) -> normalizers.BertNormalizer:
    options = {"clean_text": False, "handle_chinese_chars": False, "strip_accents": False, "lowercase": False}
    return normalizers.BertNormalizer(**{**options, **flags})


def hangul_nfd(cp: int) -> str:
    s = cp - HANGUL_FIRST
    lead, vowel, trail = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, 0x11A7 + s % 28
    return chr(lead) + chr(vowel) + (chr(trail) if trail != 0x11A7 else "")


def measure() -> dict[str, list]:
    clean, chinese, strip, lower = (
        bert(clean_text=True),
        bert(handle_chinese_chars=True),
        bert(strip_accents=True),
        bert(lowercase=True),
    )
    split = pre_tokenizers.BertPreTokenizer()
    sets: dict[str, list] = {k: [] for k in ("removed", "space", "chinese", "strip_removed", "split_space", "punct")}
    maps: dict[str, list] = {"strip": [], "lower": []}
    for cp in code_points():
        c = chr(cp)
        cleaned = clean.normalize_str(c)
        if cleaned == "":
            sets["removed"].append(cp)
        elif cleaned == " " and c != " ":
            sets["space"].append(cp)
        elif cleaned != c:
            raise SystemExit(f"U+{cp:04X}: clean_text gave {cleaned!r}, expected '', ' ' or the char")
        spaced = chinese.normalize_str(c)
        if spaced == f" {c} ":
            sets["chinese"].append(cp)
        elif spaced != c:
            raise SystemExit(f"U+{cp:04X}: handle_chinese_chars gave {spaced!r}")
        stripped = strip.normalize_str(c)
        if HANGUL_FIRST <= cp <= HANGUL_LAST:
            if stripped != hangul_nfd(cp):
                raise SystemExit(f"U+{cp:04X}: Hangul decomposition differs from the algorithm")
        elif stripped == "":
            sets["strip_removed"].append(cp)
        elif stripped != c:
            maps["strip"].append((cp, stripped))
        lowered = lower.normalize_str(c)
        if lowered != c:
            maps["lower"].append((cp, lowered))
        words = [w for w, _ in split.pre_tokenize_str(f"a{c}a")]
        if len(words) == 2:
            sets["split_space"].append(cp)
        elif len(words) == 3 and words[1] == c:
            sets["punct"].append(cp)
        elif words != [f"a{c}a"]:
            raise SystemExit(f"U+{cp:04X}: BertPreTokenizer gave {words!r}")
    return {**sets, **maps}


def ranges(cps: list[int]) -> str:
    out: list[str] = []
    start = prev = cps[0]
    for cp in [*cps[1:], -1]:
        if cp != prev + 1:
            out.append(f"{start:x}" if start == prev else f"{start:x}-{prev:x}")
            start = cp
        prev = cp
    return ",".join(out)


def mapping(pairs: list[tuple[int, str]]) -> str:
    return ",".join(f"{cp:x}:" + " ".join(f"{ord(ch):x}" for ch in value) for cp, value in pairs)


def java_string(name: str, text: str, doc: str) -> str:
    if len(text) > _CHUNK:
        raise SystemExit(f"table {name} is {len(text)} chars; split it")
    lines = [text[i : i + 96] for i in range(0, len(text), 96)] or [""]
    body = "\n            + ".join(f'"{line}"' for line in lines)
    return f"    /** {doc} */\n    static final String {name} =\n            {body};\n"


def render(t: dict[str, list]) -> str:
    parts = [
        ("REMOVED", ranges(t["removed"]), "clean_text drops these (controls, format chars, U+0000, U+FFFD)."),
        ("SPACE", ranges(t["space"]), "clean_text turns these into U+0020."),
        ("CHINESE", ranges(t["chinese"]), "handle_chinese_chars puts spaces around these."),
        ("STRIP_REMOVED", ranges(t["strip_removed"]), "strip_accents (NFD, then drop Mn) removes these."),
        ("STRIP_MAP", mapping(t["strip"]), "strip_accents maps these (Hangul syllables excluded: algorithmic)."),
        ("LOWER_MAP", mapping(t["lower"]), "lowercase maps these (per character, no context)."),
        ("SPLIT_SPACE", ranges(t["split_space"]), "BertPreTokenizer splits on and removes these."),
        ("PUNCT", ranges(t["punct"]), "BertPreTokenizer isolates these as one-character words."),
    ]
    body = "\n".join(java_string(name, text, doc) for name, text, doc in parts)
    return (
        "// GENERATED by android_demo/core/tools/generate_unicode_tables.py from Hugging Face\n"
        f"// tokenizers {tokenizers.__version__}; do not edit. Format: hex code points, 'a-b' ranges,\n"
        "// 'cp:v1 v2' mappings, comma-separated.\n"
        "package dev.bertmobilekit.core;\n\n"
        "final class UnicodeTables {\n"
        "    private UnicodeTables() {}\n\n"
        f'    static final String TOKENIZERS_VERSION = "{tokenizers.__version__}";\n\n'
        f"{body}}}\n"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    Path(argv[0]).write_text(render(measure()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
