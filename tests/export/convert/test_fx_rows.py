"""The last layer computed for the first token only on the TFLite path (``tflite.first_token_only``):
the rewritten ``torch.export`` graph gives the model's logits per architecture, runs its last
layer's products on one row, and a rewrite that changes the logits fails the conversion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import export.convert.fx_rows as fx_rows
from export.config import TfliteConfig, load_config
from export.convert.mask_fill import bounded_mask_fill
from export.convert.tflite import LogitsOnly, TfliteConversionError, convert_tflite
from tests.builders import SEQ_LEN, TINY_MODELS, assert_close, fixed_batch, tiny_model

# "core": scripts/test.sh runs this module on transformers 5 too (.venv-transformers5).
pytestmark = pytest.mark.core
_aten = torch.ops.aten


def _sample(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = LogitsOnly(model).input_names
    return {n: (torch.ones if n == "attention_mask" else torch.zeros)(1, SEQ_LEN, dtype=torch.long) for n in names}


def _one_row_linears(module: torch.nn.Module, sample: dict[str, torch.Tensor]) -> int:
    """``linear`` ops whose output has one row (axis -2 of size 1), as torch.export traces ``module``."""
    graph = torch.export.export(module, (), sample, strict=False).graph
    return sum(1 for n in graph.nodes if n.target is _aten.linear.default and n.meta["val"].shape[-2] == 1)


@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
def test_the_rewritten_graph_runs_its_last_layer_on_one_row_with_the_same_logits(arch: str) -> None:
    model = tiny_model(arch)
    wrapper = LogitsOnly(model)
    sample = _sample(model)
    with torch.no_grad(), bounded_mask_fill(model, -30.0):
        gm, stats = fx_rows.first_token_graph(wrapper, sample)
        batch = fixed_batch()
        for row in range(len(batch["input_ids"])):  # batch 1 at the traced length, padded or not
            feeds = {n: torch.from_numpy(batch[n][row : row + 1]) for n in sample}
            assert_close(gm(**feeds), wrapper(**feeds), 1e-5, f"{arch} row {row}")
        before, after = _one_row_linears(wrapper, sample), _one_row_linears(gm, sample)
    # The last layer's query and output projections and its two FFN matrices (MobileBERT: more).
    assert after - before >= 4, f"{arch}: one-row linears {before} → {after}; {stats}"
    assert stats["slices"] >= 1, f"{arch}: {stats}"


def test_a_rewrite_that_changes_the_logits_fails_the_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fx_rows.first_token_graph

    def last_token(module: torch.nn.Module, sample: dict[str, torch.Tensor]) -> tuple[object, dict[str, int]]:
        gm, stats = real(module, sample)  # then every inserted slice takes the last row instead
        for n in gm.graph.nodes:
            if n.target is _aten.slice.Tensor and n.args[2:] == (0, 1):
                n.args = (n.args[0], n.args[1], SEQ_LEN - 1, SEQ_LEN)
        gm.recompile()
        return gm, stats

    monkeypatch.setattr(fx_rows, "first_token_graph", last_token)
    out = tmp_path / "model.tflite"
    with pytest.raises(
        TfliteConversionError, match=r"changed the logits .*max \|Δ\| .*tflite.first_token_only = false"
    ):
        convert_tflite(tiny_model("bert"), out, lengths=SEQ_LEN)
    assert not out.exists(), "a failed rewrite left a model behind"


def test_first_token_only_is_a_tflite_config_switch(tmp_path: Path) -> None:
    assert TfliteConfig().first_token_only is True
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tflite]\nfirst_token_only = false\n[data]\ntrain = "x.tsv"\n')
    assert load_config(cfg).tflite.first_token_only is False


class _Rows(torch.nn.Module):
    """x [1, s, 4] → linear → relu → (``case``) → linear → x[:, 0]: a head reading the first row."""

    def __init__(self, case: str) -> None:
        super().__init__()
        self.case = case
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        r = torch.relu(self.a(x))
        if self.case == "mean":  # a residual of the mean over the rows: reads every row of r
            r = r + r.mean(dim=1, keepdim=True)
        elif self.case == "softmax-rows":
            r = torch.softmax(r, dim=1)
        hidden = self.b(r)
        return (hidden[:, 0], hidden) if self.case == "hidden-out" else hidden[:, 0]


@pytest.mark.parametrize(("case", "linears"), [("plain", 2), ("mean", 1), ("softmax-rows", 1), ("hidden-out", 0)])
def test_the_walk_stops_at_an_op_that_reads_every_row(case: str, linears: int) -> None:
    module = _Rows(case).eval()
    x = torch.randn(1, 5, 4)
    gm, stats = fx_rows.first_token_graph(module, {"x": x})
    assert stats["linears"] == linears, f"{case}: {stats}"
    with torch.no_grad():
        expected, got = module(x=x), gm(x=x)
    if isinstance(expected, tuple):
        expected, got = expected[0], got[0]
    assert_close(got, expected, 1e-6, case)
