"""Configuration and data loading: valid input parsed, bad input refused with one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.config import BUNDLED_TWEETS, DataConfig, PipelineConfig, StudentKind, load_config
from export.data.dataset import bundled_tweets_path, load_data, read_rows
from export.errors import ConfigError, DataError
from quantize.modes import TfliteQuant


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_defaults_and_overrides(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", '[finetune]\nepochs = 3\n[distill]\nstudent = "same-arch"\n')
    cfg = load_config(toml, ["data.max_length=128", "tflite.precisions=fp32,fp16", "verify.max_drop=0.5"])
    assert cfg.finetune.epochs == 3.0 and cfg.distill.student is StudentKind.SAME_ARCH
    assert cfg.data.max_length == 128 and cfg.verify.max_drop == 0.5
    assert cfg.tflite.precisions == (TfliteQuant.FP32, TfliteQuant.FP16)
    assert load_config() == PipelineConfig()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("finetune.epoch=3", "unknown config key finetune.epoch"),
        ("nosuch.key=1", "unknown config key nosuch"),
        ("data.max_length=4", "data.max_length=4 is invalid; allowed: 8..512"),
        ("distill.student=tinybert", "allowed: distilbert, same-arch"),
        ("finetune.batch_size=big", "finetune.batch_size='big' is invalid"),
        ("tflite.precisions=fp16", "includes fp32"),
        ("data.encoding=klingon", "not a known codec"),
        ("novalue", "section.key=value"),
    ],
)
def test_bad_config_is_refused(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        load_config(None, [override])
    assert needle in str(e.value), str(e.value)


def test_bad_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path / "bad.toml", "[data\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_csv_tsv_jsonl_with_string_and_int_labels(tmp_path: Path) -> None:
    rows = [("good movie", "pos"), ("bad movie", "neg")] * 30
    csv = write(tmp_path / "d.csv", "review,sentiment\n" + "".join(f'"{t}, really",{lab}\n' for t, lab in rows))
    tsv = write(tmp_path / "d.tsv", "sentence\tlabel\n" + "".join(f"{t}\t{int(lab == 'pos')}\n" for t, lab in rows))
    jsonl = write(tmp_path / "d.jsonl", "".join(json.dumps({"text": t, "y": lab}) + "\n" for t, lab in rows))
    d = load_data(DataConfig(train=csv))
    assert d.label_names == ("neg", "pos") and d.train.texts[0].endswith(", really")
    assert len(d.train) + len(d.validation) + len(d.eval) == 60
    d = load_data(DataConfig(train=tsv))
    assert d.label_names == ("0", "1")
    d = load_data(DataConfig(train=jsonl, label_column="y"))
    assert d.label_names == ("neg", "pos")
    assert set(np.unique(d.train.labels)) == {0, 1}


def test_splits_are_seeded_and_disjoint(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\n" + "".join(f"text number {i},{i % 3}\n" for i in range(300)))
    a, b = load_data(DataConfig(train=path, seed=1)), load_data(DataConfig(train=path, seed=1))
    assert a.train.texts == b.train.texts and a.eval.texts == b.eval.texts
    assert not set(a.train.texts) & set(a.eval.texts) and not set(a.train.texts) & set(a.validation.texts)
    c = load_data(DataConfig(train=path, seed=2))
    assert c.eval.texts != a.eval.texts


def test_latin1_file_is_refused_with_line_number_or_read_exactly(tmp_path: Path) -> None:
    body = "text,label\nfine,1\nalso fine,0\ncaf\xe9 cr\xe8me,1\n"
    path = write(tmp_path / "latin.csv", body, encoding="latin-1")
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
        write(path, content)
    with pytest.raises(DataError) as e:
        load_data(DataConfig(train=path, **cfg))
    assert needle in str(e.value) and name in str(e.value), str(e.value)


def test_eval_label_unknown_to_training(tmp_path: Path) -> None:
    train = write(tmp_path / "t.csv", "text,label\n" + "a,x\nb,y\n" * 20)
    ev = write(tmp_path / "e.csv", "text,label\nc,z\n")
    with pytest.raises(DataError, match=r"label 'z' is not one of the training labels \['x', 'y'\]"):
        load_data(DataConfig(train=train, eval=ev))


def test_hub_dataset_uses_label_names_and_held_out_split(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
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
    assert calls == ["glue-like"] and d.source == "hf:glue-like"
    assert d.label_names == ("neg", "pos") and d.eval.texts == ("a", "b", "c")
    assert len(d.train) == 50 and set(d.eval.labels.tolist()) == {0, 1}


def test_hub_dataset_offline_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")

    def offline(name: str):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="cannot load dataset 'glue/sst2'.*offline, pass --train FILE instead"):
        load_data(DataConfig(dataset="glue/sst2"))


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml")), ids=str)
def test_every_example_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.out != Path("out") or path.name == "default.toml", f"{path.name} would write into the default ./out"
