"""Data loading: CSV / TSV / JSONL and Hub datasets parsed, seeded disjoint splits, strict decoding,
bad input refused with one clear error; the rows a refit trains on."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from export.config import BUNDLED_TWEETS, DataConfig, Holdout
from export.data.dataset import Dataset, bundled_tweets_path, load_data, read_rows
from export.errors import ConfigError, DataError
from tests.builders import phrase_corpus, require, spans, write_file, write_tsv


def test_csv_tsv_jsonl_with_string_and_int_labels(tmp_path: Path) -> None:
    rows = [("good movie", "pos"), ("bad movie", "neg")] * 30
    csv = write_file(tmp_path / "d.csv", "review,sentiment\n" + "".join(f'"{t}, really",{lab}\n' for t, lab in rows))
    tsv = write_file(
        tmp_path / "d.tsv", "sentence\tlabel\n" + "".join(f"{t}\t{int(lab == 'pos')}\n" for t, lab in rows)
    )
    jsonl = write_file(tmp_path / "d.jsonl", "".join(json.dumps({"text": t, "y": lab}) + "\n" for t, lab in rows))
    d = load_data(DataConfig(train=csv))
    assert d.label_names == ("neg", "pos") and d.train.texts[0].endswith(", really")
    assert len(d.train) + len(d.validation) + len(d.eval) == 60
    d = load_data(DataConfig(train=tsv))
    assert d.label_names == ("0", "1")
    d = load_data(DataConfig(train=jsonl, label_column="y"))
    assert d.label_names == ("neg", "pos")
    assert set(np.unique(d.train.labels)) == {0, 1}


def test_splits_are_seeded_and_disjoint(tmp_path: Path) -> None:
    path = write_file(tmp_path / "d.csv", "text,label\n" + "".join(f"text number {i},{i % 3}\n" for i in range(300)))
    a, b = load_data(DataConfig(train=path), seed=1), load_data(DataConfig(train=path), seed=1)
    assert a.train.texts == b.train.texts and a.eval.texts == b.eval.texts
    assert not set(a.train.texts) & set(a.eval.texts) and not set(a.train.texts) & set(a.validation.texts)
    c = load_data(DataConfig(train=path), seed=2)
    assert c.eval.texts != a.eval.texts


def test_latin1_file_is_refused_with_line_number_or_read_exactly(tmp_path: Path) -> None:
    body = "text,label\nfine,1\nalso fine,0\ncaf\xe9 cr\xe8me,1\n"
    path = write_file(tmp_path / "latin.csv", body, encoding="latin-1")
    with pytest.raises(DataError, match=r"line 4 is not valid utf-8 \(byte 0xe9\).*--encoding"):
        read_rows(path, DataConfig())
    rows = read_rows(path, DataConfig(encoding="latin-1"))
    assert rows.texts[2] == "café crème"


def test_bundled_tweets_read_without_mangling() -> None:
    path = bundled_tweets_path()
    rows = read_rows(path, DataConfig(encoding="latin-1", text_column="text", label_column="sentiment"))
    # 38,158 rows: reading the Latin-1 text with str.splitlines() would split rows at U+0085.
    assert len(rows.texts) == 38158, len(rows.texts)
    assert set(rows.labels) == {"negative", "neutral", "positive"}
    d = load_data(DataConfig(dataset=BUNDLED_TWEETS, max_train_samples=100, max_eval_samples=50))
    assert len(d.train) == 100 and len(d.eval) == 50 and d.label_names == ("negative", "neutral", "positive")


@pytest.mark.parametrize(
    ("name", "content", "cfg", "needle"),
    [
        ("missing.csv", None, {}, "does not exist"),
        ("empty.csv", "", {}, "is empty"),
        ("blank.tsv", "\n\n", {}, "is empty"),
        ("nocols.csv", "foo,bar\na,b\n", {}, "cannot find a text column among foo, bar"),
        (
            "named.csv",
            "text,label\na,1\nb,0\n",
            {"label_column": "y"},
            "no label column 'y'; columns found: text, label",
        ),
        ("one.csv", "text,label\n" + "t,1\n" * 20, {}, "every row has label '1'"),
        ("nolabel.csv", "text,label\na,1\nb,\n", {}, "record 2 has no value in label column 'label'"),
        ("bad.jsonl", '{"text": "a", "label": 1}\nnot json\n', {}, "line 2 is not valid JSON"),
        ("data.xlsx", "x", {}, "unsupported file type '.xlsx'"),
    ],
)
def test_bad_data_gives_one_clear_error(tmp_path: Path, name: str, content, cfg: dict, needle: str) -> None:
    path = tmp_path / name
    if content is not None:
        write_file(path, content)
    with pytest.raises(DataError) as e:
        load_data(DataConfig(train=path, **cfg))
    assert needle in str(e.value) and name in str(e.value), str(e.value)


def test_eval_label_unknown_to_training(tmp_path: Path) -> None:
    train = write_file(tmp_path / "t.csv", "text,label\n" + "a,x\nb,y\n" * 20)
    ev = write_file(tmp_path / "e.csv", "text,label\nc,z\n")
    with pytest.raises(DataError, match=r"label 'z' is not one of the training labels \['x', 'y'\]"):
        load_data(DataConfig(train=train, eval=ev))


def test_hub_dataset_uses_label_names_and_held_out_split(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = require("datasets")
    feats = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    train = datasets.Dataset.from_dict(
        {"sentence": [f"s{i}" for i in range(100)], "label": [i % 2 for i in range(100)]}, features=feats
    )
    val = datasets.Dataset.from_dict({"sentence": ["a", "b", "c"], "label": [0, 1, 1]}, features=feats)
    calls = []
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda name: calls.append(name) or datasets.DatasetDict({"train": train, "validation": val}),
    )
    d = load_data(DataConfig(dataset="glue-like", max_train_samples=50))
    assert calls == ["glue-like"] and d.source == "hf:glue-like (train / validation)"
    assert d.label_names == ("neg", "pos") and d.eval.texts == ("a", "b", "c")
    assert len(d.train) == 50 and set(d.eval.labels.tolist()) == {0, 1}


def _glue_like(datasets):
    """A GLUE-shaped DatasetDict: labelled train and validation, a test split labelled -1 throughout."""
    feats = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.Value("int64")})

    def split(n: int, unlabelled: bool = False):
        return datasets.Dataset.from_dict(
            {"sentence": [f"s{i}" for i in range(n)], "label": [-1 if unlabelled else i % 2 for i in range(n)]},
            features=feats,
        )

    return datasets.DatasetDict({"train": split(60), "validation": split(12), "test": split(12, unlabelled=True)})


def test_hub_dataset_with_a_configuration_and_named_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = require("datasets")
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args: calls.append(args) or _glue_like(datasets))
    d = load_data(DataConfig(dataset="nyu-mll/glue:sst2", max_train_samples=None))
    assert calls == [("nyu-mll/glue", "sst2")], calls
    assert d.source == "hf:nyu-mll/glue:sst2 (train / validation)" and len(d.eval) == 12, d.source
    d = load_data(DataConfig(dataset="nyu-mll/glue", dataset_config="sst2", eval_split="validation"))
    assert calls[-1] == ("nyu-mll/glue", "sst2") and len(d.eval) == 12
    with pytest.raises(DataError, match=r"no split 'dev' \(data.eval_split\); its splits: train, validation, test"):
        load_data(DataConfig(dataset="nyu-mll/glue:sst2", eval_split="dev"))
    with pytest.raises(DataError, match=r"no split 'training' \(data.train_split\)"):
        load_data(DataConfig(dataset="nyu-mll/glue:sst2", train_split="training"))
    with pytest.raises(DataError, match=r"split 'test' \(data.eval_split\) has one label only \('-1'"):
        load_data(DataConfig(dataset="nyu-mll/glue:sst2", eval_split="test"))


def test_hub_dataset_configuration_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="disagree; give the configuration once"):
        DataConfig(dataset="nyu-mll/glue:sst2", dataset_config="cola")
    with pytest.raises(ConfigError, match="are for a Hugging Face dataset"):
        DataConfig(dataset_config="sst2")
    with pytest.raises(ConfigError, match="data.eval_split='train' is the training split"):
        DataConfig(dataset="x", eval_split="train")


def test_a_hub_dataset_without_its_configuration_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = require("datasets")

    def needs_config(name: str):
        raise ValueError("Config name is missing. Please pick one among the available configs: ['cola', 'sst2']")

    monkeypatch.setattr(datasets, "load_dataset", needs_config)
    with pytest.raises(
        DataError, match=r"cannot load dataset 'nyu-mll/glue'.*\['cola', 'sst2'\].*--dataset NAME:CONFIG"
    ):
        load_data(DataConfig(dataset="nyu-mll/glue"))


def test_hub_dataset_offline_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = require("datasets")

    def offline(name: str):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="cannot load dataset 'glue/sst2'.*offline, pass --train FILE instead"):
        load_data(DataConfig(dataset="glue/sst2"))


def _phrase_data(tmp_path: Path, **kw: object) -> tuple[list[tuple[str, int]], Dataset]:
    rows = phrase_corpus(80)
    path = write_tsv(rows, tmp_path / "phrases.tsv")
    cfg = DataConfig(train=path, holdout=Holdout.SENTENCES, max_train_samples=None, max_eval_samples=None, **kw)
    return rows, load_data(cfg)


def test_refit_on_all_rows_is_every_row_of_the_file(tmp_path: Path) -> None:
    rows, data = _phrase_data(tmp_path)
    refit = data.refit_rows(include_eval=True)
    assert sorted(zip(refit.texts, refit.labels.tolist(), strict=True)) == sorted(rows), (
        f"refit has {len(refit)} rows, the file {len(rows)}: not every labelled row, once each"
    )
    assert len(data.train) < len(refit), "the selection run should train on fewer rows than the refit"


def test_refit_except_eval_keeps_eval_and_its_phrases_unseen(tmp_path: Path) -> None:
    rows, data = _phrase_data(tmp_path)
    refit = data.refit_rows(include_eval=False)
    eval_spans = set().union(*(spans(t) for t in data.eval.texts))
    val_spans = set().union(*(spans(t) for t in data.validation.texts))
    # rows the selection run did not train on: validation and its phrases, never a piece of eval
    added = set(refit.texts) - set(data.train.texts)
    leaked = sorted(added & eval_spans)
    assert not leaked, f"{len(leaked)} refit rows are eval sentences or pieces only they hold, e.g. {leaked[:3]}"
    assert not set(data.eval.texts) & set(refit.texts)
    assert set(data.validation.texts) <= set(refit.texts), "validation sentences are not in the refit"
    # phrases that only occur inside validation sentences were dropped from training; the refit gets them back
    val_only = {t for t, _ in rows if t in val_spans and t not in eval_spans} - set(data.train.texts)
    assert val_only and val_only <= set(refit.texts), f"missing: {sorted(val_only - set(refit.texts))[:3]}"
    # and the only rows of the file left out are eval sentences and pieces of them
    missing = Counter(t for t, _ in rows) - Counter(refit.texts)
    assert set(missing) - eval_spans == set(), sorted(set(missing) - eval_spans)[:3]
    assert missing.total() > len(data.eval), (missing.total(), len(data.eval))


def test_refit_with_an_eval_file_never_trains_on_it_and_flags_overlap(tmp_path: Path) -> None:
    rows = phrase_corpus(80)
    train = write_tsv(rows, tmp_path / "train.tsv")
    outside = [("a fine story w_new", 1), ("the awful cast w_other", 0)]
    ev = write_tsv([*outside, rows[0]], tmp_path / "dev.tsv")  # rows[0] is also a training sentence
    data = load_data(DataConfig(train=train, eval=ev, holdout=Holdout.SENTENCES, max_train_samples=None))
    assert not data.eval_carved
    refit_all, refit_rest = data.refit_rows(include_eval=True), data.refit_rows(include_eval=False)
    assert refit_all.texts == refit_rest.texts and len(refit_all) == len(rows), (len(refit_all), len(rows))
    assert not {t for t, _ in outside} & set(refit_all.texts)
    assert any("1 of 3 texts of" in n and "not unseen-data accuracy" in n for n in data.notes), data.notes


def test_refit_with_random_holdout_and_a_subsample(tmp_path: Path) -> None:
    path = write_tsv(phrase_corpus(80), tmp_path / "train.tsv")
    data = load_data(DataConfig(train=path, max_train_samples=100, max_eval_samples=None))
    refit = data.refit_rows(include_eval=True)
    assert len(refit) == len(data.train) + len(data.validation) + len(data.eval) and len(data.train) == 100
    assert len(data.refit_rows(include_eval=False)) == 100 + len(data.validation)
    assert not set(data.eval.texts) - set(refit.texts)
