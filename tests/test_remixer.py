"""ReMixer control flow with a scripted fake LLM: stages, malformed replies, resume after a kill, source exclusion,
reply parsing, prompts, seeds, and the ``synthesize`` command's wiring. Fast: no model."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path

import pytest

from reasonembed_rag.llm import Completion, LLMConfig, LLMError
from reasonembed_rag.training.remixer.mining import DEFAULT_MINER, exclude_source, make_retriever
from reasonembed_rag.training.remixer.parsing import clean_query, clean_reasoning, parse_score, parse_yes_no
from reasonembed_rag.training.remixer.pipeline import ReMixer, SynthesisAborted, SynthesisSettings
from reasonembed_rag.training.remixer.prompts import PromptBook, render
from reasonembed_rag.training.remixer.records import JsonlLog, content_hash
from reasonembed_rag.training.remixer.seeds import TaskSource, load_sources, select_seeds

INSTRUCTION = "Given a Math problem, retrieve relevant theorems that help answer the problem."

# A small corpus: each seed teaches one idea; documents tagged REL-<idea> are judged relevant to queries about it.
CORPUS = {
    "fermat": "Fermat's little theorem: a^(p-1) is 1 mod p for a prime p not dividing a. idea:modular",
    "euler": "Euler's theorem: a^phi(n) is 1 mod n when gcd(a, n) = 1. REL-modular idea:totient",
    "crt": "Chinese remainder theorem: congruences with coprime moduli have one solution mod the product. REL-modular",
    "amgm": "AM-GM inequality: the arithmetic mean is at least the geometric mean. idea:inequality",
    "cauchy": "Cauchy-Schwarz inequality: (sum a_i b_i)^2 <= (sum a_i^2)(sum b_i^2). REL-inequality",
    "area": "The area of a circle of radius r is pi r^2. idea:geometry",
    "pythag": "Pythagorean theorem: in a right triangle a^2 + b^2 = c^2. REL-geometry",
    "copy-of-area": "The area of a circle of radius r is pi r^2. idea:geometry",
    "junk": "Unrelated text about the weather and modular furniture and inequality of heights. JUNK",
}


class Killed(BaseException):
    """Simulates the process dying in the middle of a stage (not an LLM error: nothing catches it)."""


class ScriptedLLM:
    """A fake chat model that answers each ReMixer stage from the prompt text, deterministically.

    * generation: a query about the seed's ``idea:`` tag; seeds containing BADGEN get malformed replies;
    * annotation: ``<score>4</score>`` when the document carries ``REL-<idea>`` of the query, ``<score>1</score>``
      otherwise, and an unparseable reply for documents tagged JUNK;
    * reasoning: a sentence naming the knowledge; cleaning: Yes unless the document says OFFTOPIC.
    """

    def __init__(self, *, kill_after: int | None = None, kill_stage: str | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.kill_after = kill_after
        self.kill_stage = kill_stage
        self._lock = threading.Lock()

    @staticmethod
    def stage(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        if "Yes or No" in text:
            return "clean"
        if "Source material" in text:
            return "generate"
        if "Relevance definition" in text:
            return "annotate"
        return "reasoning"

    def chat(self, messages, *, max_tokens=None, temperature=None, top_p=None, stop=None) -> Completion:
        stage = self.stage(messages)
        with self._lock:
            self.calls[stage] += 1
            if self.kill_stage == stage and self.kill_after is not None and self.calls[stage] > self.kill_after:
                raise Killed(stage)
        text = messages[-1]["content"]
        if stage == "clean":
            return Completion("No" if "OFFTOPIC" in text else "Yes.")
        if stage == "generate":
            document = text.split("<<<\n", 1)[1].split("\n>>>", 1)[0]
            if "BADGEN" in document:
                return Completion("According to the passage, what is the theorem?")
            idea = re.search(r"idea:(\w+)", document)
            return Completion(
                f"Problem: Solve this question that needs the {idea.group(1) if idea else 'none'} idea "
                f"for numbers near {len(document)}."
            )
        if stage == "annotate":  # the last message holds only this query and this document, in either style
            if "JUNK" in text:
                return Completion("I am not sure how relevant this is.")
            idea = re.search(r"needs the (\w+) idea", text).group(1)
            return Completion(f"Analysis done. <score>{4 if f'REL-{idea}' in text else 1}</score>")
        query = re.search(r"<<<\n(.*?)\n>>>", text, re.DOTALL).group(1)
        return Completion(f"To answer '{query[:20]}' one needs the theorem behind it and how to apply it.")


def _source(
    corpus: dict[str, str] | None = None, seed_ids: tuple[str, ...] = ("fermat", "amgm", "area")
) -> TaskSource:
    corpus = dict(CORPUS if corpus is None else corpus)
    seeds, stats = select_seeds(((i, corpus[i]) for i in seed_ids), task="toy_math", corpus=corpus, min_chars=10)
    return TaskSource("toy_math", INSTRUCTION, seeds, corpus, stats)


def _settings(tmp_path: Path, **overrides) -> SynthesisSettings:
    values = {"output": tmp_path / "out", "keep_candidates": 8, "chunk_size": 2, "show_progress": False}
    values.update(overrides)
    return SynthesisSettings(**values)


def _rows(output: Path) -> list[dict]:
    path = output / "train" / "toy_math.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _check_counts(summary: dict) -> None:
    """Every stage's counts add up."""
    for task in summary["tasks"].values():
        generate = task["generate"]
        assert generate["replies"] == generate["ok"] + generate["duplicate"] + generate["malformed"]
        assert generate["malformed"] == sum(generate["malformed_reasons"].values())
        annotate = task["annotate"]
        assert annotate["pairs"] == annotate["scored"] + annotate["unparseable"]
        assert annotate["scored"] == sum(annotate["scores"].values())
        label = task["label"]
        assert label["labelled"] == label["rows"] + label["no_positive"] + label["no_negative"] + label["no_reasoning"]


