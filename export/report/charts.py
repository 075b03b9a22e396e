"""Charts for report.md: accuracy against latency (a Pareto chart) and a confusion matrix.

matplotlib is the optional extra ``report`` (``pip install 'bert-mobile-kit[report]'``). It is
imported only when a chart is drawn, and only through ``matplotlib.figure.Figure`` (which
renders with Agg), so no global pyplot state or backend is touched.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.verify.judge import ArtifactResult
from export.verify.outputs import Confusion

FORMAT_COLORS = {"pytorch": "#7f7f7f", "onnx": "#1f77b4", "tflite": "#ff7f0e"}
FP32_MARKER, QUANTIZED_MARKER = "o", "s"
CHOSEN_COLOR = "#d62728"
LEFT_OUT_COLOR = "0.35"
DPI = 130


def unavailable() -> str | None:
    """Why charts cannot be drawn here (matplotlib missing), or None when they can."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed; pip install 'bert-mobile-kit[report]' to get them"
    return None


def pareto(
    results: Sequence[ArtifactResult],
    path: Path,
    chosen: str | None = None,
    budget_ms: float | None = None,
    budget_mb: float | None = None,
) -> Path:
    """Accuracy against 1-thread p50 latency of every artifact; marker area is the file size.

    Colour is the format, shape the precision; failed artifacts have a red cross, those the
    accuracy gate left out a grey one, the chosen one a red ring. The dashed line is the Pareto
    front of the verified artifacts (no other is both faster and more accurate); a dotted line
    marks the latency budget.

    Returns:
        ``path``, written as PNG.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib is the optional report extra
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter  # noqa: PLC0415 - matplotlib is the optional report extra

    fig = Figure(figsize=(9.5, 5.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    xs = [r.p50_ms for r in results]
    ys = [100 * r.accuracy for r in results]
    biggest = max(r.size_bytes for r in results) or 1
    area = [40 + 900 * r.size_bytes / biggest for r in results]
    for r, x, y, s in zip(results, xs, ys, area, strict=True):
        marker = FP32_MARKER if r.precision == "fp32" else QUANTIZED_MARKER
        ax.scatter(x, y, s=s, marker=marker, color=FORMAT_COLORS.get(r.format, "#2ca02c"), alpha=0.5, edgecolors="k")
        if not r.passed or r.skipped:
            color = LEFT_OUT_COLOR if r.passed else CHOSEN_COLOR
            ax.scatter(x, y, s=120, marker="x", color=color, linewidths=2.5, zorder=4)
        if r.name == chosen:
            ax.scatter(x, y, s=s * 1.5 + 250, facecolors="none", edgecolors=CHOSEN_COLOR, linewidths=2.5, zorder=4)
    front = _pareto_front(xs, ys, [r.passed and not r.skipped for r in results])
    ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", ls="--", color="0.4", lw=1, zorder=0)
    if budget_ms is not None:
        ax.axvline(budget_ms, ls=":", color=CHOSEN_COLOR, lw=1.5, label=f"latency budget {budget_ms:g} ms")
    if max(xs) > 10 * min(xs):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12, y=0.15)
    ax.set_xlabel("p50 latency per text, ms  (batch 1, 1 thread, tokenization included; lower is better)")
    ax.set_ylabel("accuracy on the eval texts, %  (higher is better)")
    budget = [f"p50 ≤ {budget_ms:g} ms" if budget_ms is not None else "", f"≤ {budget_mb:g} MB" if budget_mb else ""]
    title = "Accuracy vs latency — marker area ∝ file size"
    if any(budget):
        title += f"; budget {' and '.join(b for b in budget if b)}"
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    handles = _legend(results, len(front) > 1, budget_ms, chosen)
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, labelspacing=1.3)
    _label_points(ax, results, xs, ys, area, chosen)  # last: it needs the final layout
    fig.savefig(path)
    return path


def _legend(results: Sequence[ArtifactResult], with_front: bool, budget_ms: float | None, chosen: str | None) -> list:
    """The Pareto chart's legend: formats, precisions, the smallest and biggest file, and each mark shown."""
    from matplotlib.lines import Line2D  # noqa: PLC0415 - matplotlib is the optional report extra

    handles = [_dot(FORMAT_COLORS[f], FP32_MARKER, f) for f in FORMAT_COLORS if any(r.format == f for r in results)]
    handles += [_dot("0.8", FP32_MARKER, "fp32"), _dot("0.8", QUANTIZED_MARKER, "quantized")]
    small, biggest = min(r.size_bytes for r in results), max(r.size_bytes for r in results) or 1
    for size in sorted({small, biggest}):
        handles.append(_dot("0.8", FP32_MARKER, f"{size / 1e6:.1f} MB", ms=(40 + 900 * size / biggest) ** 0.5))
    if with_front:  # one point alone dominates every other: no line to explain
        handles.append(Line2D([], [], ls="--", color="0.4", label="Pareto front\n(verified ones)"))
    if budget_ms is not None:
        handles.append(Line2D([], [], ls=":", color=CHOSEN_COLOR, lw=1.5, label=f"budget {budget_ms:g} ms"))
    if chosen:
        handles.append(_dot("none", FP32_MARKER, "chosen", edge=CHOSEN_COLOR))
    if any(not r.passed for r in results):
        handles.append(Line2D([], [], ls="", marker="x", color=CHOSEN_COLOR, mew=2.5, label="failed"))
    if any(r.skipped for r in results):
        gate = "left out\n(accuracy gate)"
        handles.append(Line2D([], [], ls="", marker="x", color=LEFT_OUT_COLOR, mew=2.5, label=gate))
    return handles


