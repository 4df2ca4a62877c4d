"""``reasonembed-rag demo``: the main job, offline, in minutes on a small CPU.

Builds the offline reasoning tasks, indexes them into Chroma once per model, evaluates BM25 and each offline dense
model through all three paths (direct, LlamaIndex, LangChain), checks that the framework paths agree with the
direct reference, runs the robustness suite on a small budget (query perturbations, query-copy and HotFlip
poisoning of a scratch copy of each collection), then the question-answering agents of ``demos/`` (LlamaIndex and
LangChain, local SmolLM2 server) over the same collections with each retriever, and writes ``report.md``,
``results.json``, ``ndcg.png``, ``robustness.png`` and ``agents/`` to the output folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from ..evaluation.data import load_folder_task
from ..evaluation.offline import OFFLINE_TASKS, build_offline_tasks
from ..evaluation.report import format_table
from ..evaluation.runner import VIAS, TaskResult, evaluate_bm25, evaluate_dense
from ..llm import LLMChoice, add_llm_arguments, choose_llm_from_args
from ..models import ModelNotAvailableError
from ..retrieval import BM25

DEFAULT_MODELS = ("minilm-l6", "smollm2-135m", "reasonembed-smollm2-135m")
AGENT_RETRIEVERS = ("reasonembed-smollm2-135m", "minilm-l6", BM25.name)
"""The agent comparison's retrievers (those among the demo's models): the project's ReasonEmbed model against the two
baselines."""
ROBUSTNESS_MODELS = (BM25.name, "minilm-l6", "reasonembed-smollm2-135m")
"""The robustness summary's models (those among the demo's): lexical, encoder-only and LLM-based."""
DEFAULT_AGENT_QUESTIONS = 3
"""Questions per agent x retriever in the demo (each costs two small-LLM calls; about 5 minutes on 2 busy cores)."""
AGREEMENT_TOLERANCE = 0.002


def run_demo(
    output: Path,
    *,
    models: tuple[str, ...] = DEFAULT_MODELS,
    chroma: str | None = None,
    agent_questions: int = DEFAULT_AGENT_QUESTIONS,
    robustness: bool = True,
    llm: LLMChoice | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the demo and return what was written to ``results.json``.

    ``agent_questions=0`` skips the agent comparison (which starts a local LLM server unless ``llm`` or
    ``OPENAI_BASE_URL`` / ``OPENAI_MODEL`` name an endpoint); ``robustness=False`` skips the robustness summary.
    """
    from ..encoder import ReasonEmbedEncoder

    started = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    data_root = build_offline_tasks(output / "data")
    tasks = [load_folder_task(data_root, name) for name in OFFLINE_TASKS]
    chroma = chroma or str(output / "chroma")
    results: list[TaskResult] = [evaluate_bm25(task) for task in tasks]
    skipped: dict[str, str] = {}
    encoders: dict[str, Any] = {}
    for alias in models:
        try:
            encoder = encoders[alias] = ReasonEmbedEncoder.from_pretrained(alias)
        except ModelNotAvailableError as error:
            skipped[alias] = str(error)
            continue
        for task in tasks:
            for via in VIAS:
                results.append(evaluate_dense(task, encoder, via=via, chroma=chroma, show_progress=not quiet))
    agreement = _agreement(results)
    robust = None
    if robustness:
        from ..robustness import QUICK, plot, run_robustness

        loaded = {BM25.name: BM25(), **encoders}
        chosen = [loaded[name] for name in ROBUSTNESS_MODELS if name in loaded]
        robust = run_robustness(tasks, chosen, chroma=chroma, show_progress=not quiet, **QUICK)
        plot(robust, output / "robustness.png")
    agents = None
    if agent_questions > 0:
        from reasonembed_rag.demos.compare import run_comparison

        agents = run_comparison(
            output / "agents",
            limit=agent_questions,
            retrievers=tuple(name for name in AGENT_RETRIEVERS if name in (BM25.name, *models)),
            chroma=chroma,
            encoders=encoders,
            llm=llm,
            quiet=quiet,
        )
    payload = {
        "tasks": {t.name: {"queries": len(t.queries), "documents": len(t.documents)} for t in tasks},
        "results": [{"task": r.task, "model": r.model, "via": r.via, **r.summary()} for r in results],
        "agreement": agreement,
        "skipped_models": skipped,
        "robustness": robust,
        "agents": agents,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "seconds": round(time.perf_counter() - started, 1),
    }
    (output / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    _plot(results, output / "ndcg.png")
    (output / "report.md").write_text(_report(results, payload, output))
    return payload


def _agreement(results: list[TaskResult]) -> dict[str, Any]:
    """Largest |nDCG@10(framework) - nDCG@10(direct)| per model and task."""
    direct = {(r.model, r.task): r.metrics["ndcg@10"] for r in results if r.via == "direct"}
    worst = 0.0
    rows = []
    for r in results:
        if r.via != "direct" and (r.model, r.task) in direct:
            gap = abs(r.metrics["ndcg@10"] - direct[(r.model, r.task)])
            worst = max(worst, gap)
            rows.append({"model": r.model, "task": r.task, "via": r.via, "gap": gap})
    return {"max_gap": worst, "tolerance": AGREEMENT_TOLERANCE, "ok": worst <= AGREEMENT_TOLERANCE, "rows": rows}


def _plot(results: list[TaskResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.model}\n{r.via}" if r.model != BM25.name else r.model for r in results]
    values = [100 * r.metrics["ndcg@10"] for r in results]
    colours = {"direct": "#4c72b0", "llamaindex": "#dd8452", "langchain": "#55a868"}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(results)), 4.2))
    bars = ax.bar(
        range(len(results)), values, color=[colours[r.via] if r.model != BM25.name else "#8c8c8c" for r in results]
    )
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(results)), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("nDCG@10 (x100)")
    tasks = sorted({r.task for r in results})
    ax.set_title(f"Offline reasoning retrieval: {', '.join(tasks)}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _report(results: list[TaskResult], payload: dict[str, Any], output: Path) -> str:
    agreement = payload["agreement"]
    lines = [
        "# reasonembed-rag demo report",
        "",
        f"Machine: {payload['machine']}. Total time: {payload['seconds']} s.",
        "",
        "## Retrieval quality (offline tasks)",
        "",
        "Tasks: "
        + ", ".join(
            f"{name} ({v['queries']} queries, {v['documents']} documents)" for name, v in payload["tasks"].items()
        )
        + ". Scored like BRIGHT: excluded ids dropped, top 1000, pytrec_eval.",
        "",
        format_table(results),
        "",
        "![nDCG@10](ndcg.png)",
        "",
        "## Do the framework paths agree with the direct reference?",
        "",
        f"Largest |nDCG@10 difference| between a framework retriever and direct exact search: "
        f"{agreement['max_gap']:.4f} (tolerance {agreement['tolerance']}): "
        f"{'agree' if agreement['ok'] else 'DISAGREE'}.",
        "",
    ]
    if payload.get("robustness"):
        from ..robustness import markdown_section as robustness_section

        lines += [robustness_section(payload["robustness"], plot_path="robustness.png"), ""]
    if payload.get("agents"):
        from reasonembed_rag.demos.compare import markdown_section

        lines += [markdown_section(payload["agents"], relative_to=output), ""]
    if payload["skipped_models"]:
        lines += ["## Models not evaluated", ""]
        lines += [f"- `{alias}`: {why}" for alias, why in payload["skipped_models"].items()]
        lines.append("")
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    output = Path(args.output)
    payload = run_demo(
        output,
        models=tuple(args.models.split(",")),
        chroma=args.chroma,
        agent_questions=args.agent_questions,
        robustness=not args.no_robustness,
        llm=choose_llm_from_args(args),
    )
    print((output / "report.md").read_text())
    print(f"Report: {output / 'report.md'}  results: {output / 'results.json'}  plot: {output / 'ndcg.png'}")
    return 0 if payload["agreement"]["ok"] else 1


def register(commands: Any) -> None:
    """Add ``demo`` to the ``reasonembed-rag`` parser."""
    parser = commands.add_parser(
        "demo",
        help="the main job: offline tasks, Chroma, both frameworks, report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="demo-output", help="report folder (default: ./demo-output)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated dense models")
    parser.add_argument("--chroma", default=None, help="Chroma folder or URL (default: OUTPUT/chroma)")
    parser.add_argument(
        "--no-robustness", action="store_true", help="skip the robustness summary (perturbations and poisoning)"
    )
    parser.add_argument(
        "--agent-questions",
        type=int,
        default=DEFAULT_AGENT_QUESTIONS,
        metavar="N",
        help=f"CHAMP questions each agent answers with each retriever (default {DEFAULT_AGENT_QUESTIONS}; 0 skips the "
        "agents)",
    )
    add_llm_arguments(parser, title="LLM of the agents (default: OPENAI_*, else a local transformers serve)")
    parser.set_defaults(func=_demo)