# ------------------------------------------------------------------------------------------------ pipeline


def test_pipeline_rows_follow_the_labels_and_exclude_the_source(tmp_path):
    source = _source()
    summary = ReMixer(_settings(tmp_path), llm=ScriptedLLM(), concurrency=3).run([source])
    rows = _rows(tmp_path / "out")
    _check_counts(summary)
    task = summary["tasks"]["toy_math"]
    assert task["generate"]["ok"] == 3
    # the "area" seed has an exact duplicate in the corpus under another id: both are dropped from its candidates
    assert task["mine"]["source_excluded"] == 4
    assert task["annotate"]["unparseable"] == 3  # the JUNK document, once per query
    assert len(rows) == 3 == task["label"]["rows"]
    by_idea = {re.search(r"needs the (\w+) idea", row["query"]).group(1): row for row in rows}
    assert set(by_idea["modular"]["pos"]) == {CORPUS["euler"], CORPUS["crt"]}
    assert by_idea["inequality"]["pos"] == [CORPUS["cauchy"]] and by_idea["geometry"]["pos"] == [CORPUS["pythag"]]
    assert len(by_idea["geometry"]["neg"]) == 7 - 1 - 1  # 7 candidates, minus the positive and the JUNK one
    assert len(by_idea["modular"]["neg"]) == 7 - 2 - 1  # the circle text is in the corpus twice: one candidate
    for row in rows:
        assert set(row) == {"prompt", "query", "reasoning_query", "pos", "neg"}
        assert row["prompt"] == INSTRUCTION
        assert row["reasoning_query"].startswith(row["query"]) and len(row["reasoning_query"]) > len(row["query"])
        assert row["pos"] and row["neg"]
        assert CORPUS["junk"] not in row["pos"] + row["neg"]  # unparseable: skipped, not a negative
    # the source document never appears among its query's candidates or positives
    queries = [json.loads(line) for line in (tmp_path / "out/work/toy_math/queries.jsonl").read_text().splitlines()]
    mined = {
        json.loads(line)["key"]: json.loads(line)
        for line in (tmp_path / "out/work/toy_math/candidates.jsonl").read_text().splitlines()
    }
    rows_by_query = {row["query"]: row for row in rows}
    for record in queries:
        seed_text = next(seed.content for seed in source.seeds if seed.hash == record["seed"])
        candidate_texts = [CORPUS[i] for i in mined[record["query_hash"]]["candidates"]]
        assert seed_text not in candidate_texts
        assert seed_text not in rows_by_query[record["query"]]["pos"]
    assert json.loads((tmp_path / "out/summary.json").read_text())["totals"]["label"]["rows"] == 3


def test_malformed_replies_are_skipped_counted_and_reported(tmp_path):
    corpus = {**CORPUS, "bad": "BADGEN An odd seed whose generated query refers to its source. idea:modular"}
    source = _source(corpus, ("fermat", "bad", "amgm"))
    summary = ReMixer(_settings(tmp_path), llm=ScriptedLLM(), concurrency=2).run([source])
    _check_counts(summary)
    generate = summary["tasks"]["toy_math"]["generate"]
    assert generate["malformed"] == 1 and generate["malformed_reasons"] == {"refers_to_source": 1}
    bad = [
        json.loads(line)
        for line in (tmp_path / "out/work/toy_math/queries.jsonl").read_text().splitlines()
        if json.loads(line)["status"] == "malformed"
    ]
    assert bad[0]["reply"].startswith("According to the passage")  # kept for prompt debugging
    assert len(_rows(tmp_path / "out")) == 2


def test_resume_after_a_kill_mid_annotation_loses_nothing_and_duplicates_nothing(tmp_path):
    reference = ReMixer(_settings(tmp_path / "ref"), llm=ScriptedLLM(), concurrency=3).run([_source()])
    expected = sorted(json.dumps(row, sort_keys=True) for row in _rows(tmp_path / "ref/out"))

    killer = ScriptedLLM(kill_after=6, kill_stage="annotate")
    with pytest.raises(Killed):
        ReMixer(_settings(tmp_path), llm=killer, concurrency=3).run([_source()])
    annotations = tmp_path / "out/work/toy_math/annotations.jsonl"
    done_before = len(annotations.read_text().splitlines())
    assert 0 < done_before < reference["totals"]["annotate"]["pairs"]
    queries_before = len((tmp_path / "out/work/toy_math/queries.jsonl").read_text().splitlines())
    # the process died while writing: a torn last line must be repaired, not crash the resume or be lost
    with open(annotations, "a", encoding="utf-8") as handle:
        handle.write('{"key": "torn-wri')

    resumed_llm = ScriptedLLM()
    summary = ReMixer(_settings(tmp_path), llm=resumed_llm, concurrency=3).run([_source()])
    _check_counts(summary)
    assert resumed_llm.calls["generate"] == 3 - queries_before  # chunks of 2 seeds: the last one was not reached
    assert resumed_llm.calls["annotate"] == reference["totals"]["annotate"]["pairs"] - done_before
    rows = sorted(json.dumps(row, sort_keys=True) for row in _rows(tmp_path / "out"))
    assert rows == expected
    for name in ("queries", "candidates", "annotations", "reasoning", "labels"):
        path = tmp_path / f"out/work/toy_math/{name}.jsonl"
        keys = [json.loads(line)["key"] for line in path.read_text().splitlines()] if path.exists() else []
        assert len(keys) == len(set(keys)), name
    # a third run has nothing left to do
    again = ScriptedLLM()
    ReMixer(_settings(tmp_path), llm=again, concurrency=3).run([_source()])
    assert sum(again.calls.values()) == 0
    assert sorted(json.dumps(row, sort_keys=True) for row in _rows(tmp_path / "out")) == expected


