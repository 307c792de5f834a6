"""The comparison report: JSON (everything), a Markdown table (base vs fine-tuned, with deltas) and PNG plots."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Metrics where a smaller value is better; every other metric counts as higher-is-better.
_LOWER_IS_BETTER_PREFIXES = ("fad", "ar_loss", "sketch_perplexity", "flow_loss", "wer", "cer", "per")
# Bookkeeping values reported alongside metrics but never compared.
_COUNT_SUFFIXES = ("_count", "_frames", "_utterances", "_targets", "_std")


def lower_is_better(metric: str) -> bool:
    return metric.startswith(_LOWER_IS_BETTER_PREFIXES) and not metric.startswith("per_")


def is_comparable(metric: str) -> bool:
    return not metric.endswith(_COUNT_SUFFIXES)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def markdown_table(metrics: Mapping[str, Mapping[str, float]], baseline: str) -> str:
    """One row per comparable metric, one column per model, then delta and verdict of each model vs baseline."""
    names = list(metrics)
    others = [n for n in names if n != baseline]
    keys = sorted({k for m in metrics.values() for k in m if is_comparable(k)})
    header = ["metric", "better", *names] + [f"{o} - {baseline}" for o in others]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        direction = "lower" if lower_is_better(key) else "higher"
        row = [key, direction] + [_fmt(metrics[n].get(key)) for n in names]
        for o in others:
            a, b = metrics[baseline].get(key), metrics[o].get(key)
            if a is None or b is None:
                row.append("-")
                continue
            delta = b - a
            improved = (delta < 0) if direction == "lower" else (delta > 0)
            mark = "better" if improved else ("same" if delta == 0 else "worse")
            row.append(f"{delta:+.4g} ({mark})")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_metrics(metrics: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Grouped bars, one panel per comparable metric (scales differ too much for one axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics)
    keys = sorted({k for m in metrics.values() for k in m if is_comparable(k)})
    cols = min(4, max(1, len(keys)))
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        values = [metrics[n].get(key, float("nan")) for n in names]
        ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=7)
        ax.set_title(f"{key} ({'lower' if lower_is_better(key) else 'higher'} is better)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_history(history: Sequence[Mapping[str, float]], path: Path) -> Path | None:
    """Held-out curves from the callback's ``eval_metrics.jsonl`` (step on x); ``None`` when there is nothing."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for h in history for k in h if k != "step" and is_comparable(k)
                   and not k.endswith(("batches", "truncated", "seconds"))})
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [(h["step"], h[key]) for h in history if key in h]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3)
        ax.set_title(key, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(results: Mapping[str, Mapping[str, Any]], out_dir: str | Path, *, baseline: str,
                 meta: Mapping[str, Any] | None = None,
                 history: Sequence[Mapping[str, float]] | None = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``metrics.png`` (and ``history.png``) under ``out_dir``.

    ``results``: model name -> ``{"metrics": {...}, "skipped": {...}, ...}`` (extra keys are kept in the JSON).
    """
    if baseline not in results:
        raise ValueError(f"baseline {baseline!r} is not among the evaluated models {list(results)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {name: dict(r.get("metrics", {})) for name, r in results.items()}
    paths = {"json": out / "report.json", "markdown": out / "report.md", "plot": out / "metrics.png"}
    payload = {"baseline": baseline, "meta": dict(meta or {}), "models": {k: dict(v) for k, v in results.items()}}
    paths["json"].write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    md = [f"# Evaluation report\n\nBaseline: `{baseline}`.\n"]
    for key, value in (meta or {}).items():
        md.append(f"- {key}: {value}")
    md.append("\n## Metrics\n")
    md.append(markdown_table(metrics, baseline))
    caveats = [(name, metric, why) for name, r in results.items() for metric, why in (r.get("caveats") or {}).items()]
    if caveats:
        md.append("\n## Caveats\n")
        md += [f"- `{name}` / {metric}: {why}" for name, metric, why in caveats]
    skipped = {name: r.get("skipped") for name, r in results.items() if r.get("skipped")}
    if skipped:
        md.append("\n## Not computed\n")
        for name, reasons in skipped.items():
            for metric, why in reasons.items():
                md.append(f"- `{name}` / {metric}: {why}")
    md.append("\n![metrics](metrics.png)\n")
    plot_metrics(metrics, paths["plot"])
    hist = plot_history(history or [], out / "history.png")
    if hist is not None:
        paths["history"] = hist
        md.append("![held-out metrics during training](history.png)\n")
    paths["markdown"].write_text("\n".join(md), encoding="utf-8")
    logger.info("report written to %s", out)
    return paths
