"""Vocabulary trimming (``[vocab]``): keep the word pieces some texts use, drop the other rows.

The student's word-embedding table is most of its size (30,522 × 384 of MiniLM's 17.4 M
parameters); a classifier for one domain uses a fraction of those pieces. :func:`trim_vocabulary`
keeps the pieces the texts tokenize into (at least ``min_count`` times), every special and
added token and, with ``keep_characters``, every single-character piece and its ``##`` form; it
renumbers them in their original order, copies their embedding rows and rewrites ``vocab.txt``,
``tokenizer.json`` and ``tokenizer_config.json`` to the new ids. Nothing else changes, so the
runtime and the Java core read the trimmed tokenizer as any other.

Why it is exact on the texts (``min_count = 1``): WordPiece takes the longest piece in the
vocabulary at each position; every piece it took on those texts is kept, and a longer one kept
would have been in the full vocabulary too, so it takes the same pieces. A word it could not
cover before it cannot cover now (``[UNK]`` as before). Another text's word whose pieces are gone
is covered by the kept pieces, or becomes ``[UNK]`` — what WordPiece does with any vocabulary.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from export.architectures import ARCHITECTURES, TokenizerKind
from export.classifier import Classifier, resolve_model_path
from export.config import VocabConfig
from export.errors import ConfigError, DataError, ExportError, ModelLoadError

#: Config fields holding token ids; each names a token that must survive, renumbered.
_CONFIG_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")


@dataclass(frozen=True)
class Trimmed:
    """What trimming kept.

    Attributes:
        kept_ids: The original ids of the kept pieces, ascending; a piece's new id is its index here.
        original_size: Pieces in the original vocabulary, added tokens included.
        embedding_dim: Width of the word-embedding table.
        source_texts: How many texts chose the pieces.
    """

    kept_ids: tuple[int, ...]
    original_size: int
    embedding_dim: int
    source_texts: int

    @property
    def old_to_new(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept_ids)}

    def summary(self) -> dict[str, Any]:
        """For report.json: pieces kept and the word-embedding table's size before and after."""
        before, after = self.original_size * self.embedding_dim, len(self.kept_ids) * self.embedding_dim
        return {
            "pieces_kept": len(self.kept_ids),
            "pieces_original": self.original_size,
            "source_texts": self.source_texts,
            "embedding_parameters_before": before,
            "embedding_parameters_after": after,
            "embedding_mb_fp32_before": round(4 * before / 1e6, 2),
            "embedding_mb_fp32_after": round(4 * after / 1e6, 2),
        }


def check_trimmable(clf: Classifier) -> None:
    """Refuses a model whose tokenizer is not WordPiece.

    Raises:
        ConfigError: ``vocab.trim`` is on for a BPE or SentencePiece model.
    """
    model = json.loads(clf.tokenizer.backend_tokenizer.to_str())["model"]
    if clf.arch.tokenizer is not TokenizerKind.WORDPIECE or model.get("type") != "WordPiece":
        raise _refusal(f"the {clf.name} is {clf.model_type} with a {model.get('type')} tokenizer")


def check_trimmable_source(name_or_path: str) -> None:
    """Refuses ``vocab.trim`` before any training when the model the student's tokenizer comes
    from (``distill.student_model``, else the teacher) is of an architecture whose tokenizer is not
    WordPiece; :func:`check_trimmable` checks the trained student itself. A model that cannot be
    read here is left to training to report.

    Raises:
        ConfigError: its architecture's tokenizer is BPE or SentencePiece.
    """
    from transformers import AutoConfig  # noqa: PLC0415 - heavy: loaded when trimming is configured

    try:
        model_type = AutoConfig.from_pretrained(resolve_model_path(name_or_path)).model_type
    except (OSError, ValueError, ModelLoadError):  # offline hub id, not a model folder: training says why
        return
    arch = ARCHITECTURES.get(model_type)
    if arch is not None and arch.tokenizer is not TokenizerKind.WORDPIECE:
        raise _refusal(
            f"the student's tokenizer comes from {name_or_path}, {model_type} with a {arch.tokenizer} tokenizer"
        )


def _refusal(what: str) -> ConfigError:
    wordpiece = ", ".join(k for k, a in ARCHITECTURES.items() if a.tokenizer is TokenizerKind.WORDPIECE)
    return ConfigError(
        f"vocab.trim=true: {what}; trimming supports WordPiece tokenizers only ({wordpiece}); set vocab.trim = false"
    )