def test_resume_after_a_kill_mid_generation(tmp_path):
    corpus = {**CORPUS, **{f"extra{i}": f"Extra theorem number {i} about residues. idea:modular" for i in range(6)}}
    ids = ("fermat", "amgm", "area", *(f"extra{i}" for i in range(6)))
    with pytest.raises(Killed):
        ReMixer(
            _settings(tmp_path, chunk_size=9), llm=ScriptedLLM(kill_after=4, kill_stage="generate"), concurrency=2
        ).run([_source(corpus, ids)])
    queries_file = tmp_path / "out/work/toy_math/queries.jsonl"
    done_before = len(queries_file.read_text().splitlines())
    assert 0 < done_before < 9
    llm = ScriptedLLM()
    summary = ReMixer(_settings(tmp_path, chunk_size=9), llm=llm, concurrency=2).run([_source(corpus, ids)])
    _check_counts(summary)
    assert llm.calls["generate"] == 9 - done_before
    assert summary["tasks"]["toy_math"]["generate"]["replies"] == 9
    queries = [json.loads(line)["key"] for line in queries_file.read_text().splitlines()]
    assert len(queries) == len(set(queries)) == 9


def test_duplicate_queries_are_recorded_once(tmp_path):
    class SameQuery(ScriptedLLM):
        def chat(self, messages, **options):
            if self.stage(messages) == "generate":
                return Completion("Problem: Solve this question that needs the modular idea for numbers near 7.")
            return super().chat(messages, **options)

    summary = ReMixer(_settings(tmp_path), llm=SameQuery(), concurrency=1).run([_source()])
    generate = summary["tasks"]["toy_math"]["generate"]
    assert (generate["ok"], generate["duplicate"]) == (1, 2)
    _check_counts(summary)


def test_domain_cleaning_drops_rejected_seeds(tmp_path):
    corpus = {**CORPUS, "off": "OFFTOPIC a recipe for bread, not mathematics at all. idea:modular"}
    summary = ReMixer(_settings(tmp_path, clean_domain=True), llm=ScriptedLLM(), concurrency=2).run(
        [_source(corpus, ("fermat", "off", "amgm"))]
    )
    task = summary["tasks"]["toy_math"]
    assert task["clean"] == {"checked": 3, "yes": 2, "no": 1, "unparseable": 0}
    assert task["generate"]["replies"] == 2


def test_failed_requests_are_counted_and_retried_by_the_next_run(tmp_path):
    class Flaky(ScriptedLLM):
        def chat(self, messages, **options):
            if self.stage(messages) == "reasoning":
                raise LLMError("HTTP 503", retryable=True)
            return super().chat(messages, **options)

    summary = ReMixer(_settings(tmp_path), llm=Flaky(), concurrency=2).run([_source()])
    assert summary["this_run"]["failed_requests"] == {"reasoning": 3}
    assert _rows(tmp_path / "out") == []
    summary = ReMixer(_settings(tmp_path), llm=ScriptedLLM(), concurrency=2).run([_source()])
    assert len(_rows(tmp_path / "out")) == 3
    _check_counts(summary)


def test_a_dead_endpoint_aborts_with_a_clear_message(tmp_path):
    class Dead:
        def chat(self, messages, **options):
            raise LLMError("connection refused", retryable=True)

    with pytest.raises(SynthesisAborted, match="run the same command again"):
        ReMixer(_settings(tmp_path, max_consecutive_failures=3), llm=Dead(), concurrency=1).run([_source()])
    assert (tmp_path / "out/summary.json").exists()


def test_logit_annotator_path_is_used_instead_of_the_llm(tmp_path):
    from reasonembed_rag.rerank import ScoreDistribution

    class FakeAnnotator:
        batch_size = 2
        name = "fake"

        def score(self, conversations):
            out = []
            for messages in conversations:
                text = messages[-1]["content"]
                idea = re.search(r"needs the (\w+) idea", text).group(1)
                relevant = f"REL-{idea}" in text
                probabilities = (0.0, 0.1, 0.1, 0.8, 0.0) if relevant else (0.7, 0.1, 0.1, 0.1, 0.0)
                out.append(ScoreDistribution(probabilities))
            return out

    llm = ScriptedLLM()
    summary = ReMixer(_settings(tmp_path), llm=llm, concurrency=2, annotator=FakeAnnotator()).run([_source()])
    assert llm.calls["annotate"] == 0
    assert summary["tasks"]["toy_math"]["annotate"]["unparseable"] == 0
    assert summary["settings"]["annotation"] == "logits"
    assert len(_rows(tmp_path / "out")) == 3


@pytest.mark.parametrize(("calibration", "rows"), [("none", 0), ("query", 3)])
def test_logit_calibration_removes_a_constant_bias(tmp_path, calibration, rows):
    from reasonembed_rag.rerank import ScoreDistribution

    class BiasedAnnotator:
        """Always most sure of "1", but gives relevant documents more weight on 4 and 5 than the others."""

        batch_size = 4

        def score(self, conversations):
            out = []
            for messages in conversations:
                assert len(messages) == 2  # system + the pair: no few-shot examples on the logit path
                text = messages[-1]["content"]
                idea = re.search(r"needs the (\w+) idea", text).group(1)
                relevant = f"REL-{idea}" in text
                out.append(ScoreDistribution((0.5, 0.1, 0.1, 0.15, 0.15) if relevant else (0.7, 0.1, 0.1, 0.05, 0.05)))
            return out

    settings = _settings(tmp_path, logit_calibration=calibration)
    summary = ReMixer(settings, llm=ScriptedLLM(), annotator=BiasedAnnotator()).run([_source()])
    assert summary["tasks"]["toy_math"]["label"]["rows"] == rows
    for row in _rows(tmp_path / "out"):
        tag = "REL-" + re.search(r"needs the (\w+) idea", row["query"]).group(1)
        assert all(tag in text for text in row["pos"]) and not any(tag in text for text in row["neg"])


