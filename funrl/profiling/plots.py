"""Pictures of a run's time breakdown (matplotlib, Agg backend, PNG).

- :func:`plot_pie`: share of RL time by phase, with the orchestration overhead as its own slice,
  like Figure 4b of the Fun-ASR report (a pie of RL time by component, labelled with each part's
  share and the total time). Slices under 2% go to the legend only, so labels never collide.
- :func:`plot_per_step`: one stacked bar per step (phases bottom-up in pipeline order, overhead
  on top), so slow steps and what made them slow stand out.

Each phase keeps the same colour in both pictures.
"""

from __future__ import annotations

from pathlib import Path

from funrl.profiling.report import OVERHEAD, phase_order

_COLOURS = {
    "encode": "#4e79a7", "rollout": "#f28e2b", "reward": "#59a14f", "advantage": "#b07aa1",
    "logprob_old": "#76b7b2", "logprob_ref": "#9c755f", "update": "#e15759", "weight_sync": "#edc948",
    "eval": "#86bcb6", "checkpoint": "#ff9da7", "wake": "#2f4b7c", "sleep": "#a0cbe8", "idle": "#d7d7d7",
    OVERHEAD: "#595959",
}
_EXTRA = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22"]
SMALL = 0.04  # slices below this share are named in the legend only, so labels never collide


def colour(name: str) -> str:
    return _COLOURS.get(name) or _EXTRA[sum(map(ord, name)) % len(_EXTRA)]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pie(report: dict, path: str | Path) -> Path:
    """Donut of total time by phase (+ overhead) over all steps, total in the middle; returns the PNG path."""
    plt = _plt()
    items = [(n, p["total_s"]) for n, p in report["phases"].items() if p["total_s"] > 0]
    total = sum(v for _, v in items)
    labels = ["orchestration overhead" if n == OVERHEAD else n for n, _ in items]
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=120)
    wedges, texts = ax.pie(
        [v for _, v in items], colors=[colour(n) for n, _ in items], startangle=90, counterclock=False,
        wedgeprops={"width": 0.42, "linewidth": 1, "edgecolor": "white"}, radius=1.0,
        labels=[f"{lab}\n{100 * v / total:.1f}%" if v / total >= SMALL else "" for lab, (_, v) in zip(labels, items)],
        labeldistance=1.13, textprops={"fontsize": 9},
    )
    st = report["step_time"]
    ax.text(0, 0.08, _seconds(st["total_s"]), ha="center", va="center", fontsize=15, weight="bold")
    ax.text(0, -0.14, f"{report['steps']} steps, {_seconds(st['mean'])}/step", ha="center", va="center", fontsize=9)
    ax.legend(wedges, [f"{lab}  {_seconds(v)}  ({100 * v / total:.1f}%)" for lab, (_, v) in zip(labels, items)],
              loc="center left", bbox_to_anchor=(1.12, 0.5), fontsize=9, frameon=False)
    ax.set_title("RL time by phase", fontsize=12, weight="bold", pad=28)
    ax.axis("equal")
    fig.tight_layout()
    return _save(fig, plt, path)


def _seconds(x: float) -> str:
    """3 significant figures, switching to minutes/hours for long runs."""
    if x >= 7200:
        return f"{x / 3600:.3g} h"
    if x >= 600:
        return f"{x / 60:.3g} min"
    return f"{x:.3g} s"


def plot_per_step(report: dict, path: str | Path) -> Path:
    """Stacked bar of each step's phase seconds (+ overhead); returns the PNG path."""
    plt = _plt()
    rows = report["per_step"]
    names = phase_order({p for r in rows for p in r["phases"]})
    x = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 0.35 * len(rows) + 4)), 4.5), dpi=120)
    bottom = [0.0] * len(rows)
    width = 0.8 if len(rows) < 2 else 0.8 * min(b - a for a, b in zip(x, x[1:]))
    for name in [*names, OVERHEAD]:
        vals = [max(0.0, r[OVERHEAD]) if name == OVERHEAD else r["phases"].get(name, 0.0) for r in rows]
        if not any(vals):
            continue
        label = "orchestration overhead" if name == OVERHEAD else name
        ax.bar(x, vals, width=width, bottom=bottom, color=colour(name), label=label, edgecolor="white", linewidth=0.3)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xlabel("step")
    ax.set_ylabel("seconds")
    ax.set_title("Time per step by phase")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False, reverse=True)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if len(rows) <= 30:
        ax.set_xticks(x)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
