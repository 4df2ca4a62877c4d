"""``python -m demos.compare``: the same questions answered by each agent with each retriever, end to end.

Offline (the default) the questions are the CHAMP test-side problems of the ``champ_concepts`` task, with their gold
concepts and gold answers, and the LLM is a local ``transformers serve`` of SmolLM2-135M-Instruct; online, any
BRIGHT-layout folder or ``xlangai/BRIGHT`` and any OpenAI-compatible endpoint. Per agent x retriever it reports:

* recall: the share of gold documents among the documents the agent actually put in the LLM's context;
* nDCG@10 of the agent's first search (pytrec_eval, as the evaluation scores retrieval);
* answer accuracy against the gold answer (mechanical normalised / numeric / formula match, :mod:`demos.scoring`;
  optionally an LLM judge);
* searches, LLM calls, prompt and completion tokens, and seconds per question.

Results go to ``OUTPUT/report.md``, ``results.json``, ``agents.png`` and ``answers.jsonl``. Answers are cached in
``OUTPUT/cache/answers.jsonl`` keyed by question, agent, mode, retriever, LLM, settings and prompts: an interrupted
run resumes where it stopped, and a finished one reruns without calling the LLM (nor starting a local one). Failed
questions are reported and not cached, so a rerun retries them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasonembed_rag.evaluation.data import RetrievalTask, load_folder_task, load_hub_task
from reasonembed_rag.evaluation.offline import CHAMP_TASK, build_offline_tasks
from reasonembed_rag.fusion import HYBRID_WEIGHT, Hybrid
from reasonembed_rag.jsonl import read_jsonl
from reasonembed_rag.llm import (
    LLMChoice,
    LLMClient,
    LLMConfig,
    add_llm_arguments,
    choose_llm,
    choose_llm_from_args,
    display_model,
    exit_cleanly_on_sigterm,
    map_concurrently,
)

from . import core
from .core import AGENTS, MODES, AgentSettings
from .llm import resolve_mode
from .scoring import PAIRED_METRICS, answer_matches, judge_answer, per_question, summarize

__all__ = ["DEFAULT_LIMIT", "DEFAULT_RETRIEVERS", "main", "markdown_section", "run_comparison"]

DEFAULT_RETRIEVERS = ("reasonembed-smollm2-135m", "minilm-l6", "bm25")
"""The ReasonEmbed model this project trains, the MiniLM baseline, and BM25."""
DEFAULT_LIMIT = 10
HUB_DATASET = "xlangai/BRIGHT"
CACHE_VERSION = 1
PLOT_NAME = "agents.png"


def _prompts_fingerprint() -> str:
    """Changes whenever a prompt changes, so cached answers from other prompts are not reused."""
    texts = [getattr(core, name) for name in dir(core) if name.endswith("_PROMPT") or name.startswith("SEARCH_TOOL")]
    return hashlib.sha256("\n".join(sorted(map(str, texts))).encode()).hexdigest()[:12]


class AnswerCache:
    """Answers on disk, one JSON line each, keyed by everything that decides them; later lines win."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # questions are answered on several threads
        if path is not None and path.exists():
            for _, entry in read_jsonl(path, fields=("key",), skip=self._ignore):
                self.entries[entry["key"]] = entry

    @staticmethod
    def _ignore(error: Exception) -> None:
        print(f"Ignoring an unreadable line of the answer cache: {error}", file=sys.stderr)

    @staticmethod
    def key(**parts: Any) -> str:
        text = json.dumps({"version": CACHE_VERSION, "prompts": _prompts_fingerprint(), **parts}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        entry = {**record, "key": key}
        with self._lock:
            self.entries[key] = entry
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


class _LazyEndpoint:
    """The LLM endpoint, opened (a local server started) only when a question is not in the cache."""

    def __init__(self, stack: contextlib.ExitStack, choice: LLMChoice, quiet: bool) -> None:
        self._stack, self._choice, self._quiet = stack, choice, quiet
        self.config: LLMConfig | None = None
        self.description = ""
        self.modes: dict[str, tuple[str, str]] = {}

    @property
    def identity(self) -> str:
        """The model name answers are cached under (known without starting a local server)."""
        return self._choice.identity

    def open(self) -> LLMConfig:
        if self.config is None:
            endpoint = self._stack.enter_context(self._choice.open(announce=not self._quiet))
            self.config, self.description = endpoint.config, endpoint.description
        return self.config

    def mode(self, requested: str) -> tuple[str, str]:
        if requested not in self.modes:
            self.modes[requested] = resolve_mode(requested, self.open())
        return self.modes[requested]


def _load_tasks(data: str | Path | None, tasks: Sequence[str] | None, output: Path) -> list[RetrievalTask]:
    if data is None:
        root = build_offline_tasks(output / "data")
        return [load_folder_task(root, name) for name in (tasks or (CHAMP_TASK,))]
    if str(data) == HUB_DATASET:
        if not tasks:
            raise ValueError(
                f"With --data {HUB_DATASET}, name the BRIGHT tasks with --tasks (e.g. biology,economics)."
            )
        return [load_hub_task(name) for name in tasks]
    root = Path(data)
    if not tasks:
        from reasonembed_rag.evaluation.data import list_folder_tasks

        tasks = list_folder_tasks(root)
    return [load_folder_task(root, name) for name in tasks]


def _build_agent(framework: str, source: Any, config: LLMConfig, mode: str, settings: AgentSettings) -> Any:
    from .llm import langchain_chat_model, llama_index_llm

    retriever = source.for_framework(framework, depth=settings.depth)
    if framework == "llamaindex":
        from .llama_index_agent import LlamaIndexAgent

        llm = llama_index_llm(
            config,
            max_tokens=settings.answer_tokens,
            temperature=settings.temperature,
            function_calling=mode == "tools",
        )
        return LlamaIndexAgent(retriever, llm, mode=mode, settings=settings)
    from .langchain_agent import LangChainAgent

    chat_model = langchain_chat_model(config, max_tokens=settings.answer_tokens, temperature=settings.temperature)
    return LangChainAgent(retriever, chat_model, mode=mode, settings=settings)


def run_comparison(
    output: Path,
    *,
    limit: int | None = DEFAULT_LIMIT,
    retrievers: tuple[str, ...] = DEFAULT_RETRIEVERS,
    agents: tuple[str, ...] = AGENTS,
    mode: str = "auto",
    data: str | Path | None = None,
    tasks: tuple[str, ...] | None = None,
    chroma: str | Path | None = None,
    llm: LLMChoice | LLMConfig | None = None,
    settings: AgentSettings | None = None,
    encoders: Mapping[str, Any] | None = None,
    hybrid: Hybrid | None = None,
    judge: bool = False,
    use_cache: bool = True,
    concurrency: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Answer the questions with every agent x retriever, score them, and write the report.

    Args:
        output: Folder for ``report.md``, ``results.json``, ``agents.png``, ``answers.jsonl`` and the answer cache.
        limit: Questions per task (the first ones, in file order); None for all.
        retrievers: ``bm25`` and dense model names; a model that cannot be loaded (not trained yet, Hub offline) is
            skipped with a note.
        agents: ``llamaindex`` and/or ``langchain``.
        mode: ``auto`` (probe the endpoint), ``tools`` or ``loop``.
        data: None for the offline CHAMP task; a BRIGHT-layout folder; or ``xlangai/BRIGHT`` (needs the Hub).
        tasks: Task names (default: ``champ_concepts`` offline, every task of a folder).
        chroma: Chroma folder or URL for the dense collections (default ``OUTPUT/chroma``; pass the evaluation's to
            reuse its vectors).
        llm: The LLM: a choice (:func:`reasonembed_rag.llm.choose_llm`) or an endpoint's config; None:
            ``OPENAI_BASE_URL`` / ``OPENAI_MODEL`` if set, else a local SmolLM2 server started when first needed.
        settings: Agent limits and prompt settings (default :class:`~demos.core.AgentSettings`).
        encoders: Already loaded encoders by retriever name (e.g. the demo's), used instead of loading them again.
        hybrid: The fusion of ``MODEL+bm25`` retrievers (default: min-max, BM25 weight 0.25).
        judge: Also ask the LLM whether each answer agrees with the gold answer.
        use_cache: Reuse and extend ``OUTPUT/cache/answers.jsonl``.
        concurrency: Questions answered at a time (default: the endpoint's ``concurrency``, 16 for the local server,
            whose continuous batching makes concurrent requests several times faster than one at a time).
        quiet: No progress bar or messages.

    Returns:
        The JSON payload written to ``results.json``.
    """
    from tqdm.auto import tqdm

    from .retrievers import open_retrievers

    unknown = [agent for agent in agents if agent not in AGENTS]
    if unknown or not agents:
        raise ValueError(f"Unknown agents {unknown or agents!r}; choose from {', '.join(AGENTS)}.")
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose from {', '.join(MODES)}.")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 (or None for all questions), got {limit}.")
    settings = settings or AgentSettings()
    started = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    task_list = _load_tasks(data, tasks, output)
    cache = AnswerCache(output / "cache" / "answers.jsonl" if use_cache else None)
    records: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    retriever_info: dict[str, dict[str, Any]] = {}
    counts = {"cached": 0, "answered": 0}
    with contextlib.ExitStack() as stack:
        choice = LLMChoice("flags", config=llm) if isinstance(llm, LLMConfig) else llm or choose_llm()
        endpoint = _LazyEndpoint(stack, choice, quiet)
        for task in task_list:
            questions = task.queries[:limit] if limit else task.queries
            sources, task_skipped = open_retrievers(
                task,
                retrievers,
                chroma=chroma or output / "chroma",
                encoders=encoders,
                hybrid=hybrid,
                show_progress=not quiet,
            )
            skipped.update(task_skipped)
            for name, source in sources.items():
                retriever_info[name] = {"identity": source.identity, "index_seconds": source.index_seconds}
            work = [
                _Answerer(framework, source, endpoint, mode, settings)
                for framework, source in itertools.product(agents, sources.values())
            ]
            items = [(answerer, question) for answerer in work for question in questions]
            found = [answerer.cached(task, question, cache) for answerer, question in items]
            missing = [index for index, record in enumerate(found) if record is None]
            counts["cached"] += len(items) - len(missing)
            if missing:
                endpoint.mode(mode)  # opens the endpoint (starts a local server) once, before any thread needs it
                for answerer in {items[index][0] for index in missing}:
                    answerer.build()  # first imports of the frameworks happen here, never in two threads at once
                lanes = concurrency or endpoint.open().concurrency
                answered = map_concurrently(
                    lambda job: job[0].answer(job[1], job[2], cache),
                    [(items[index][0], task, items[index][1]) for index in missing],
                    concurrency=lanes,
                )
                desc = f"Agents on {task.name} ({lanes} at a time)"
                with tqdm(total=len(missing), desc=desc, unit="answer", disable=quiet) as bar:
                    for position, answer in answered:
                        if isinstance(answer, Exception):
                            raise answer
                        found[missing[position]] = answer
                        bar.update(1)
                counts["answered"] += len(missing)
            for (answerer, question), record in zip(items, found, strict=True):
                assert record is not None  # every missing record was answered above
                records.append(answerer.scored(question, record, cache, judge=judge))
    payload = _payload(
        records, task_list, limit, retrievers, agents, mode, endpoint, settings, skipped, retriever_info, counts
    )
    payload["seconds"] = round(time.perf_counter() - started, 1)
    payload["output"] = str(output.resolve())
    _write(output, payload, records)
    return payload


class _Answerer:
    """One agent x retriever: finds cached answers, and answers the others with a fresh agent per question (so that
    questions can run concurrently: nothing of one run is shared with another but the retriever and the endpoint)."""

    def __init__(
        self, framework: str, source: Any, endpoint: _LazyEndpoint, mode: str, settings: AgentSettings
    ) -> None:
        self.framework, self.source, self.endpoint, self.mode, self.settings = (
            framework,
            source,
            endpoint,
            mode,
            settings,
        )
        self._judge: LLMClient | None = None

    def key(self, task: RetrievalTask, question: Any, cache: AnswerCache) -> str:
        return cache.key(
            task=task.name,
            question_id=question.id,
            question=question.text,
            agent=self.framework,
            mode=self.mode,
            retriever=self.source.identity,
            llm=self.endpoint.identity,
            settings=self.settings.as_dict(),
        )

    def cached(self, task: RetrievalTask, question: Any, cache: AnswerCache) -> dict[str, Any] | None:
        """The cached record of ``question``, or None."""
        return cache.get(self.key(task, question, cache))

    def build(self) -> Any:
        """A new agent (the endpoint must be open)."""
        resolved, _ = self.endpoint.mode(self.mode)
        return _build_agent(self.framework, self.source, self.endpoint.open(), resolved, self.settings)

    def answer(self, task: RetrievalTask, question: Any, cache: AnswerCache) -> dict[str, Any]:
        """Answer ``question`` now with a new agent and cache the record unless the run failed."""
        result = self.build().answer(question.text)
        record = {
            "key": self.key(task, question, cache),
            "task": task.name,
            "question_id": question.id,
            "agent": self.framework,
            "gold_ids": list(question.gold_ids),
            "gold_answer": question.gold_answer,
            "result": result.to_json(),
        }
        if result.error is None:
            cache.put(record["key"], record)
        return record

    def scored(self, question: Any, record: dict[str, Any], cache: AnswerCache, *, judge: bool) -> dict[str, Any]:
        """``record`` with the retriever's name and whether the answer is right (and the judge's verdict)."""
        final_answer, error = record["result"]["final_answer"], record["result"]["error"]
        if judge and "judge" not in record and error is None:
            if self._judge is None:
                self._judge = LLMClient(self.endpoint.open())
            record["judge"] = judge_answer(self._judge, question.text, question.gold_answer, final_answer)
            cache.put(record["key"], record)
        # Scored now, not cached: a fix to the answer checking applies to cached answers too.
        correct = None if error else answer_matches(final_answer, question.gold_answer)
        return {**record, "retriever": self.source.name, "correct": correct}


def _payload(
    records: list[dict[str, Any]],
    task_list: list[RetrievalTask],
    limit: int | None,
    retrievers: Sequence[str],
    agents: Sequence[str],
    mode: str,
    endpoint: _LazyEndpoint,
    settings: AgentSettings,
    skipped: dict[str, str],
    retriever_info: dict[str, dict[str, Any]],
    counts: dict[str, int],
) -> dict[str, Any]:
    rows = []
    for agent in agents:
        reference: list[dict[str, Any]] | None = None
        for name in retrievers:
            mine = [r for r in records if r["agent"] == agent and r["retriever"] == name]
            if mine:
                modes = sorted({r["result"]["mode"] for r in mine})
                row = {"agent": agent, "retriever": name, "mode": "/".join(modes), **summarize(mine)}
                if reference is None:
                    reference = mine
                else:
                    row["versus"] = {"retriever": reference[0]["retriever"], **_paired(mine, reference)}
                rows.append(row)
    return {
        "tasks": {
            t.name: {"questions": len(t.queries[:limit] if limit else t.queries), "documents": len(t.documents)}
            for t in task_list
        },
        "llm": {
            "model": endpoint.identity,
            "endpoint": endpoint.description
            or f"{display_model(endpoint.identity)} (not called: every answer was cached)",
            "mode_requested": mode,
            "mode_resolved": {name: why for name, (_, why) in endpoint.modes.items()},
        },
        "settings": settings.as_dict(),
        "retrievers": retriever_info,
        "skipped_retrievers": skipped,
        "results": rows,
        "answers": {"cached": counts["cached"], "answered_now": counts["answered"]},
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "files": {"report": "report.md", "results": "results.json", "plot": PLOT_NAME, "answers": "answers.jsonl"},
    }


def _paired(records: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """Each paired metric of ``records`` against ``reference`` (the same agent, the first retriever): the mean
    difference over the questions both scored, the paired t-test's p-value and whether it is below 0.05."""
    from reasonembed_rag.evaluation.stats import ALPHA, paired_test

    mine, theirs = per_question(records), per_question(reference)
    tests: dict[str, Any] = {}
    for metric in PAIRED_METRICS:
        shared = sorted(set(mine[metric]) & set(theirs[metric]))
        if len(shared) < 2:
            continue
        a, b = [mine[metric][q] for q in shared], [theirs[metric][q] for q in shared]
        p = paired_test(a, b)
        tests[metric] = {"delta": (sum(a) - sum(b)) / len(shared), "p": p, "significant": p < ALPHA, "n": len(shared)}
    return tests


def _write(output: Path, payload: dict[str, Any], records: list[dict[str, Any]]) -> None:
    (output / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    with (output / "answers.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({k: v for k, v in record.items() if k != "key"}, ensure_ascii=False) + "\n")
    _plot(payload["results"], output / PLOT_NAME)
    report = "# Agents compared end to end\n\n" + markdown_section(payload, relative_to=output, level=2)
    (output / "report.md").write_text(report, encoding="utf-8")


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("recall", "recall in context"),
        ("ndcg@10_first_search", "nDCG@10 first search"),
        ("accuracy", "accuracy"),
    ]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.2))
    width = 0.8 / len(metrics)
    for offset, (key, label) in enumerate(metrics):
        values = [100 * (row[key] or 0.0) for row in rows]
        intervals = [row.get(f"{key}_ci") or (row[key] or 0.0, row[key] or 0.0) for row in rows]
        errors = [
            [value - 100 * low for value, (low, _) in zip(values, intervals, strict=True)],
            [100 * high - value for value, (_, high) in zip(values, intervals, strict=True)],
        ]
        positions = [i + offset * width for i in range(len(rows))]
        bars = ax.bar(positions, values, width, yerr=errors, capsize=2, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    ax.set_xticks([i + width for i in range(len(rows))], [f"{r['agent']}\n{r['retriever']}" for r in rows], fontsize=7)
    ax.set_ylabel("x100")
    ax.set_ylim(0, 110)
    ax.legend(fontsize=8)
    ax.set_title("Question-answering agents: retrievers compared end to end")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value: float | None, scale: float = 100.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{scale * value:.{digits}f}"


def _with_ci(row: dict[str, Any], key: str) -> str:
    """``mean [low, high]`` x100 (the bootstrap 95% interval, when the row has one)."""
    interval = row.get(f"{key}_ci")
    if row[key] is None or not interval:
        return _fmt(row[key])
    return f"{_fmt(row[key])} [{_fmt(interval[0])}, {_fmt(interval[1])}]"


_METRIC_NAMES = {"recall": "recall in context", "ndcg@10_first_search": "nDCG@10 first search", "accuracy": "accuracy"}


def significance_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per agent x retriever tested against its agent's first retriever: each metric's difference and
    p-value, and plainly whether it is significant."""
    lines = []
    for row in rows:
        versus = row.get("versus")
        if not versus:
            continue
        parts = []
        for metric, label in _METRIC_NAMES.items():
            test = versus.get(metric)
            if test:
                verdict = "significant" if test["significant"] else "not significant"
                parts.append(f"{label} {100 * test['delta']:+.1f} (p = {test['p']:.3f}, {verdict})")
        if parts:
            lines.append(f"- {row['agent']}: `{row['retriever']}` minus `{versus['retriever']}`: " + "; ".join(parts))
    return lines


def markdown_section(payload: dict[str, Any], *, relative_to: Path | None = None, level: int = 2) -> str:
    """A Markdown section (heading at ``level``) with the comparison's table, plot and notes.

    Args:
        payload: What :func:`run_comparison` returned (or its ``results.json``).
        relative_to: Folder of the document the section goes into, so the plot link resolves; default the
            comparison's own output folder.
        level: Heading level of the section title.
    """
    heading = "#" * level
    output = Path(payload.get("output", "."))
    plot = Path(os.path.relpath(output / payload["files"]["plot"], relative_to or output)).as_posix()
    tasks = ", ".join(
        f"{name} ({v['questions']} questions, {v['documents']} documents)" for name, v in payload["tasks"].items()
    )
    llm = payload["llm"]
    settings = payload["settings"]
    modes = "; ".join(f"{why}" for why in llm["mode_resolved"].values()) or f"{llm['mode_requested']} (from the cache)"
    lines = [
        f"{heading} Question-answering agents: retrievers compared end to end",
        "",
        f"Questions: {tasks}. LLM: {llm['endpoint']}; agent mode: {modes}. Each search shows the "
        f"LLM {settings['k']} documents (at most {settings['max_searches']} searches per question).",
        "",
        "| agent | retriever | mode | recall in context | nDCG@10 first search | accuracy | searches/q | LLM calls/q "
        "| tokens/q (prompt + completion) | s/q | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in payload["results"]:
        accuracy = _with_ci(row, "accuracy")
        if row["accuracy"] is not None:
            accuracy += f" ({row['checkable_answers']})"
        if row.get("judge_accuracy") is not None:
            accuracy += f"; judge {_fmt(row['judge_accuracy'])}"
        lines.append(
            f"| {row['agent']} | {row['retriever']} | {row['mode']} | {_with_ci(row, 'recall')} | "
            f"{_with_ci(row, 'ndcg@10_first_search')} | {accuracy} | {_fmt(row['searches_per_question'], 1, 2)} | "
            f"{_fmt(row['llm_calls'], 1, 1)} | {_fmt(row['prompt_tokens'], 1, 0)} + "
            f"{_fmt(row['completion_tokens'], 1, 0)} | "
            f"{_fmt(row['seconds'], 1, 1)} | {row['errors']} |"
        )
    lines += [
        "",
        "Recall: share of gold documents among those the agent put in the LLM's context. nDCG@10: of the agent's "
        "first search (pytrec_eval). Accuracy (x100; in brackets, answers checkable against a short gold answer): "
        "normalised, numeric or formula match of the text after 'Answer:'. In brackets after a value: its bootstrap "
        "95% confidence interval over questions. Per question (q): searches, LLM calls, tokens, seconds.",
        "",
        f"![Agents compared]({plot})",
        "",
    ]
    tests = significance_lines(payload["results"])
    if tests:
        lines += [
            "Differences against each agent's first retriever, paired over the same questions (paired t-test; "
            "significant when p < 0.05, not corrected for the number of comparisons). A difference that is not "
            "significant is not evidence that one retriever serves the agent better than the other:",
            "",
            *tests,
            "",
        ]
    if payload["skipped_retrievers"]:
        lines += ["Retrievers not compared:", ""]
        lines += [f"- `{name}`: {why}" for name, why in payload["skipped_retrievers"].items()]
        lines.append("")
    answers = payload["answers"]
    lines += [
        f"Answers: {answers['answered_now']} new, {answers['cached']} from the cache. "
        f"Time: {payload.get('seconds', 'n/a')} s on {payload['machine']}.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demos.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="agents-output", help="report folder (default: ./agents-output)")
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"questions per task (default {DEFAULT_LIMIT}; 0: all)"
    )
    parser.add_argument(
        "--retrievers", default=",".join(DEFAULT_RETRIEVERS), help="comma-separated: bm25 and dense models"
    )
    parser.add_argument(
        "--hybrid-weight",
        type=float,
        default=HYBRID_WEIGHT,
        help=f"BM25's share in MODEL+bm25 retrievers (min-max fusion; default {HYBRID_WEIGHT})",
    )
    parser.add_argument("--agents", default=",".join(AGENTS), help="comma-separated: llamaindex, langchain")
    parser.add_argument("--mode", default="auto", choices=MODES, help="tools, loop, or auto (probe the endpoint)")
    parser.add_argument("--data", default=None, help=f"BRIGHT-layout folder or {HUB_DATASET} (default: offline CHAMP)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: all of --data)")
    parser.add_argument("--chroma", default=None, help="Chroma folder or http://host:port (default: OUTPUT/chroma)")
    parser.add_argument("--k", type=int, default=AgentSettings.k, help="documents shown per search")
    parser.add_argument("--max-searches", type=int, default=AgentSettings.max_searches, help="searches per question")
    parser.add_argument("--answer-tokens", type=int, default=AgentSettings.answer_tokens, help="token cap of answers")
    parser.add_argument("--query-style", default=AgentSettings.query_style, choices=core.QUERY_STYLES)
    parser.add_argument("--judge", action="store_true", help="also let the LLM judge answers against the gold answer")
    parser.add_argument("--no-cache", action="store_true", help="answer every question again")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_llm_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison from the command line; print the report and where it is."""
    args = build_parser().parse_args(argv)
    exit_cleanly_on_sigterm()  # a plain SIGTERM would skip the clean-up that stops a local LLM server
    try:
        llm = choose_llm_from_args(args)
    except ValueError as error:
        raise SystemExit(f"python -m demos.compare: error: {error}") from error
    try:
        hybrid = Hybrid(weight=args.hybrid_weight)
    except ValueError as error:
        raise SystemExit(f"python -m demos.compare: error: {error}") from error
    settings = AgentSettings(
        k=args.k,
        depth=max(AgentSettings.depth, args.k),
        max_searches=args.max_searches,
        answer_tokens=args.answer_tokens,
        query_style=args.query_style,
    )
    output = Path(args.output)
    run_comparison(
        output,
        limit=args.limit or None,
        retrievers=_names(args.retrievers),
        agents=_names(args.agents),
        mode=args.mode,
        data=args.data,
        tasks=_names(args.tasks) if args.tasks else None,
        chroma=args.chroma,
        llm=llm,
        settings=settings,
        hybrid=hybrid,
        judge=args.judge,
        use_cache=not args.no_cache,
        quiet=args.quiet,
    )
    print((output / "report.md").read_text(encoding="utf-8"))
    print(f"Report: {output / 'report.md'}  results: {output / 'results.json'}  plot: {output / PLOT_NAME}")
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


if __name__ == "__main__":
    sys.exit(main())
