"""Test-time reasoning expansion (issue 13 item 6): QueryExpander's cache, resume, failures and lazy server; the
framework retrievers' ``expand=``; ``bright --expand-queries``.

The control-flow tests use a scripted chat model (its sketch names the query it was given, so each expansion can be
checked); the framework tests search the packaged MiniLM over a real Chroma collection; the slow tests run the real
local ``transformers serve`` of SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import json
import logging
import threading

import pytest

from reasonembed_rag.expansion import PROMPT_VERSION, SEPARATOR, QueryExpander, clean_sketch, expansion_messages
from reasonembed_rag.jsonl import JSONLCache
from reasonembed_rag.llm import Completion, LLMConfig, LLMError, choose_llm

INSTRUCTION = "Given a Math problem, retrieve relevant theorems that help answer the problem."
QUERIES = ["How many primes divide 1023?", "Maximise xy given x + y = 10.", "Is 91 prime?"]


class ScriptedChat:
    """Answers each prompt with a sketch naming its query; ``replies`` overrides the reply for a query (an
    :class:`LLMError` is raised), ``stop_after`` raises KeyboardInterrupt (a killed run) after that many replies."""

    def __init__(self, replies: dict[str, str | LLMError] | None = None, *, stop_after: int | None = None) -> None:
        self.replies = replies or {}
        self.stop_after = stop_after
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def chat(self, messages, *, max_tokens=None, temperature=None, top_p=None, stop=None):
        assert temperature == 0.0 and max_tokens is not None  # greedy, capped
        query = messages[-1]["content"].split("Query:\n", 1)[1].split("\n\nSolution sketch", 1)[0]
        with self._lock:
            if self.stop_after is not None and len(self.prompts) >= self.stop_after:
                raise KeyboardInterrupt
            self.prompts.append(query)
        reply = self.replies.get(query, f"Sketch for <{query}>: use the fundamental theorem of arithmetic.")
        if isinstance(reply, LLMError):
            raise reply
        return Completion(reply, "stop", prompt_tokens=20, completion_tokens=len(reply.split()))


def _sketch(query: str) -> str:
    return f"{query}{SEPARATOR}Sketch for <{query}>: use the fundamental theorem of arithmetic."


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_prompt_carries_the_instruction_and_the_query():
    system, user = expansion_messages("Is 91 prime?", INSTRUCTION)
    assert system["role"] == "system" and "theorems" in system["content"]
    assert INSTRUCTION in user["content"] and "Query:\nIs 91 prime?" in user["content"]
    assert "search task" not in expansion_messages("Is 91 prime?")[1]["content"]


def test_a_reply_with_nothing_to_search_is_no_sketch():
    assert clean_sketch(" Euler's theorem.\n ") == "Euler's theorem."
    assert clean_sketch(" \n...\n") == "" and clean_sketch("") == ""


def test_expansions_are_appended_cached_and_reused(tmp_path):
    path = tmp_path / "expansions.jsonl"
    chat = ScriptedChat()
    expander = QueryExpander(chat, cache=path, instruction=INSTRUCTION, concurrency=2)
    queries = [*QUERIES, QUERIES[0]]  # a repeat costs no second request
    assert expander.expand(queries) == [_sketch(q) for q in queries]
    assert sorted(chat.prompts) == sorted(QUERIES)
    stats = expander.stats.as_dict()
    assert (stats["queries"], stats["cached"], stats["generated"], stats["failed"]) == (4, 0, 3, 0)
    assert stats["completion_tokens"] > 0 and stats["tokens_per_second"] > 0
    expander.close()
    assert len(_lines(path)) == 3

    again = ScriptedChat()
    reread = QueryExpander(again, cache=path, instruction=INSTRUCTION, identity="ScriptedChat")
    assert reread.expand(QUERIES) == [_sketch(q) for q in QUERIES]
    assert again.prompts == [] and reread.stats.as_dict()["cached"] == 3
    summary = reread.summary()
    assert summary["prompt_version"] == PROMPT_VERSION and summary["cache"] == str(path)


def test_the_key_names_llm_prompt_tokens_instruction_and_query_but_no_retrieval_model(tmp_path):
    base = QueryExpander(ScriptedChat(), cache=tmp_path / "c.jsonl", identity="m", max_tokens=128)
    key = base.key("q", INSTRUCTION)
    assert key == QueryExpander(ScriptedChat(), cache=tmp_path / "d.jsonl", identity="m").key("q", INSTRUCTION)
    assert key != base.key("q", None) != base.key("q2", INSTRUCTION)
    assert key != QueryExpander(ScriptedChat(), cache=tmp_path / "c.jsonl", identity="other").key("q", INSTRUCTION)
    assert key != QueryExpander(ScriptedChat(), cache=tmp_path / "c.jsonl", identity="m", max_tokens=64).key(
        "q", INSTRUCTION
    )


def test_an_interrupted_run_resumes_without_asking_again_or_duplicating(tmp_path):
    path = tmp_path / "expansions.jsonl"
    killed = ScriptedChat(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        QueryExpander(killed, cache=path, instruction=INSTRUCTION, concurrency=1).expand(QUERIES)
    saved = {row["key"] for row in _lines(path)}
    assert 1 <= len(saved) <= 2  # the replies handed back before the interruption (a finished one may be lost)
    with path.open("a", encoding="utf-8") as torn:
        torn.write('{"key": "half a li')  # a run killed mid-write leaves a torn last line
    resumed = ScriptedChat()
    expander = QueryExpander(resumed, cache=path, instruction=INSTRUCTION, concurrency=1)
    assert expander.cache.skipped == 1 and len(expander.cache) == len(saved)
    assert expander.expand(QUERIES) == [_sketch(q) for q in QUERIES]
    assert sorted(resumed.prompts) == sorted(q for q in QUERIES if expander.key(q, INSTRUCTION) not in saved)
    expander.close()
    reread = JSONLCache(path, fields=("expansion",))
    assert len(reread) == 3 and reread.skipped == 1  # the new rows started a line of their own
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]
    assert len(rows) == 3  # nothing written twice


def test_a_failed_or_empty_reply_keeps_the_query_and_is_not_cached(tmp_path):
    path = tmp_path / "expansions.jsonl"
    chat = ScriptedChat({QUERIES[0]: " \n ...", QUERIES[1]: LLMError("HTTP 500", retryable=True)})
    expander = QueryExpander(chat, cache=path, instruction=INSTRUCTION)
    assert expander.expand(QUERIES) == [QUERIES[0], QUERIES[1], _sketch(QUERIES[2])]
    assert (expander.stats.failed, expander.stats.generated) == (2, 1)
    assert len(_lines(path)) == 1
    # the same expander does not ask again (a framework retriever would, one query at a time) ...
    assert expander.expand(QUERIES[:2]) == QUERIES[:2] and len(chat.prompts) == 3
    # ... a new run does, and caches what now works
    fresh = ScriptedChat()
    assert QueryExpander(fresh, cache=path, instruction=INSTRUCTION, identity="ScriptedChat").expand(QUERIES) == [
        _sketch(q) for q in QUERIES
    ]
    assert sorted(fresh.prompts) == sorted(QUERIES[:2])


def test_a_malformed_cache_line_is_skipped_with_a_warning_naming_file_and_line(tmp_path, caplog):
    path = tmp_path / "expansions.jsonl"
    QueryExpander(ScriptedChat(), cache=path, instruction=INSTRUCTION).expand(QUERIES)
    lines = path.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[1])["key"]
    lines[1] = json.dumps({"key": broken})  # valid JSON without an expansion
    path.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n", encoding="utf-8")
    chat = ScriptedChat()
    with caplog.at_level(logging.WARNING, logger="reasonembed_rag.jsonl"):
        expander = QueryExpander(chat, cache=path, instruction=INSTRUCTION)
    assert expander.cache.skipped == 2
    assert f"{path}:2: not valid JSON" in caplog.text and f"{path}:3: missing field 'expansion'" in caplog.text
    assert expander.expand(QUERIES) == [_sketch(q) for q in QUERIES]
    assert [expander.key(q, INSTRUCTION) for q in chat.prompts] == [broken]


def test_a_cached_run_starts_no_server_and_sends_no_request(tmp_path, monkeypatch):
    from reasonembed_rag.llm import server

    def refuse(*args, **kwargs):
        raise AssertionError("a local server was started although every expansion is cached")

    monkeypatch.setattr(server.LocalLLMServer, "__init__", refuse)
    path = tmp_path / "expansions.jsonl"
    choice = choose_llm(local=True)
    identity = QueryExpander(choice, cache=path).identity
    assert identity.startswith("local:") and "/" not in identity
    served = LLMConfig(base_url="http://127.0.0.1:9/v1", model=str(choice.identity))  # that server as an endpoint
    assert QueryExpander(served, cache=path).identity == identity
    QueryExpander(ScriptedChat(), cache=path, instruction=INSTRUCTION, identity=identity).expand(QUERIES)
    with QueryExpander(choice, cache=path, instruction=INSTRUCTION) as expander:
        assert expander.expand(QUERIES) == [_sketch(q) for q in QUERIES]
    with pytest.raises(AssertionError, match="a local server was started"):
        QueryExpander(choice, cache=path, instruction=INSTRUCTION).expand(["a query not in the cache"])
    # an endpoint on a closed port: a miss fails (kept as it was), a cached query is answered
    endpoint = choose_llm(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, environ={})
    closed = QueryExpander(endpoint, cache=tmp_path / "other.jsonl", instruction=INSTRUCTION)
    assert closed.expand(["q"]) == ["q"] and closed.stats.failed == 1


def test_bad_settings_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="max_tokens must be at least 1, got 0"):
        QueryExpander(ScriptedChat(), cache=tmp_path / "c.jsonl", max_tokens=0)
    with pytest.raises(TypeError, match="llm must be an LLMChoice"):
        QueryExpander(42, cache=tmp_path / "c.jsonl")


# ----------------------------------------------------------------------------------------------- frameworks


@pytest.fixture(scope="module")
def math_store(tmp_path_factory, shared_minilm):
    from reasonembed_rag.store import ChromaStore

    documents = {
        "fta": "Fundamental theorem of arithmetic: every integer above 1 factors uniquely into primes.",
        "amgm": "AM-GM inequality: (a+b)/2 >= sqrt(ab) for non-negative a and b.",
        "pyth": "Pythagorean theorem: a^2 + b^2 = c^2 in a right triangle.",
        "vieta": "Vieta's formulas relate a polynomial's coefficients to sums and products of its roots.",
    }
    store = ChromaStore(
        "expansion-test", shared_minilm, chroma=str(tmp_path_factory.mktemp("chroma")), instruction=INSTRUCTION
    )
    store.add_documents(documents.items())
    return store


@pytest.mark.parametrize("hybrid", [None, "bm25"])
def test_framework_retrievers_search_the_expanded_query(math_store, tmp_path, hybrid):
    chat = ScriptedChat({QUERIES[1]: "Use the AM-GM inequality."})
    expander = QueryExpander(chat, cache=tmp_path / "expansions.jsonl")
    query = QUERIES[1]
    expanded = f"{query}{SEPARATOR}Use the AM-GM inequality."

    plain_li = math_store.llama_index_retriever(k=4, hybrid=hybrid)
    li = math_store.llama_index_retriever(k=4, hybrid=hybrid, expand=expander)
    got = [(hit.node.node_id, hit.score) for hit in li.retrieve(query)]
    assert got == [(hit.node.node_id, hit.score) for hit in plain_li.retrieve(expanded)]
    assert got != [(hit.node.node_id, hit.score) for hit in plain_li.retrieve(query)]

    plain_lc = math_store.langchain_retriever(k=4, hybrid=hybrid)
    lc = math_store.langchain_retriever(k=4, hybrid=hybrid, expand=expander)
    assert [doc.id for doc in lc.invoke(query)] == [doc.id for doc in plain_lc.invoke(expanded)]
    assert lc.invoke(query)[0].id == "amgm"
    # the store's instruction went into the prompt; one request served both frameworks
    assert chat.prompts == [query]
    assert expander.key(query, INSTRUCTION) in expander.cache


# ----------------------------------------------------------------------------------------------- command line


def _task_folder(root):
    folder = root / "mini"
    folder.mkdir(parents=True)
    examples = [
        {"id": "q1", "query": "How many primes divide 1023?", "gold_ids": ["fta"], "excluded_ids": []},
        {"id": "q2", "query": "Maximise xy given x + y = 10.", "gold_ids": ["amgm"], "excluded_ids": []},
        {"id": "q3", "query": "Find the hypotenuse of a 3-4 triangle.", "gold_ids": ["pyth"], "excluded_ids": []},
    ]
    documents = [
        {"id": "fta", "content": "Fundamental theorem of arithmetic: every integer above 1 factors into primes."},
        {"id": "amgm", "content": "AM-GM inequality: (a+b)/2 >= sqrt(ab) for non-negative a and b."},
        {"id": "pyth", "content": "Pythagorean theorem: a^2 + b^2 = c^2 in a right triangle."},
        {"id": "vieta", "content": "Vieta's formulas relate coefficients to sums and products of roots."},
    ]
    (folder / "examples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in examples))
    (folder / "documents.jsonl").write_text("".join(json.dumps(row) + "\n" for row in documents))
    (folder / "instruction.txt").write_text(INSTRUCTION + "\n")
    return root


def test_bright_refuses_expand_queries_with_reasoning_queries(tmp_path):
    from reasonembed_rag.cli import main

    with pytest.raises(SystemExit, match="--expand-queries and --reasoning-queries gpt4_reason both replace"):
        main(["bright", "--data", str(_task_folder(tmp_path)), "--model", "bm25", "--expand-queries",
              "--reasoning-queries", "gpt4_reason"])  # fmt: skip


def test_bright_expands_from_the_cache_on_every_path(tmp_path):
    """A fully cached run: no LLM is reachable (a closed port), yet every query is expanded, on every path."""
    from reasonembed_rag.cli import main

    data = _task_folder(tmp_path / "data")
    cache = tmp_path / "expansions.jsonl"
    replies = {
        "How many primes divide 1023?": "Factor 1023: the fundamental theorem of arithmetic.",
        "Maximise xy given x + y = 10.": "The AM-GM inequality.",
        "Find the hypotenuse of a 3-4 triangle.": "The Pythagorean theorem.",
    }
    QueryExpander(ScriptedChat(replies), cache=cache, identity="m", instruction=INSTRUCTION).expand(list(replies))
    flags = ["--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m", "--llm-max-retries", "0"]
    results = {}
    for name, extra in {
        "bm25": ["--model", "bm25"],
        "direct": ["--model", "minilm-l6", "--hybrid", "bm25"],
        "langchain": ["--model", "minilm-l6", "--hybrid", "bm25", "--via", "langchain"],
        "llamaindex": ["--model", "minilm-l6", "--hybrid", "bm25", "--via", "llamaindex"],
    }.items():
        output = tmp_path / f"{name}.json"
        common = ["bright", "--data", str(data), "--chroma", str(tmp_path / "chroma"), "--output", str(output)]
        assert main([*common, *extra, "--expand-queries", "--expansion-cache", str(cache), *flags]) == 0
        results[name] = json.loads(output.read_text())
    for payload in results.values():
        expansion = payload["expansion"]
        assert (expansion["queries"], expansion["cached"], expansion["failed"]) == (3, 3, 0)
        assert payload["model"].endswith("+expand")
    assert results["bm25"]["tasks"]["mini"]["ndcg@10"] == pytest.approx(1.0)
    plain = tmp_path / "plain.json"
    assert main(["bright", "--data", str(data), "--model", "bm25", "--output", str(plain)]) == 0
    assert json.loads(plain.read_text())["mean"]["ndcg@10"] < 0.9  # "Maximise xy" shares no word with AM-GM
    direct = results["direct"]["mean"]["ndcg@10"]
    assert results["langchain"]["mean"]["ndcg@10"] == pytest.approx(direct, abs=0.002)
    assert results["llamaindex"]["mean"]["ndcg@10"] == pytest.approx(direct, abs=0.002)


# ----------------------------------------------------------------------------------------------- the real LLM


@pytest.mark.slow
def test_bright_cli_expands_with_the_local_server_and_a_rerun_is_cached(local_server, tmp_path, capsys):
    from reasonembed_rag.cli import main

    data = _task_folder(tmp_path / "data")
    cache = tmp_path / "expansions.jsonl"
    flags = ["--llm-base-url", local_server.base_url, "--llm-model", str(local_server.model)]
    runs = []
    for attempt in range(2):
        output = tmp_path / f"run{attempt}.json"
        code = main(
            ["bright", "--data", str(data), "--model", "bm25", "--expand-queries", "--expansion-cache", str(cache),
             "--expansion-max-tokens", "48", "--output", str(output), *flags]
        )  # fmt: skip
        assert code == 0
        runs.append(json.loads(output.read_text()))
    first, second = runs[0]["expansion"], runs[1]["expansion"]
    assert (first["queries"], first["generated"], first["failed"]) == (3, 3, 0)
    assert first["completion_tokens"] > 0 and first["tokens_per_second"] > 0
    assert (second["cached"], second["generated"], second["completion_tokens"]) == (3, 0, 0)
    assert runs[0]["mean"] == runs[1]["mean"]
    rows = _lines(cache)
    assert len(rows) == 3 and all(row["expansion"].strip() for row in rows)


@pytest.mark.slow
def test_langchain_retriever_expands_with_the_local_server(local_server, math_store, tmp_path):
    expander = QueryExpander(local_server.config(), cache=tmp_path / "expansions.jsonl", max_tokens=48)
    query = QUERIES[0]
    hits = math_store.langchain_retriever(k=4, expand=expander).invoke(query)
    assert expander.stats.generated + expander.stats.failed == 1
    expanded = expander.expand_query(query, instruction=INSTRUCTION)  # from the cache: no second request
    assert expander.stats.generated + expander.stats.failed == 1
    assert expanded.startswith(query + SEPARATOR) or expander.stats.failed == 1
    assert [doc.id for doc in hits] == [doc.id for doc in math_store.langchain_retriever(k=4).invoke(expanded)]