# ------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Analysis ... <score>4</score>", 4),
        ("<score>\n2\n</score>", 2),
        ("<score>[5]</score>", 5),
        ("<score>3/5</score>", 3),
        ("first <score>1</score> then revised <score>5</score>", 5),
        ("<score>4", 4),  # cut by a stop string
        ("<score>1</score</score>", 1),  # mangled closing tag (SmolLM2)
        ("<score>2.</score>", 2),
        ("3", 3),
        ("Relevance score: 2", 2),
        ("<score>7</score>", None),
        ("<score>high</score>", None),
        ("<score>3.5</score>", None),
        ("The document is very useful.", None),
        ("", None),
    ],
)
def test_parse_score(reply, score):
    assert parse_score(reply) == score


def test_parse_yes_no():
    assert parse_yes_no("Yes.") is True
    assert parse_yes_no("no, it is about cooking") is False
    assert parse_yes_no("Well, the answer is yes") is True
    assert parse_yes_no("I cannot tell whether it is yes or no") is None
    assert parse_yes_no("") is None


def test_clean_query():
    source = "Fermat's little theorem: a^(p-1) is 1 mod p for a prime p not dividing a."
    assert clean_query("Problem: Find 3^100 mod 7 quickly.", source=source) == ("Find 3^100 mod 7 quickly.", "ok")
    assert clean_query("Here is a new problem:\nFind 3^100 mod 7 quickly.", source=source)[1] == "ok"
    assert clean_query('"Find 3^100 mod 7 quickly."', source=source)[0] == "Find 3^100 mod 7 quickly."
    assert clean_query("", source=source) == (None, "empty")
    assert clean_query("Why?", source=source) == (None, "too_short")
    assert clean_query(
        "Using the given theorem, find 3^100 mod 7.", source=source, forbidden_phrases=["the given"]
    ) == (None, "refers_to_source")
    assert clean_query(f"Prove: {source}", source=source) == (None, "copies_source")
    sentence = "Write exactly one math problem. Length: short."
    assert clean_query(f"{sentence} Find x.", source=source, prompt_sentences=[sentence]) == (None, "echo")
    assert clean_query(
        "Find the remainder of 3^100 mod 7. Then also compute the rem", source=source, truncated=True
    ) == ("Find the remainder of 3^100 mod 7.", "ok")
    assert clean_query("an endless sentence without any end mark at", source=source, truncated=True) == (
        None,
        "truncated",
    )
    assert clean_reasoning("It needs modular arithmetic and Fermat.", query="q")[1] == "ok"
    assert clean_reasoning("  ", query="q") == (None, "empty")


# ------------------------------------------------------------------------------------------------ store, prompts


def test_jsonl_log_refuses_duplicates_and_repairs_a_torn_line(tmp_path):
    path = tmp_path / "log.jsonl"
    log = JsonlLog(path)
    assert log.append({"key": "a", "v": 1}) and not log.append({"key": "a", "v": 2})
    path.write_text(path.read_text() + '{"key": "b", "v"', encoding="utf-8")
    reopened = JsonlLog(path)
    assert reopened.repaired_bytes > 0 and list(reopened.records) == ["a"]
    assert reopened.append({"key": "b", "v": 3})
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["a", "b"]
    path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        JsonlLog(path)


def test_content_hash_separates_parts():
    assert content_hash("ab", "c") != content_hash("a", "bc")


def test_prompts_render_documents_with_braces_and_tasks_fall_back():
    book = PromptBook()
    assert book.entry_for("champ_concepts_train") == "champ_concepts"
    assert book.entry_for("some_new_task") == "default"
    document = r"Let f(x) = \frac{1}{x} and {query} stays literal"
    messages = book.for_task("theoremqa_theorems").generation_messages(document, length="short", difficulty="PhD")
    assert document in messages[-1]["content"] and "{length}" not in messages[-1]["content"]
    direct = book.for_task("champ_concepts").annotation_messages("q", "d", style="direct")
    assert [m["role"] for m in direct] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert render("{a} {b}", {"a": "x"}) == "x {b}"
    echoes = book.for_task("champ_concepts").generation_prefix_text()
    assert "Find the remainder when 3^100 is divided by 7." in echoes  # copying the few-shot answer is an echo
    with pytest.raises(ValueError, match="annotation style"):
        book.for_task("biology").annotation_messages("q", "d", style="fast")


def test_prompt_overlay_and_bad_prompt_files(tmp_path):
    overlay = tmp_path / "mine.json"
    overlay.write_text(json.dumps({"tasks": {"toy": {"relevance": "Relevant if it helps."}}}), encoding="utf-8")
    book = PromptBook(overlay)
    assert book.for_task("toy").value("relevance") == "Relevant if it helps."
    assert book.for_task("toy").value("query_type") == "question"  # the rest comes from default
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        PromptBook(broken)
    bad_weights = tmp_path / "weights.json"
    bad_weights.write_text(json.dumps({"lengths": {"short": -1}}), encoding="utf-8")
    with pytest.raises(ValueError, match="positive number"):
        PromptBook(bad_weights)


def test_sampled_conditions_follow_the_weights():
    prompts = PromptBook().for_task("biology")
    import random

    rng = random.Random(0)
    draws = Counter(prompts.sample_conditions(rng) for _ in range(6000))
    lengths = Counter()
    difficulties = Counter()
    for (length, difficulty), count in draws.items():
        lengths[length] += count
        difficulties[difficulty] += count
    assert abs(lengths["200 to 300 words"] / lengths["less than 100 words"] - 3) < 0.6
    assert abs(difficulties["PhD"] / difficulties["high school"] - 2) < 0.4


# ------------------------------------------------------------------------------------------------ seeds, mining


