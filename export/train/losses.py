"""Distillation losses: soft labels, hidden states and attention maps.

:class:`DistillationModel` wraps the student for the Trainer. Its loss is

    alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(student, labels)
    + hidden_weight · Σ_layers MSE(proj(student_h), teacher_h)
    + attention_weight · Σ_layers KL(teacher_attn ‖ student_attn)

Student layer ``j`` of ``n_s`` is matched with teacher layer ``(j + 1) · n_t / n_s`` (the last of
the block of teacher layers it replaces, as in TinyBERT) and the embedding outputs with each
other. ``proj`` is a learned linear map, present only when the widths differ (and dropped
after training). Attention maps are averaged over heads when the head counts differ. Padding
positions are masked out of both transfer losses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own convention
from torch import nn

from export.architectures import model_input_names


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    hard_loss: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(student, labels)."""
    t = temperature
    kd = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1), F.softmax(teacher_logits / t, dim=-1), reduction="batchmean"
    ) * (t * t)
    return alpha * kd + (1.0 - alpha) * hard_loss


def layer_map(n_teacher: int, n_student: int) -> list[int]:
    """Teacher hidden-state index matched with student hidden state ``j + 1`` (index 0: embeddings)."""
    return [(j + 1) * n_teacher // n_student for j in range(n_student)]


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the non-padding positions (``mask``: batch × seq, 1 = token)."""
    m = mask.unsqueeze(-1).to(student.dtype)
    return ((student - teacher) ** 2 * m).sum() / (m.sum() * student.shape[-1]).clamp(min=1.0)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) of attention rows (batch × heads × query × key), over real query tokens."""
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    eps = 1e-8
    kl = (teacher * ((teacher + eps).log() - (student + eps).log())).sum(-1)  # batch × heads × query
    m = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * m).sum() / m.sum().clamp(min=1.0)


class DistillationModel(nn.Module):
    """The student plus what its loss needs; the Trainer trains this, ``.student`` is saved.

    With ``hidden_weight`` or ``attention_weight`` the teacher runs on every batch (frozen, not a
    registered module, so it is neither trained nor checkpointed); otherwise the batch carries
    precomputed ``teacher_logits``.
    """

    def __init__(
        self,
        student: Any,
        teacher: Any | None,
        *,
        temperature: float,
        alpha: float,
        hidden_weight: float = 0.0,
        attention_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher  # unregistered: no gradients, not saved
        self.temperature, self.alpha = temperature, alpha
        self.hidden_weight, self.attention_weight = hidden_weight, attention_weight
        s_dim, t_dim = _width(student.config), _width(teacher.config) if teacher is not None else None
        self.proj = nn.Linear(s_dim, t_dim) if hidden_weight > 0 and t_dim not in (None, s_dim) else None
        if (hidden_weight > 0 or attention_weight > 0) and teacher is None:
            raise ValueError("hidden-state or attention transfer needs the teacher model")
        self.config = student.config  # the Trainer reads model.config

    def forward(self, labels: torch.Tensor | None = None, teacher_logits: torch.Tensor | None = None, **inputs: Any):
        inputs.pop("num_items_in_batch", None)  # the Trainer passes it to forwards that take **kwargs
        transfer = self.hidden_weight > 0 or self.attention_weight > 0
        out = self.student(
            **inputs,
            labels=labels,
            output_hidden_states=self.hidden_weight > 0,
            output_attentions=self.attention_weight > 0,
        )
        if labels is not None and not transfer and self.alpha == 0:  # hard labels only: no teacher needed
            return {"loss": out.loss, "logits": out.logits}
        t_out = None
        if transfer or teacher_logits is None:
            teacher = self.__dict__["teacher"]
            teacher.to(out.logits.device).eval()
            t_inputs = {k: v for k, v in inputs.items() if k in _input_names(teacher)}
            with torch.no_grad():
                t_out = teacher(
                    **t_inputs,
                    output_hidden_states=self.hidden_weight > 0,
                    output_attentions=self.attention_weight > 0,
                )
            teacher_logits = t_out.logits
        if labels is None:
            return {"logits": out.logits}
        loss = distillation_loss(out.logits, teacher_logits.float(), out.loss, self.temperature, self.alpha)
        mask = inputs["attention_mask"]
        if self.hidden_weight > 0:
            pairs = [(0, 0), *enumerate(layer_map(len(t_out.hidden_states) - 1, len(out.hidden_states) - 1), 1)]
            for s_i, t_i in pairs:
                h = out.hidden_states[s_i]
                h = self.proj(h) if self.proj is not None else h
                loss = loss + self.hidden_weight * hidden_loss(h, t_out.hidden_states[t_i], mask)
        if self.attention_weight > 0:
            for s_i, t_i in enumerate(layer_map(len(t_out.attentions), len(out.attentions))):
                loss = loss + self.attention_weight * attention_loss(
                    out.attentions[s_i], t_out.attentions[t_i - 1], mask
                )
        return {"loss": loss, "logits": out.logits}


def _width(config: Any) -> int:
    return int(getattr(config, "hidden_size", None) or config.dim)


def _input_names(model: Any) -> tuple[str, ...]:
    return model_input_names(model)
