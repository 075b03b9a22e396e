"""The bounded attention-mask fill takes effect in every architecture and leaves fp32 logits alone."""

from __future__ import annotations

import numpy as np
import pytest

from export.convert.mask_fill import bounded_mask_fill
from tests.builders import TINY_MODELS, assert_close, fixed_batch, model_logits, tiny_model


@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_bounded_fill_changes_nothing_at_minus_30_and_is_really_applied(arch: str, attn: str) -> None:
    model = tiny_model(arch)
    if attn == "eager":  # the attention class is chosen at construction: rebuild
        config = model.config
        config._attn_implementation = "eager"  # noqa: SLF001 - transformers has no public setter
        state = model.state_dict()
        model = type(model)(config).eval()
        model.load_state_dict(state)
    batch = fixed_batch()
    reference = model_logits(model, batch)
    with bounded_mask_fill(model, -30.0):
        bounded = model_logits(model, batch)
    assert_close(bounded, reference, atol=1e-5, what=f"{arch}/{attn} logits with mask fill -30 vs dtype min")
    # A weak fill lets padded positions leak into attention: the patch must reach the model.
    with bounded_mask_fill(model, -0.5):
        leaky = model_logits(model, batch)
    delta = float(np.abs(leaky[1:] - reference[1:]).max())  # rows 1-3 have padding
    assert delta > 1e-3, f"{arch}/{attn}: mask fill -0.5 changed padded rows' logits by only {delta:.2e}"
    # The patch is undone on exit.
    assert_close(model_logits(model, batch), reference, atol=0, what="after the block")


def test_rejects_non_finite_fill() -> None:
    with pytest.raises(ValueError, match="finite negative"):
        with bounded_mask_fill(tiny_model("bert"), float("-inf")):
            pass