def test_select_seeds_filters_deduplicates_and_extends():
    documents = [
        ("a", "x" * 50),
        ("b", "y" * 5),
        ("c", "z" * 500),
        ("d", "x" * 50),
        ("gold", "w" * 50),
        *((f"n{i}", f"doc {i} " * 10) for i in range(10)),
    ]
    seeds, stats = select_seeds(documents, task="t", exclude_ids={"gold"}, min_chars=10, max_chars=100)
    assert stats == {
        "available": 15,
        "excluded_gold": 1,
        "too_short": 1,
        "too_long": 1,
        "duplicate": 1,
        "eligible": 11,
        "selected": 11,
    }
    few, _ = select_seeds(documents, task="t", exclude_ids={"gold"}, min_chars=10, max_chars=100, max_seeds=4)
    more, _ = select_seeds(documents, task="t", exclude_ids={"gold"}, min_chars=10, max_chars=100, max_seeds=7)
    assert more[:4] == few
    with pytest.raises(ValueError, match="min_chars"):
        select_seeds(documents, task="t", min_chars=50, max_chars=10)


def test_folder_seeds_never_include_gold_documents(tmp_path):
    folder = tmp_path / "bright" / "biology"
    folder.mkdir(parents=True)
    documents = [{"id": f"d{i}", "content": f"Biology passage number {i}. " * 12} for i in range(8)]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    examples = [
        {"id": "q1", "query": "Why?", "gold_ids": ["d1", "d2"], "excluded_ids": ["N/A"]},
        {"id": "q2", "query": "How?", "gold_ids": ["d5"], "excluded_ids": []},
    ]
    (folder / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    (source,) = load_sources(tmp_path / "bright")
    assert {seed.id for seed in source.seeds} == {"d0", "d3", "d4", "d6", "d7"}
    assert len(source.corpus) == 8  # candidates come from the whole corpus
    assert source.instruction.startswith("Given a Biology post")
    with pytest.raises(ValueError, match="not found"):
        load_sources(tmp_path / "bright", ["physics"])
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    with pytest.raises(ValueError, match="exactly one task"):
        load_sources(jsonl)
    (from_file,) = load_sources(jsonl, ["biology"], exclude_gold=[tmp_path / "bright"])
    assert {seed.id for seed in from_file.seeds} == {"d0", "d3", "d4", "d6", "d7"}


_CHAMP: list = []


@pytest.fixture
def champ_rows_once(monkeypatch):
    """CHAMP's rows (test and train split), loaded once per module: loading the dataset takes seconds."""
    pytest.importorskip("champ_dataset")
    from reasonembed_rag.evaluation import offline

    if not _CHAMP:
        _CHAMP.append(offline.champ_rows())
    monkeypatch.setattr(offline, "champ_rows", lambda: _CHAMP[0])
    return _CHAMP[0]


def test_offline_seeds_come_from_the_train_side_only(champ_rows_once):
    examples, _ = champ_rows_once
    test_gold = {doc for row in examples["test"] for doc in row["gold_ids"]}
    test_problems = {row["query"] for row in examples["test"]}
    (source,) = load_sources("offline")
    assert source.task == "champ_concepts_train"
    assert not {seed.id for seed in source.seeds} & test_gold
    assert not any(problem in seed.content for seed in source.seeds for problem in test_problems)
    concepts = [seed for seed in source.seeds if seed.corpus_id is not None]
    problems = [seed for seed in source.seeds if seed.id.startswith("train_problem:")]
    assert concepts and problems and len(concepts) + len(problems) == len(source.seeds)
    assert len(source.corpus) == 89


def test_mining_excludes_the_source_by_id_and_by_content():
    retriever = make_retriever(DEFAULT_MINER, CORPUS)
    (ranking,) = retriever.search(["area of a circle of radius r"], depth=len(CORPUS))
    assert len(ranking) == len(CORPUS)  # documents sharing no term with the query are still candidates
    assert ranking[0] in ("area", "copy-of-area")
    mined = exclude_source(ranking, CORPUS, source_id="area", source_hash=content_hash(CORPUS["area"]), keep=3)
    assert "area" not in mined.candidates and "copy-of-area" not in mined.candidates
    assert mined.source_excluded == 2 and len(mined.candidates) == 3


# ------------------------------------------------------------------------------------------------ command line


def test_synthesize_registers_on_reasonembed_train():
    import argparse

    from reasonembed_rag.training.remixer.cli import register, run

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "synthesize",
            "--seeds",
            "offline",
            "--output",
            "out",
            "--tasks",
            "a,b",
            "--annotator-logits",
            "--miner",
            "minilm-l6",
        ]
    )
    assert args.handler is run and args.tasks == ["a", "b"] and args.annotator_logits and args.miner == "minilm-l6"
    assert (args.llm_temperature, args.llm_top_p) == (1.0, 0.6)
    # the spellings synthesize had before the shared --llm-* flags keep working
    old = ["--base-url", "http://h/v1", "--model", "m", "--api-key", "k", "--local-model", "/f"]
    old += ["--temperature", "0.5", "--top-p", "0.8", "--max-tokens", "99", "--concurrency", "3"]
    old += ["--timeout", "7", "--max-retries", "1"]
    args = parser.parse_args(["synthesize", "--seeds", "offline", "--output", "out", *old])
    endpoint = (args.llm_base_url, args.llm_model, args.llm_api_key, args.llm_local_model)
    assert endpoint == ("http://h/v1", "m", "k", "/f")
    assert (args.llm_temperature, args.llm_top_p, args.llm_max_tokens, args.llm_concurrency) == (0.5, 0.8, 99, 3)
    assert (args.llm_timeout, args.llm_max_retries) == (7.0, 1)