def kept_pieces(tokenizer: Any, texts: Sequence[str], cfg: VocabConfig) -> tuple[int, ...]:
    """The original ids to keep, ascending: pieces of ``texts`` used at least ``cfg.min_count``
    times, every special and added token (``[UNK]`` among them), and with
    ``cfg.keep_characters`` every single-character piece and its ``##`` form."""
    backend = _untruncated(tokenizer)
    counts: Counter[int] = Counter()
    for enc in backend.encode_batch(list(texts), add_special_tokens=False):
        counts.update(enc.ids)
    keep = {i for i, n in counts.items() if n >= cfg.min_count}
    keep |= set(backend.get_added_tokens_decoder())
    keep |= {i for i in tokenizer.all_special_ids}
    vocab: Mapping[str, int] = backend.get_vocab(with_added_tokens=True)
    if cfg.keep_characters:
        prefix = json.loads(backend.to_str())["model"].get("continuing_subword_prefix", "##")
        keep |= {
            i
            for piece, i in vocab.items()
            if len(piece) == 1 or (piece.startswith(prefix) and len(piece) == len(prefix) + 1)
        }
    return tuple(sorted(keep))


def trim_tokenizer_json(data: Mapping[str, Any], old_to_new: Mapping[int, int]) -> dict[str, Any]:
    """A WordPiece ``tokenizer.json`` (parsed) with only the kept pieces, renumbered: the model's
    vocabulary, the added tokens, the post-processor's special-token ids and the padding id.

    Raises:
        ExportError: a part of the file holds ids in a form this function does not know (it
            would otherwise keep stale ids).
    """
    out = copy.deepcopy(dict(data))
    vocab = out["model"]["vocab"]
    out["model"]["vocab"] = {
        piece: old_to_new[i] for piece, i in sorted(vocab.items(), key=lambda kv: kv[1]) if i in old_to_new
    }
    for token in out.get("added_tokens") or []:
        token["id"] = _new_id(old_to_new, token["id"], f"added token {token['content']!r}")
    if out.get("padding"):
        out["padding"]["pad_id"] = _new_id(old_to_new, out["padding"]["pad_id"], "padding.pad_id")
    if out.get("post_processor"):
        out["post_processor"] = _trim_post_processor(out["post_processor"], old_to_new)
    return out


