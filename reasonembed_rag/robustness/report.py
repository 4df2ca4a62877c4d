"""Rendering a :func:`.runner.run_robustness` payload: :func:`markdown_section` (tables and notes) and :func:`plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .poison import (
    ASR_CUTOFFS,
)


def _cell(entry: dict[str, Any]) -> str:
    if "skipped" in entry:
        return "skipped"
    drop = entry.get("drop_pct")
    std = entry.get("ndcg@10_std")
    spread = f" ± {100 * std:.1f}" if std is not None else ""
    return f"{100 * entry['ndcg@10_mean']:.1f}{spread} ({'' if drop is None else f'{-drop:+.0f}%'})"


def markdown_section(payload: dict[str, Any], *, heading: str = "##", plot_path: str | None = None) -> str:
    """A Markdown section (tables and notes) for a :func:`run_robustness` payload."""
    settings = payload["settings"]
    families = settings["families"]
    lines = [
        f"{heading} Robustness: query perturbations and corpus poisoning",
        "",
        f"Word-change rate {settings['rate']}, seeds {settings['seeds']}, path `{settings['via']}`; tasks: "
        + ", ".join(f"{n} ({t['queries']} queries, {t['documents']} documents)" for n, t in payload["tasks"].items())
        + ". nDCG@10 x100 scored like BRIGHT; cells are mean ± std over seeds (change vs clean).",
        "",
        "| model | task | clean | " + " | ".join(families) + " |",
        "|---|---|---:|" + "---:|" * len(families),
    ]
    for name, model in payload["models"].items():
        for task, entry in model["tasks"].items():
            cells = [_cell(entry["perturbation"][f]) for f in families]
            lines.append(f"| {name} | {task} | {100 * entry['clean']['ndcg@10']:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Corpus poisoning: ASR@k = % of queries with an injected passage in the top k; "
        f"HotFlip budget per passage: {settings['hotflip']['steps']} steps x {settings['hotflip']['candidates']} "
        f"candidates, {settings['hotflip']['tokens']} tokens, starting from "
        f"{'the query-copy passage' if settings['hotflip']['start'] == 'query_copy' else 'random tokens'}.",
        "",
        "| model | task | attack | N | " + " | ".join(f"ASR@{k}" for k in ASR_CUTOFFS) + " | nDCG@10 | change | s |",
        "|---|---|---|---:|" + "---:|" * (len(ASR_CUTOFFS) + 3),
    ]
    for name, model in payload["models"].items():
        for task, entry in model["tasks"].items():
            for attack, sizes in entry["poisoning"].items():
                for size, row in sizes.items():
                    if "skipped" in row:
                        lines.append(f"| {name} | {task} | {attack} | {size} | skipped: {row['skipped']} |")
                        continue
                    asr = " | ".join(f"{100 * row[f'asr@{k}']:.0f}" for k in ASR_CUTOFFS)
                    lines.append(
                        f"| {name} | {task} | {attack} | {size} | {asr} | {100 * row['ndcg@10']:.1f} | "
                        f"{100 * row['ndcg@10_change']:+.1f} | {row['seconds']:.0f} |"
                    )
    lines += [
        "",
        f"- Synonyms: {payload['synonym_source'] or 'not run'}.",
        f"- Paraphrase: {payload['paraphrase']['status'].rstrip('.')}.",
        f"- Poisoning targets: {payload['poisoning_targets']}",
        "- Time per model: "
        + ", ".join(f"{n} {m['seconds']} s" for n, m in payload["models"].items())
        + f" ({payload['machine']}); total {payload['seconds']} s.",
    ]
    if payload["skipped_models"]:
        lines += [f"- Not run: `{alias}`: {why}" for alias, why in payload["skipped_models"].items()]
    if plot_path:
        lines += ["", f"![robustness]({plot_path})"]
    return "\n".join(lines) + "\n"


def plot(payload: dict[str, Any], path: str | Path) -> Path:
    """Two panels: % nDCG@10 drop per family, and ASR@10 per attack and N, one bar per model (task means)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(payload["models"])
    means = {name: payload["models"][name]["mean"] for name in models}
    families = [
        f for f in payload["settings"]["families"] if any(f in m.get("perturbation", {}) for m in means.values())
    ]
    configs = sorted(
        {(a, s) for m in means.values() for a, sizes in m.get("poisoning", {}).items() for s in sizes},
        key=lambda c: (c[0], int(c[1])),
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / max(1, len(models))
    for panel, (ax, groups, value, label) in enumerate(
        (
            (axes[0], families, lambda m, g: m["perturbation"].get(g, {}).get("drop_pct"), "nDCG@10 drop (%)"),
            (axes[1], configs, lambda m, g: m["poisoning"].get(g[0], {}).get(g[1], {}).get("asr@10"), "ASR@10"),
        )
    ):
        for i, name in enumerate(models):
            heights = [value(means[name], g) for g in groups]
            heights = [np.nan if h is None else (h if panel == 0 else 100 * h) for h in heights]
            ax.bar(np.arange(len(groups)) + i * width, heights, width, label=name)
        ticks = groups if panel == 0 else [f"{a}\nN={s}" for a, s in groups]
        ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2, ticks, fontsize=8)
        ax.set_ylabel(label + (" (%)" if panel == 1 else ""))
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].set_title("Query perturbations (higher = less robust)")
    axes[1].set_title("Corpus poisoning (higher = less robust)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target