def test_synthesize_reports_bad_seeds_clearly(tmp_path, capsys):
    from reasonembed_rag.training.remixer.cli import main

    assert main(["--seeds", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2
    assert "not 'offline', 'wordnet', a folder" in capsys.readouterr().err


def test_synthesize_command_runs_the_pipeline_with_the_local_server(tmp_path, monkeypatch, capsys):
    """The command's wiring: no --llm-base-url starts the local server, whose config feeds the client (both faked)."""
    import reasonembed_rag.llm as llm_package
    import reasonembed_rag.llm.server as server_module
    from reasonembed_rag.training.remixer.cli import main

    started = []

    class FakeServer:
        def __init__(self, model=None, *, threads=None, **options):
            started.append(threads)
            self.base_url, self.startup_seconds, self.model = "http://127.0.0.1:1/v1", 0.1, "/models/smollm2"

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            started.append("stopped")

        def config(self, **settings):
            return LLMConfig(base_url=self.base_url, api_key="local", model="/models/smollm2", **settings)

    class FakeClient(ScriptedLLM):
        def __init__(self, config):
            super().__init__()
            assert config.model == "/models/smollm2" and config.concurrency == 16 and config.top_p == 0.6

    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(server_module, "LocalLLMServer", FakeServer)
    monkeypatch.setattr(llm_package, "LLMClient", FakeClient)
    seeds = tmp_path / "corpus.jsonl"
    seeds.write_text("".join(json.dumps({"id": k, "content": v}) + "\n" for k, v in CORPUS.items()), encoding="utf-8")
    arguments = ["--seeds", str(seeds), "--tasks", "toy_math", "--instruction", INSTRUCTION, "--min-chars", "10"]
    arguments += ["--output", str(tmp_path / "out"), "--max-seeds", "3", "--keep-candidates", "8", "--no-progress"]
    assert main(arguments) == 0
    assert started == [None, "stopped"]  # threads: torch's own choice unless --llm-threads
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["settings"]["annotation"] == "direct" and summary["settings"]["local_server"] is True
    rows = _rows(tmp_path / "out")
    assert rows and all(row["prompt"] == INSTRUCTION for row in rows)
    assert "Training rows:" in capsys.readouterr().out


def test_train_side_rows_use_train_gold_only_and_append_once(tmp_path, champ_rows_once):
    from reasonembed_rag.training.remixer.train_side import write_offline_train_rows

    examples, documents = champ_rows_once
    corpus = {row["id"]: row["content"] for row in documents}
    path, added = write_offline_train_rows(tmp_path, negatives=5)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert added == len(rows) == len(examples["train"])
    test_queries = {row["query"] for row in examples["test"]}
    gold = {row["query"]: {corpus[doc] for doc in row["gold_ids"]} for row in examples["train"]}
    for row in rows:
        assert row["query"] not in test_queries
        assert set(row["pos"]) == gold[row["query"]] and len(row["neg"]) == 5
        assert not set(row["neg"]) & gold[row["query"]]
        assert row["reasoning_query"].startswith(row["query"])
    assert write_offline_train_rows(tmp_path, negatives=5)[1] == 0


def test_ood_training_data_holds_out_the_validation_categories_concepts_and_seeds(tmp_path, capsys):
    from reasonembed_rag.evaluation.offline import champ_hints, champ_ood_rows, champ_rows
    from reasonembed_rag.training import cli as train_cli

    examples, documents = champ_rows()
    validation, training, held_out = champ_ood_rows()
    corpus = {row["id"]: row["content"] for row in documents}
    banned_texts = {corpus[c] for c in held_out}
    remixer = Path(__file__).resolve().parents[1] / "data" / "remixer-champ"
    arguments = ["champ-data", "--output", str(tmp_path), "--remixer", str(remixer), "--negatives", "5"]
    assert train_cli.main(arguments) == 0
    assert "champ_concepts_ood_train_gold.jsonl: 65 rows" in capsys.readouterr().out
    gold = [json.loads(line) for line in (tmp_path / "champ_concepts_ood_train_gold.jsonl").read_text().splitlines()]
    synthetic = [json.loads(line) for line in (tmp_path / "champ_concepts_train.jsonl").read_text().splitlines()]
    assert len(gold) == len(training) and 0 < len(synthetic) < 31  # queries from held-out seeds are gone
    forbidden_queries = {row["query"] for row in examples["test"] + validation}
    for row in gold + synthetic:
        assert row["query"] not in forbidden_queries
        assert row["pos"] and not (set(row["pos"]) | set(row["neg"])) & banned_texts
    by_query = {row["query"]: row for row in training}
    for row in gold:
        example = by_query[row["query"]]
        assert set(row["pos"]) == {corpus[c] for c in example["gold_ids"]} and len(row["neg"]) == 5
        hints = champ_hints(example["id"])
        assert row["reasoning_query"].startswith(row["query"]) and all(h in row["reasoning_query"] for h in hints)
    assert any(champ_hints(row["id"]) for row in training)  # the hints are really used
    # Several --remixer folders: one task's rows land in one file, each query once.
    twice = tmp_path / "twice"
    assert train_cli.main([*arguments[:2], str(twice), *arguments[3:], "--remixer", str(remixer)]) == 0
    assert (twice / "champ_concepts_train.jsonl").read_text() == (tmp_path / "champ_concepts_train.jsonl").read_text()


def test_champ_data_refit_holds_nothing_out_and_a_fold_holds_out_one_category(tmp_path, capsys):
    from reasonembed_rag.evaluation.offline import champ_categories, champ_ood_rows, champ_rows
    from reasonembed_rag.training import cli as train_cli

    examples, documents = champ_rows()
    remixer = Path(__file__).resolve().parents[1] / "data" / "remixer-champ"
    arguments = ["champ-data", "--remixer", str(remixer), "--negatives", "3", "--miner", "bm25"]
    assert train_cli.main([*arguments, "--output", str(tmp_path / "all"), "--hold-out", "none"]) == 0
    assert f"champ_concepts_train_gold.jsonl: {len(examples['train'])} rows" in capsys.readouterr().out
    gold = [json.loads(line) for line in (tmp_path / "all/champ_concepts_train_gold.jsonl").read_text().splitlines()]
    test_queries = {row["query"] for row in examples["test"]}
    assert {row["query"] for row in gold} == {row["query"] for row in examples["train"]}
    assert not {row["query"] for row in gold} & test_queries
    assert len((tmp_path / "all/champ_concepts_train.jsonl").read_text().splitlines()) == 31  # nothing filtered

    validation, _, held_out = champ_ood_rows(("Sequence",))
    assert validation and all(champ_categories()[row["id"]] == "Sequence" for row in validation)
    assert train_cli.main([*arguments, "--output", str(tmp_path / "fold"), "--hold-out", "Sequence"]) == 0
    fold = (tmp_path / "fold/champ_concepts_ood_train_gold.jsonl").read_text().splitlines()
    corpus = {row["id"]: row["content"] for row in documents}
    banned = {corpus[c] for c in held_out}
    for row in map(json.loads, fold):
        assert row["query"] not in {v["query"] for v in validation} and not set(row["pos"] + row["neg"]) & banned
    with pytest.raises(SystemExit):
        train_cli.main([*arguments, "--output", str(tmp_path / "bad"), "--hold-out", ","])
    assert "or 'none' to hold nothing out" in capsys.readouterr().err


def test_remixer_rows_left_without_a_positive_or_a_negative_are_dropped(tmp_path):
    from reasonembed_rag.training.remixer.train_side import _remixer_rows_without

    rows = {
        "keeps": {"pos": ["P"], "neg": ["held", "N"]},
        "no negative left": {"pos": ["P"], "neg": ["held"]},
        "no positive left": {"pos": ["held"], "neg": ["N"]},
        "banned seed": {"pos": ["P"], "neg": ["N"]},
    }
    (tmp_path / "train").mkdir()
    (tmp_path / "work/toy").mkdir(parents=True)
    lines = [json.dumps({"query": query, **fields}) for query, fields in rows.items()]
    (tmp_path / "train/toy.jsonl").write_text("\n".join(lines) + "\n")
    records = [json.dumps({"query": q, "seed_id": "bad" if q == "banned seed" else "ok"}) for q in rows]
    (tmp_path / "work/toy/queries.jsonl").write_text("\n".join(records) + "\n")
    kept = _remixer_rows_without(tmp_path, {"bad"}, {"held"})
    assert kept == {"toy": [{"query": "keeps", "pos": ["P"], "neg": ["N"]}]}


class BagOfWordsEncoder:
    """A stand-in encoder with the ReasonEmbedEncoder interface: hashed bag of words, L2-normalised."""

    name = "bag-of-words"

    def __init__(self) -> None:
        self.instructions: list[str | None] = []

    def _encode(self, texts):
        import numpy as np

        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                vectors[row, int(content_hash(word), 16) % 64] += 1
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)

    def encode_documents(self, texts, *, show_progress=None):
        return self._encode(texts)

    def encode_queries(self, texts, *, instruction=None, show_progress=None):
        self.instructions.append(instruction)
        return self._encode(texts)


def test_mining_with_an_encoder_excludes_the_source(tmp_path):
    encoder = BagOfWordsEncoder()
    retriever = make_retriever("bag-of-words", CORPUS, encoder=encoder, instruction=INSTRUCTION)
    (ranking,) = retriever.search(["area of a circle"], depth=4)
    assert set(ranking[:2]) == {"area", "copy-of-area"} and len(ranking) == 4
    settings = _settings(tmp_path, miner="bag-of-words", keep_candidates=3, mine_depth=5)
    summary = ReMixer(settings, llm=ScriptedLLM(), encoder=encoder).run([_source()])
    _check_counts(summary)
    assert encoder.instructions[-1] == INSTRUCTION  # queries are embedded with the task instruction
    mined = [json.loads(line) for line in (tmp_path / "out/work/toy_math/candidates.jsonl").read_text().splitlines()]
    assert all(row["miner"] == "bag-of-words" and len(row["candidates"]) <= 3 for row in mined)
    assert not any({"area", "copy-of-area"} & set(row["candidates"]) for row in mined if row["source_excluded"] == 2)


# ------------------------------------------------------------------------------------------------ round-trip filter

# Each seed's query (ScriptedLLM: "... needs the <idea> idea ...") meets the real BM25 filter differently:
# fermat leads back to itself and is judged relevant (kept); amgm leads back but its source lacks REL-inequality
# (the annotator disagrees); area's query is outranked by `solid` (retriever miss at K=1); the problem seed is not in
# the corpus and must lead to its target, cauchy (kept, with the seed's human reasoning); `lonely` has no target.
ROUND_TRIP_CORPUS = {
    "fermat": "Fermat's little theorem: a^(p-1) is 1 mod p for a prime p not dividing a. idea:modular REL-modular",
    "euler": "Euler's theorem: a^phi(n) is 1 mod n when gcd(a, n) = 1. REL-modular idea:totient",
    "crt": "Chinese remainder theorem: congruences with coprime moduli have one solution mod the product. REL-modular",
    "amgm": "AM-GM inequality: the arithmetic mean is at least the geometric mean. idea:inequality",
    "cauchy": "Cauchy-Schwarz inequality: (sum a_i b_i)^2 <= (sum a_i^2)(sum b_i^2). REL-schwarz",
    "area": "The area of a circle of radius r is pi r^2. idea:geometry REL-geometry",
    "solid": "Solid geometry idea: geometry of solids, geometry of cones.",
}
HUMAN_REASONING = "Bound the dot product by the product of the norms."


def _round_trip_source() -> TaskSource:
    from dataclasses import replace

    from reasonembed_rag.training.remixer.seeds import Seed

    corpus = dict(ROUND_TRIP_CORPUS)
    seeds, stats = select_seeds(
        ((i, corpus[i]) for i in ("fermat", "amgm", "area")), task="toy_math", corpus=corpus, min_chars=10
    )
    problem = Seed("toy_math", "train_problem:1", "Problem: maximise x.y on the sphere. idea:schwarz", "p1" * 10)
    lonely = Seed("toy_math", "train_problem:2", "Problem: a question with no gold. idea:nothing", "p2" * 10)
    seeds += [replace(problem, targets=("cauchy",), reasoning=HUMAN_REASONING), lonely]
    return TaskSource("toy_math", INSTRUCTION, seeds, corpus, stats)


def test_round_trip_filter_keeps_queries_that_lead_back_and_the_annotator_confirms(tmp_path):
    llm = ScriptedLLM()
    settings = _settings(tmp_path, round_trip_k=1, keep_candidates=4)
    summary = ReMixer(settings, llm=llm, concurrency=2).run([_round_trip_source()])
    _check_counts(summary)
    work = tmp_path / "out" / "work" / "toy_math"
    records = [json.loads(line) for line in (work / "queries.jsonl").read_text().splitlines()]
    queries = {record["query_hash"]: record["seed_id"] for record in records}
    verdicts = {queries[r["key"]]: r for r in map(json.loads, (work / "round_trip.jsonl").read_text().splitlines())}
    assert {seed: verdict["status"] for seed, verdict in verdicts.items()} == {
        "fermat": "kept",
        "amgm": "annotator_disagrees",
        "area": "retriever_miss",
        "train_problem:1": "kept",
    }
    assert llm.calls["generate"] == 4  # the seed without a target is not even generated from
    trip = summary["tasks"]["toy_math"]["round_trip"]
    assert trip == {
        "seeds_without_target": 1,
        "checked": 4,
        "kept": 2,
        "no_target": 0,
        "retriever_miss": 1,
        "annotator_disagrees": 1,
    }
    assert summary["settings"]["round_trip_k"] == 1 and summary["settings"]["round_trip_retriever"] == "bm25"
    # A query the retriever missed is never annotated (the filter saves the annotator's time).
    annotated = {r["query"] for r in map(json.loads, (work / "annotations.jsonl").read_text().splitlines())}
    missed = next(key for key, seed in queries.items() if seed == "area")
    assert missed not in annotated and len(annotated) == 3
    rows = {row["pos"][0]: row for row in _rows(tmp_path / "out")}
    assert set(rows) == {ROUND_TRIP_CORPUS["fermat"], ROUND_TRIP_CORPUS["cauchy"]}
    fermat = rows[ROUND_TRIP_CORPUS["fermat"]]
    # euler and crt carry REL-modular: judged relevant, so masked (not negatives); the source is the positive.
    assert fermat["pos"] == [ROUND_TRIP_CORPUS["fermat"]]
    assert fermat["neg"] and not {ROUND_TRIP_CORPUS["euler"], ROUND_TRIP_CORPUS["crt"]} & set(fermat["neg"])
    cauchy = rows[ROUND_TRIP_CORPUS["cauchy"]]
    assert cauchy["reasoning_query"].endswith(HUMAN_REASONING) and ROUND_TRIP_CORPUS["cauchy"] not in cauchy["neg"]
    assert llm.calls["reasoning"] == 1 and summary["tasks"]["toy_math"]["reasoning"]["human"] == 1
    # Resuming redoes nothing.
    again = ScriptedLLM()
    assert (
        ReMixer(settings, llm=again, concurrency=2).run([_round_trip_source()])["tasks"]["toy_math"]
        == (summary["tasks"]["toy_math"])
    )
    assert sum(again.calls.values()) == 0


def test_round_trip_with_a_wider_rank_keeps_the_outranked_query(tmp_path):
    settings = _settings(tmp_path, round_trip_k=2, keep_candidates=4)
    summary = ReMixer(settings, llm=ScriptedLLM(), concurrency=2).run([_round_trip_source()])
    assert summary["totals"]["round_trip"]["retriever_miss"] == 0
    assert summary["totals"]["round_trip"]["kept"] == 3  # area now leads back (rank 2) and REL-geometry agrees


def test_offline_seeds_can_hold_out_the_ood_validation(champ_rows_once):
    from reasonembed_rag.evaluation.offline import champ_hints, champ_ood_rows

    validation, training, held_out = champ_ood_rows()
    (source,) = load_sources("offline", hold_out_ood=True)
    ids = {seed.id for seed in source.seeds}
    assert not ids & set(held_out) and not set(source.corpus) & set(held_out)
    assert not ids & {f"train_problem:{row['id']}" for row in validation}
    train = {f"train_problem:{row['id']}": row for row in champ_rows_once[0]["train"]}
    problems = [seed for seed in source.seeds if seed.id.startswith("train_problem:")]
    assert len(problems) == len(train) - len(validation)
    for seed in problems:
        row = train[seed.id]
        assert seed.corpus_id is None and set(seed.targets) == set(row["gold_ids"]) & set(source.corpus)
        assert all(hint in (seed.reasoning or "") for hint in champ_hints(row["id"]))
    assert sum(bool(seed.targets) for seed in problems) == len(training)
    concepts = [seed for seed in source.seeds if seed.corpus_id is not None]
    assert concepts and all(seed.round_trip_targets == (seed.corpus_id,) for seed in concepts)


def test_wordnet_seeds_span_other_fields_and_respect_the_hold_out():
    from reasonembed_rag.training.remixer.wordnet import WORDNET_TASK, names_in, wordnet_documents

    documents = wordnet_documents()
    assert len(documents) > 500
    fields = {text.split(" (", 1)[1].split(")", 1)[0] for text in documents.values()}
    assert {"mathematics", "statistics", "physics", "chemistry", "computer science", "scientific law"} <= fields
    (source,) = load_sources("wordnet", max_seeds=5)
    assert source.task == WORDNET_TASK and len(source.seeds) == 5 and source.corpus == documents
    assert all(seed.corpus_id == seed.id for seed in source.seeds)  # each seed leads back to itself
    (held,) = load_sources("wordnet", hold_out_ood=True)
    from reasonembed_rag.evaluation.offline import champ_ood_rows, champ_rows

    texts = [row["content"] for row in champ_rows()[1] if row["id"] in set(champ_ood_rows()[2])]
    assert names_in(documents, texts) and not names_in(held.corpus, texts)
    with pytest.raises(ValueError, match="hold_out_ood"):
        load_sources("some/folder", hold_out_ood=True)