def _trim_post_processor(proc: dict[str, Any], old_to_new: Mapping[int, int]) -> dict[str, Any]:
    kind = proc.get("type")
    if kind == "TemplateProcessing":
        for name, special in proc["special_tokens"].items():
            special["ids"] = [_new_id(old_to_new, i, f"post_processor special token {name!r}") for i in special["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, i = proc[key]
            proc[key] = [token, _new_id(old_to_new, i, f"post_processor {key}")]
    elif kind == "Sequence":
        proc["processors"] = [_trim_post_processor(p, old_to_new) for p in proc["processors"]]
    elif kind != "ByteLevel":  # ByteLevel only trims offsets: no ids
        raise ExportError(f"tokenizer.json post_processor {kind!r} is not known to vocabulary trimming")
    return proc


def _new_id(old_to_new: Mapping[int, int], old: int, what: str) -> int:
    if old not in old_to_new:
        raise ExportError(f"vocabulary trimming dropped id {old}, which {what} uses")  # kept_pieces keeps them all
    return old_to_new[old]


def trim_vocabulary(
    clf: Classifier, texts: Sequence[str], cfg: VocabConfig, out_dir: Path
) -> tuple[Classifier, Trimmed]:
    """A copy of ``clf`` whose vocabulary holds only the pieces ``texts`` use (:func:`kept_pieces`),
    saved in ``out_dir`` (``save_pretrained`` layout, like every model of the pipeline).

    The word-embedding rows of the kept pieces are copied in their original order; the model's
    config (``vocab_size``, token ids) and tokenizer files are renumbered. ``clf`` is not changed.

    Raises:
        ConfigError: the tokenizer is not WordPiece (:func:`check_trimmable`).
        DataError: ``texts`` is empty.
        ExportError: the model has output embeddings (a language-model head), or the rewritten
            tokenizer does not load back with exactly the kept pieces.
    """
    import torch  # noqa: PLC0415 - heavy: loaded when a model is trimmed

    check_trimmable(clf)
    if not texts:
        raise DataError("vocab.texts: no text to choose the word pieces from")
    if clf.model.get_output_embeddings() is not None:
        raise ExportError(
            f"{clf.name} has output embeddings (a language-model head); trimming handles classifiers only"
        )
    kept = kept_pieces(clf.tokenizer, texts, cfg)
    old_embeddings = clf.model.get_input_embeddings()
    trimmed = Trimmed(kept, int(old_embeddings.weight.shape[0]), int(old_embeddings.weight.shape[1]), len(texts))
    old_to_new = trimmed.old_to_new

    model = copy.deepcopy(clf.model)
    index = torch.tensor(kept, dtype=torch.long)
    padding_idx = old_embeddings.padding_idx
    embeddings = torch.nn.Embedding(
        len(kept), trimmed.embedding_dim, padding_idx=None if padding_idx is None else old_to_new[padding_idx]
    )
    with torch.no_grad():
        embeddings.weight.copy_(old_embeddings.weight[index])
    model.set_input_embeddings(embeddings)
    model.config.vocab_size = len(kept)
    for key in _CONFIG_TOKEN_IDS:
        old = getattr(model.config, key, None)
        if isinstance(old, int) and old < trimmed.original_size:
            setattr(model.config, key, _new_id(old_to_new, old, f"config.{key}"))

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir)
    tokenizer = trim_tokenizer(clf.tokenizer, kept, out_dir)
    return replace(clf, model=model.eval(), tokenizer=tokenizer, path=out_dir), trimmed


def trim_tokenizer(tokenizer: Any, kept_ids: Sequence[int], out_dir: Path) -> Any:
    """Saves ``tokenizer`` in ``out_dir`` with only the pieces ``kept_ids`` (ascending original
    ids, e.g. from :func:`kept_pieces`), renumbered in that order; returns it loaded back.

    Raises:
        ExportError: the rewritten files do not load back with exactly the kept pieces.
    """
    from transformers import AutoTokenizer  # noqa: PLC0415 - heavy: loaded when a model is trimmed

    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    _rewrite_tokenizer_files(out_dir, tokenizer, old_to_new)
    trimmed = AutoTokenizer.from_pretrained(out_dir, use_fast=True)
    pieces = {i: p for p, i in tokenizer.get_vocab().items()}
    want = {pieces[old]: new for old, new in old_to_new.items()}
    if trimmed.get_vocab() != want:
        raise ExportError(f"the trimmed tokenizer in {out_dir} does not load back with the {len(want)} kept pieces")
    return trimmed


def _rewrite_tokenizer_files(out_dir: Path, tokenizer: Any, old_to_new: Mapping[int, int]) -> None:
    """tokenizer.json and vocab.txt to the kept pieces; tokenizer_config.json's added-token ids."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    trimmed = trim_tokenizer_json(data, old_to_new)
    (out_dir / "tokenizer.json").write_text(json.dumps(trimmed, ensure_ascii=False, indent=2), encoding="utf-8")
    pieces = sorted(trimmed["model"]["vocab"].items(), key=lambda kv: kv[1])
    (out_dir / "vocab.txt").write_text("".join(f"{p}\n" for p, _ in pieces), encoding="utf-8")
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if "added_tokens_decoder" in config:
        config["added_tokens_decoder"] = {
            str(_new_id(old_to_new, int(i), f"added token {t['content']!r}")): t
            for i, t in config["added_tokens_decoder"].items()
        }
    config_file.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def unknown_word_rate(tokenizer: Any, texts: Iterable[str]) -> float:
    """Share of the words of ``texts`` (pre-tokenizer words: split at spaces and punctuation)
    that some token of becomes ``[UNK]``; 0.0 for no words."""
    backend = _untruncated(tokenizer)
    unk = tokenizer.unk_token_id
    words = unknown = 0
    for enc in backend.encode_batch(list(texts), add_special_tokens=False):
        by_word: dict[int, bool] = {}
        for word, i in zip(enc.word_ids, enc.ids, strict=True):
            if word is not None:
                by_word[word] = by_word.get(word, False) or i == unk
        words += len(by_word)
        unknown += sum(by_word.values())
    return unknown / words if words else 0.0


def changed_word_rate(before: Any, after: Any, texts: Iterable[str]) -> float:
    """Share of the words of ``texts`` that ``after`` (a trimmed tokenizer) cuts into other pieces
    than ``before`` does, [UNK] included: the words whose input to the model changed."""
    texts = list(texts)
    words = changed = 0
    encoded_a = _untruncated(before).encode_batch(texts, add_special_tokens=False)
    encoded_b = _untruncated(after).encode_batch(texts, add_special_tokens=False)
    for a, b in zip(encoded_a, encoded_b, strict=True):
        pieces_a, pieces_b = _pieces_by_word(a), _pieces_by_word(b)
        words += len(pieces_a)
        changed += sum(pieces_a[w] != pieces_b.get(w) for w in pieces_a)
    return changed / words if words else 0.0


def _pieces_by_word(enc: Any) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for word, piece in zip(enc.word_ids, enc.tokens, strict=True):
        if word is not None:
            out.setdefault(word, []).append(piece)
    return out


def _untruncated(tokenizer: Any) -> Any:
    """A copy of a fast tokenizer's backend that neither truncates nor pads (a saved tokenizer.json
    may do both, e.g. MiniLM's pads to 128): every piece of every text counts."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def read_texts(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file (``vocab.texts``).

    Raises:
        DataError: the file is missing, not UTF-8 (the line is named) or holds no text.
    """
    if not path.is_file():
        raise DataError(f"vocab.texts: {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"vocab.texts: {path} is not UTF-8: byte {raw[e.start]:#04x} on line {line}") from None
    texts = [line.strip() for line in text.splitlines() if line.strip()]
    if not texts:
        raise DataError(f"vocab.texts: {path} holds no text")
    return texts
