"""``reasonembed-rag demo``: the main job, offline, in about ten minutes on a small CPU.

1. The comparison: BM25 and each offline dense model, alone and fused with BM25 (hybrid), and again with
   LLM-expanded queries (test-time reasoning expansion), on the offline test side (``champ_concepts``) and the
   out-of-domain validation (``champ_concepts_ood``); nDCG@10 with a bootstrap 95% interval per cell and a paired
   test of each cell against ``minilm-l6`` alone (:mod:`reasonembed_rag.evaluation.comparison`). Each corpus is
   embedded once per model (Chroma) and every variant reuses those vectors.
2. The best pipeline, chosen on the validation only, through direct search, LlamaIndex and LangChain (on the
   validation's 42 queries, the cheaper side), checking that the three agree.
3. A bounded robustness summary (query perturbations, query-copy and HotFlip poisoning of a scratch collection copy).
4. The question-answering agents of ``demos/`` (LlamaIndex and LangChain, a local SmolLM2 server answering many
   questions at once) with the best pipeline against the baselines, with confidence intervals and paired tests.

Writes ``report.md``, ``results.json`` (with the seconds each phase took), ``comparison.png``, ``robustness.png``
and ``agents/`` to the output folder; LLM expansions are cached in ``expansions.jsonl`` and answers under
``agents/cache``, so a rerun reuses them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from ..evaluation import comparison
from ..evaluation.data import RetrievalTask, load_folder_task
from ..evaluation.offline import CHAMP_OOD_TASK, CHAMP_TASK, build_offline_tasks
from ..evaluation.report import format_table
from ..evaluation.runner import VIAS, TaskResult, collection_name, evaluate_bm25, evaluate_dense
from ..fusion import Hybrid
from ..llm import LLMChoice, add_llm_arguments, choose_llm, choose_llm_from_args, exit_cleanly_on_sigterm
from ..models import ModelNotAvailableError
from ..retrieval import BM25

DEFAULT_MODELS = ("minilm-l6", "reasonembed-minilm-l6", "reasonembed-smollm2-135m")
"""The offline dense models: the MiniLM baseline and the project's two trained models. The raw ``smollm2-135m``
backbone (``--models`` adds it) costs as much as the trained one to embed and scores far below both."""
BASELINE = "minilm-l6"
"""The strongest offline baseline: every comparison cell is tested against it alone."""
TASKS = {CHAMP_TASK: "Test side: champ_concepts", CHAMP_OOD_TASK: "Out-of-domain validation: champ_concepts_ood"}
"""The comparison's tasks and their titles; the best pipeline is chosen on the validation (the second) only."""
VALIDATION_STAND_INS = {"reasonembed-minilm-l6": "reasonembed-minilm-l6-ood"}
"""Models refit on the whole TRAIN side, the validation's problems included, and the twin that scores each on the
validation instead: the same recipe and seed trained without the validation's problems and concepts. Their validation
cells are the recipe's out-of-domain numbers, so the choice made there stays out of domain (training/README.md)."""
AGENT_VARIANTS = ("alone", "+hybrid")
"""Pipelines an agent can search with (the agents write their own query expansion, so '+expansion' is not one)."""
ROBUSTNESS_MODELS = (BM25.name, "minilm-l6", "reasonembed-minilm-l6")
"""The robustness summary's models (those among the demo's): lexical, the baseline and the project's model."""
HYBRID = Hybrid(weight=0.1)
"""The demo's hybrid: min-max fusion with BM25 at weight 0.1 (dense 0.9), chosen by leave-one-category-out
cross-validation over the 114 TRAIN problems: with the seed-42 fold models 0.1 came first for MiniLM and the trained
model, with and without expansion; over three seeds it is level with the library default of 0.25 for the trained
model (training/README.md). ``reasonembed-rag bright --hybrid bm25 --hybrid-weight 0.1`` reproduces its cells."""
EXPANSION_MAX_TOKENS = 64
"""The demo's sketch length: with the local SmolLM2-135M, 64 tokens scored as well as the library default of 128 on
the validation (greedy sketches cut to 32 / 64 / 96 / 128 tokens, docs/measurements.md) at half the generation."""
DEFAULT_AGENT_QUESTIONS = 8
"""Test-side questions per agent x retriever (each costs two small-LLM calls, sent 16 at a time)."""
AGREEMENT_TOLERANCE = 0.002


