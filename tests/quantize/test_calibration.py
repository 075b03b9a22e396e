"""Calibration and sensitivity texts: seeded, disjoint, and shaped like deployment text."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import DataError
from quantize.calibration import draw_texts


def _phrases_and_sentences() -> tuple[list[str], list[str]]:
    """SST-2-like training rows: 90 % short phrases, 10 % full sentences; deployment: sentences."""
    rng = np.random.default_rng(0)
    train = [" ".join(["w"] * int(rng.integers(1, 5))) + f" p{i}" for i in range(900)]
    train += [" ".join(["w"] * int(rng.integers(15, 30))) + f" s{i}" for i in range(100)]
    deployed = [" ".join(["w"] * int(rng.integers(15, 30))) for _ in range(50)]
    return train, deployed


def _mean_words(texts: tuple[str, ...]) -> float:
    return float(np.mean([len(t.split()) for t in texts]))


def test_draw_is_seeded_and_disjoint() -> None:
    train, deployed = _phrases_and_sentences()
    for like in ((), deployed):
        a = draw_texts(train, 40, 30, seed=3, like=like)
        assert a == draw_texts(train, 40, 30, seed=3, like=like)
        assert len(a.calibration) == 40 and len(a.sensitivity) == 30
        overlap = set(a.calibration) & set(a.sensitivity)
        assert not overlap, f"calibration and sensitivity share {len(overlap)} texts"
    assert draw_texts(train, 40, 30, seed=3).calibration != draw_texts(train, 40, 30, seed=4).calibration


def test_draw_matches_the_lengths_of_deployment_text() -> None:
    train, deployed = _phrases_and_sentences()
    uniform = draw_texts(train, 60, 40, seed=0)
    matched = draw_texts(train, 60, 40, seed=0, like=deployed)
    target = _mean_words(tuple(deployed))
    for name, texts in (("calibration", matched.calibration), ("sensitivity", matched.sensitivity)):
        assert abs(_mean_words(texts) - target) < 3, (
            f"{name}: mean {_mean_words(texts):.1f} words, deployment text {target:.1f}"
        )
    phrase_heavy = _mean_words(uniform.calibration)
    assert phrase_heavy < 8, f"a uniform draw is phrase-heavy: {phrase_heavy:.1f} words on average"


def test_draw_takes_the_rest_when_too_few_texts_match() -> None:
    """More texts asked for than the matching bins hold: the others follow, none repeated."""
    train, deployed = _phrases_and_sentences()
    drawn = draw_texts(train, 150, 100, seed=0, like=deployed)
    both = drawn.calibration + drawn.sensitivity
    assert len(both) == len(set(both)) == 250
    assert sum(len(t.split()) >= 15 for t in drawn.calibration) == 100, "the 100 sentences come first"


def test_draw_refuses_an_empty_split() -> None:
    with pytest.raises(DataError, match="training split is empty"):
        draw_texts([], 8, 8, seed=0)