def confusion_matrix(conf: Confusion, path: Path) -> Path:
    """Counts and row percentages of (true, predicted) labels for one artifact, as PNG at ``path``."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib is the optional report extra

    m = np.asarray(conf.matrix)
    n = len(conf.labels)
    total = int(m.sum())
    fig = Figure(figsize=(2.2 + 1.3 * n, 1.6 + 1.2 * n), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(m, cmap="Blues", vmin=0)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    for i in range(n):
        for j in range(n):
            color = "white" if m[i, j] > 0.6 * m.max() else "black"
            ax.text(j, i, f"{m[i, j]}\n{100 * share[i, j]:.1f}%", ha="center", va="center", color=color, fontsize=11)
    rotate = 30 if max(len(x) for x in conf.labels) > 8 else 0
    ax.set_xticks(range(n), labels=conf.labels, rotation=rotate, ha="right" if rotate else "center")
    ax.set_yticks(range(n), labels=conf.labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    accuracy = 100 * np.trace(m) / total if total else 0.0
    ax.set_title(f"{conf.artifact}\n{total} texts, accuracy {accuracy:.2f}% (row % of each true label)", fontsize=10)
    fig.colorbar(image, ax=ax, label="texts", shrink=0.8)
    fig.savefig(path)
    return path


def _pareto_front(xs: Sequence[float], ys: Sequence[float], keep: Sequence[bool]) -> list[int]:
    """Indices of the kept points no other kept point beats on both latency and accuracy, fastest first."""
    front, best = [], float("-inf")
    for i in sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i])):
        if keep[i] and ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def _label_points(ax, results, xs, ys, area, chosen) -> None:
    """Names beside the markers, each where it covers no other name or marker.

    Tries right, left, above and below the marker, then further out with a leader line;
    boxes are estimated in points from the font size (8.5 pt, ~0.6 em per character).
    """
    fig = ax.figure
    fig.canvas.draw()  # settle the layout so the axes' size in points is final
    width_pt, height_pt = (v * 72.0 / fig.dpi for v in (ax.bbox.width, ax.bbox.height))
    to_axes = ax.transData + ax.transAxes.inverted()
    centres = [tuple(p * (width_pt, height_pt)) for p in to_axes.transform(list(zip(xs, ys, strict=True)))]
    radii = [s**0.5 / 2 for s in area]
    boxes = [(x - r, y - r, x + r, y + r) for (x, y), r in zip(centres, radii, strict=True)]  # markers, in pt
    for i in sorted(range(len(results)), key=lambda i: (-ys[i], xs[i])):
        is_chosen = results[i].name == chosen
        text = results[i].name + ("  (chosen)" if is_chosen else "")
        w, h, r = 0.6 * 8.5 * len(text) + 6, 13.0, radii[i] + 4
        (x, y), own = centres[i], boxes[i]
        candidates = [(r, 0, "left"), (-r, 0, "right"), (0, r + h / 2, "center"), (0, -r - h / 2, "center")]
        candidates += [(r + 10, k * h, "left") for n in range(1, 8) for k in (-n, n)]
        for dx, dy, ha in candidates:
            left = x + dx - {"left": 0, "center": w / 2, "right": w}[ha]
            box = (left, y + dy - h / 2, left + w, y + dy + h / 2)
            inside = box[0] >= 0 and box[2] <= width_pt and box[1] >= 0 and box[3] <= height_pt
            if inside and not any(_overlap(box, b) for b in boxes if b is not own):
                break
        boxes.append(box)
        ax.annotate(
            text,
            (xs[i], ys[i]),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=8.5,
            ha=ha,
            va="center",
            color=CHOSEN_COLOR if is_chosen else "black",
            fontweight="bold" if is_chosen else "normal",
            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 0} if abs(dy) > h else None,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            zorder=5,
        )


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _dot(color: str, marker: str, label: str, ms: float = 9.0, edge: str = "k"):
    from matplotlib.lines import Line2D  # noqa: PLC0415 - matplotlib is the optional report extra

    return Line2D(
        [], [], ls="", marker=marker, ms=ms, mfc=color, mec=edge, mew=1.5 if edge != "k" else 0.8, label=label
    )