class _Clock:
    """Wall seconds per phase, printed as each phase ends (unless quiet), for the report and for finding waste; and
    the CPU seconds of the whole run (this process and the LLM server it started), which on a shared machine say
    more about the demo's cost than its wall time does."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = self.last = time.perf_counter()
        self.cpu_started = _cpu_seconds()
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self.last, 1)
        self.last = now
        if not self.quiet:
            print(f"[demo {now - self.started:6.1f} s] {phase} done ({self.phases[phase]:.1f} s)", file=sys.stderr)

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.started, 1)

    @property
    def cpu(self) -> float:
        """CPU seconds so far (children count once they have exited, like a stopped LLM server)."""
        return round(_cpu_seconds() - self.cpu_started, 1)


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_demo(
    output: Path,
    *,
    models: tuple[str, ...] = DEFAULT_MODELS,
    chroma: str | None = None,
    agent_questions: int = DEFAULT_AGENT_QUESTIONS,
    robustness: bool = True,
    expansion: bool = True,
    llm: LLMChoice | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the demo and return what was written to ``results.json``.

    ``expansion=False`` skips the expanded variants and ``agent_questions=0`` the agents (with both off no LLM
    starts; otherwise a local LLM server starts once for both, unless ``llm`` or ``OPENAI_BASE_URL`` /
    ``OPENAI_MODEL`` name an endpoint); ``robustness=False`` skips the robustness summary.
    """
    from ..encoder import ReasonEmbedEncoder

    clock = _Clock(quiet)
    output.mkdir(parents=True, exist_ok=True)
    data_root = build_offline_tasks(output / "data")
    tasks = [load_folder_task(data_root, name) for name in TASKS]
    chroma = chroma or str(output / "chroma")
    lexical = {task.name: evaluate_bm25(task) for task in tasks}
    cells = [comparison.Cell(BM25.name, "alone", lexical[task.name]) for task in tasks]
    clock.lap("BM25")
    skipped: dict[str, str] = {}
    encoders: dict[str, Any] = {}
    stand_ins: dict[str, Any] = {}  # alias -> the twin that scores it on the validation
    for alias in models:
        try:
            encoders[alias] = ReasonEmbedEncoder.from_pretrained(alias)
            if alias in VALIDATION_STAND_INS:
                stand_ins[alias] = ReasonEmbedEncoder.from_pretrained(VALIDATION_STAND_INS[alias])
        except ModelNotAvailableError as error:
            skipped[alias] = str(error)
            encoders.pop(alias, None)
            continue
        for task in tasks:
            encoder = _scorer(task, alias, encoders, stand_ins)
            collection = _collection(tasks, task, encoder)
            dense = evaluate_dense(task, encoder, chroma=chroma, collection=collection, show_progress=not quiet)
            cells.append(comparison.Cell(alias, "alone", dense))
            cells.append(
                comparison.Cell(alias, "+hybrid", comparison.fused(task, dense, lexical[task.name], hybrid=HYBRID))
            )
        clock.lap(f"retrieval: {alias}")
    # Chosen before any LLM runs: agents search with a model alone or hybrid, never with the demo's expansion.
    best = comparison.best_pipeline(comparison.compare(cells, BASELINE), CHAMP_OOD_TASK, variants=AGENT_VARIANTS)
    paths = _three_paths(tasks[1], best, {**encoders, **stand_ins}, chroma, quiet)  # the validation: 42 queries
    clock.lap("three paths")
    robust = None
    if robustness:
        from ..robustness import QUICK, plot, run_robustness

        loaded = {BM25.name: BM25(), **encoders}
        chosen = [loaded[name] for name in ROBUSTNESS_MODELS if name in loaded]
        robust = run_robustness(tasks[:1], chosen, chroma=chroma, show_progress=not quiet, **QUICK)
        plot(robust, output / "robustness.png")
        clock.lap("robustness")
    expansion_stats = agents = None
    if expansion or agent_questions > 0:
        with (llm or choose_llm()).open(announce=not quiet) as endpoint:  # one LLM for expansion and agents
            clock.lap("LLM start")
            if expansion:
                expansion_stats = _expanded_cells(tasks, encoders, stand_ins, endpoint, output, chroma, cells, quiet)
                clock.lap("expansion (generate, then every model)")
            if agent_questions > 0:
                from reasonembed_rag.demos.compare import run_comparison

                retrievers = tuple(dict.fromkeys((_agent_retriever(best), BASELINE, BM25.name)))
                agents = run_comparison(
                    output / "agents",
                    limit=agent_questions,
                    retrievers=tuple(name for name in retrievers if name.split("+")[0] in (BM25.name, *encoders)),
                    chroma=chroma,
                    encoders=encoders,
                    llm=endpoint.config,
                    hybrid=HYBRID,
                    quiet=quiet,
                )
                clock.lap("agents")
    rows = comparison.compare(cells, BASELINE)
    agreement = _agreement(paths)
    payload = {
        "tasks": {t.name: {"queries": len(t.queries), "documents": len(t.documents)} for t in tasks},
        "comparison": rows,
        "best_pipeline": {
            "pipeline": best["pipeline"],
            "chosen_on": CHAMP_OOD_TASK,
            "validation_ndcg@10": best["mean"],
        },
        "validation_stand_ins": {alias: VALIDATION_STAND_INS[alias] for alias in stand_ins},
        "expansion": expansion_stats,
        "results": [{"task": r.task, "model": r.model, "via": r.via, **r.summary()} for r in paths],
        "agreement": agreement,
        "skipped_models": skipped,
        "robustness": robust,
        "agents": agents,
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[1]:.1f} over the last 5 minutes), Python {platform.python_version()}",
        "phases": clock.phases,
        "seconds": clock.total,
        "cpu_seconds": clock.cpu,
    }
    (output / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    comparison.plot(rows, output / "comparison.png", TASKS)
    (output / "report.md").write_text(_report(paths, payload, output))
    return payload


def _expanded_cells(
    tasks: list[RetrievalTask],
    encoders: dict[str, Any],
    stand_ins: dict[str, Any],
    endpoint: Any,
    output: Path,
    chroma: str,
    cells: list[comparison.Cell],
    quiet: bool,
) -> dict[str, Any]:
    """Append the expanded cells (BM25, and each model alone and hybrid) to ``cells``; return the expansion's cost.

    The sketches are generated once per query (cached in ``OUTPUT/expansions.jsonl``, resumable) and every model
    reuses them."""
    from ..expansion import QueryExpander

    with QueryExpander(
        endpoint, cache=output / "expansions.jsonl", max_tokens=EXPANSION_MAX_TOKENS, show_progress=not quiet
    ) as expander:
        lexical = {task.name: evaluate_bm25(task, expand=expander) for task in tasks}
        cells += [comparison.Cell(BM25.name, "+expansion", lexical[task.name]) for task in tasks]
        for alias in encoders:
            for task in tasks:
                encoder = _scorer(task, alias, encoders, stand_ins)
                collection = _collection(tasks, task, encoder)
                dense = evaluate_dense(
                    task, encoder, chroma=chroma, collection=collection, expand=expander, show_progress=not quiet
                )
                cells.append(comparison.Cell(alias, "+expansion", dense))
                fused = comparison.fused(task, dense, lexical[task.name], hybrid=HYBRID)
                cells.append(comparison.Cell(alias, "+hybrid+expansion", fused))
        return expander.summary()


def _scorer(task: RetrievalTask, alias: str, encoders: dict[str, Any], stand_ins: dict[str, Any]) -> Any:
    """The encoder that scores ``alias`` on ``task``: its validation stand-in there (:data:`VALIDATION_STAND_INS`)."""
    return stand_ins.get(alias, encoders[alias]) if task.name == CHAMP_OOD_TASK else encoders[alias]


def _collection(tasks: list[RetrievalTask], task: RetrievalTask, encoder: Any) -> str:
    """The first task's collection when ``task`` has the same corpus (the validation searches the same 89 concepts
    as the test side), so each model embeds it once."""
    same = next((first for first in tasks if first.documents == task.documents), task)
    return collection_name(same, encoder)


def _agent_retriever(best: dict[str, Any]) -> str:
    """The agents' name for a pipeline (``demos.retrievers``: ``MODEL+bm25`` is the hybrid)."""
    return best["model"] + ("+bm25" if best["variant"] == "+hybrid" else "")


def _three_paths(
    task: RetrievalTask, best: dict[str, Any], encoders: dict[str, Any], chroma: str, quiet: bool
) -> list[TaskResult]:
    """The best pipeline on ``task`` through each path (direct, LlamaIndex, LangChain)."""
    if best["model"] == BM25.name:
        return [evaluate_bm25(task)]
    hybrid = HYBRID if best["variant"] == "+hybrid" else None
    return [
        evaluate_dense(task, encoders[best["model"]], via=via, chroma=chroma, hybrid=hybrid, show_progress=not quiet)
        for via in VIAS
    ]


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


def _report(paths: list[TaskResult], payload: dict[str, Any], output: Path) -> str:
    agreement = payload["agreement"]
    best = payload["best_pipeline"]
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in payload["phases"].items())
    lines = [
        "# reasonembed-rag demo report",
        "",
        f"Machine: {payload['machine']}. Total time: {payload['seconds']} s ({phases}); CPU time "
        f"{payload['cpu_seconds']} s (this process and the LLM server it started).",
        "",
        "## Retrieval: each model alone, + hybrid, + expansion",
        "",
        "Tasks: "
        + ", ".join(
            f"{name} ({v['queries']} queries, {v['documents']} documents)" for name, v in payload["tasks"].items()
        )
        + f". Scored like BRIGHT: excluded ids dropped, top 1000, pytrec_eval. Hybrid: {1 - HYBRID.weight:g} dense + "
        f"{HYBRID.weight:g} BM25, {HYBRID.fusion} fusion (the weight chosen by cross-validation out of domain). "
        f"Expansion: the LLM's reasoning sketch ({EXPANSION_MAX_TOKENS} tokens at most) appended to each query.",
        "",
        comparison.markdown_tables(payload["comparison"], TASKS),
        "",
        *(
            f"On the validation, `{alias}` (refit on the whole TRAIN side, these "
            f"{payload['tasks'][CHAMP_OOD_TASK]['queries']} problems included) is scored by "
            f"`{twin}`: the same recipe and seed trained without them, so its cells there are out of domain."
            for alias, twin in payload.get("validation_stand_ins", {}).items()
        ),
        "",
        "![Comparison](comparison.png)",
        "",
    ]
    if payload["expansion"]:
        stats = payload["expansion"]
        lines += [
            f"Expansion: {stats['llm']}; {stats['generated']} sketches generated in this run "
            f"({stats['completion_tokens']} tokens, {stats['seconds']:.0f} s), the rest from the cache; "
            f"{stats['failed']} failed (those queries are searched as they are).",
            "",
        ]
    lines += [
        f"**Best pipeline, chosen on the validation ({best['chosen_on']}) only:** `{best['pipeline']}` "
        f"({100 * best['validation_ndcg@10']:.1f} nDCG@10 there). The agents below use it.",
        "",
        "## Do the framework paths agree with the direct reference?",
        "",
        f"The best pipeline on the validation through each path. Largest |nDCG@10 difference| between a framework "
        f"retriever and direct exact search: {agreement['max_gap']:.4f} (tolerance {agreement['tolerance']}): "
        f"{'agree' if agreement['ok'] else 'DISAGREE'}.",
        "",
        format_table(paths),
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
    exit_cleanly_on_sigterm()  # a plain SIGTERM would skip the clean-up that stops the local LLM server
    output = Path(args.output)
    payload = run_demo(
        output,
        models=tuple(args.models.split(",")),
        chroma=args.chroma,
        agent_questions=args.agent_questions,
        robustness=not args.no_robustness,
        expansion=not args.no_expansion,
        llm=choose_llm_from_args(args),
    )
    print((output / "report.md").read_text())
    print(f"Report: {output / 'report.md'}  results: {output / 'results.json'}  plot: {output / 'comparison.png'}")
    return 0 if payload["agreement"]["ok"] else 1


def register(commands: Any) -> None:
    """Add ``demo`` to the ``reasonembed-rag`` parser."""
    parser = commands.add_parser(
        "demo",
        help="the main job: offline comparison with confidence intervals, both frameworks, agents, report",
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
        "--no-expansion", action="store_true", help="skip the LLM-expanded variants (test-time reasoning expansion)"
    )
    parser.add_argument(
        "--agent-questions",
        type=int,
        default=DEFAULT_AGENT_QUESTIONS,
        metavar="N",
        help=f"test-side CHAMP questions each agent answers with each retriever (default {DEFAULT_AGENT_QUESTIONS}; "
        "0 skips the agents)",
    )
    add_llm_arguments(parser, title="LLM of the expansion and the agents (default: OPENAI_*, else a local server)")
    parser.set_defaults(func=_demo)
