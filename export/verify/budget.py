"""The bundle to ship for a latency / size budget (``python -m export verify --budget-ms/--budget-mb``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from export.verify.judge import ArtifactResult


@dataclass(frozen=True)
class Choice:
    """The bundle picked for a budget (``name`` None when none qualifies) and why."""

    name: str | None
    reason: str
    budget_ms: float | None = None
    budget_mb: float | None = None

    @property
    def failure(self) -> str | None:
        """The reason, when a budget was set and no verified bundle meets it."""
        budgeted = self.budget_ms is not None or self.budget_mb is not None
        return self.reason if self.name is None and budgeted else None


def choose(
    results: Sequence[ArtifactResult],
    bundles: Collection[str],
    failed: Collection[str],
    budget_ms: float | None = None,
    budget_mb: float | None = None,
) -> Choice:
    """Picks the most accurate verified bundle with p50 ≤ ``budget_ms`` and size ≤ ``budget_mb``.

    Ties go to the faster, then the smaller one. "Verified" means it is in ``bundles``, not
    in ``failed`` (threshold and drift failures) and not left out by the accuracy gate.
    Latency is the p50 measured here, at ``ArtifactResult.threads`` threads.
    """
    limits = [f"p50 ≤ {budget_ms:g} ms" if budget_ms is not None else "", f"≤ {budget_mb:g} MB" if budget_mb else ""]
    within = "within " + " and ".join(x for x in limits if x) if any(limits) else "(no budget given)"
    fits, left_out = [], []
    for r in results:
        if r.name not in bundles:
            continue
        why = ["failed verification"] if r.name in failed else []
        if r.skipped:
            why.append("left out by the accuracy gate")
        if budget_ms is not None and not r.p50_ms <= budget_ms:
            why.append(f"p50 {r.p50_ms:.2f} ms > {budget_ms:g}")
        if budget_mb is not None and not r.size_bytes / 1e6 <= budget_mb:
            why.append(f"{r.size_bytes / 1e6:.1f} MB > {budget_mb:g}")
        (left_out.append(f"{r.name} ({', '.join(why)})") if why else fits.append(r))
    rest = f"; left out: {'; '.join(left_out)}" if left_out else ""
    if not fits:
        return Choice(None, f"no verified bundle {within}{rest}", budget_ms, budget_mb)
    best = max(fits, key=lambda r: (r.accuracy, -r.p50_ms, -r.size_bytes))
    reason = (
        f"{best.name}: the most accurate ({100 * best.accuracy:.2f}%) of {len(fits)} verified bundle(s) "
        f"{within}, at p50 {best.p50_ms:.2f} ms ({best.threads} thread) and {best.size_bytes / 1e6:.1f} MB{rest}"
    )
    return Choice(best.name, reason, budget_ms, budget_mb)
