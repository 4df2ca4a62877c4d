"""ReMixer against the REAL offline LLM: ``transformers serve`` of SmolLM2-135M-Instruct on 127.0.0.1, started and
stopped by the test, and the in-process logit annotator on the same model. Slow (about two minutes on 2 cores)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

INSTRUCTION = "Given a Math problem, retrieve relevant concepts and theorems that help answer the problem."
SEEDS = {
    "fermat": "Fermat's little theorem: if p is prime and a is not divisible by p, then a^(p-1) ≡ 1 (mod p).",
    "amgm": "AM-GM inequality: for non-negative reals a and b, (a+b)/2 ≥ sqrt(ab), with equality when a = b.",
    "pythagoras": "Pythagorean theorem: in a right triangle with legs a, b and hypotenuse c, a^2 + b^2 = c^2.",
}
DISTRACTORS = {
    "binomial": "Binomial theorem: (x+y)^n = sum_(k=0)^n C(n, k) x^k y^(n-k).",
    "vieta": "Vieta's formulas: for x^2 + px + q = 0 with roots r and s, r + s = -p and rs = q.",
    "pigeonhole": "Pigeonhole principle: if n+1 objects go into n boxes, some box holds at least two objects.",
}


def test_local_server_answers_chat_completions_offline(local_server):
    from reasonembed_rag.llm import LLMClient

    client = LLMClient(local_server.config(max_tokens=12, temperature=0.0))
    completion = client.chat([{"role": "user", "content": "What is 2 + 2? Answer with a number."}])
    assert completion.text.strip()
    assert completion.finish_reason in ("stop", "length")
    usage = client.usage.snapshot()
    assert usage["requests"] == 1 and usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert local_server.startup_seconds is not None and local_server.base_url.startswith("http://127.0.0.1:")


def test_synthesis_end_to_end_on_three_documents(local_server, tmp_path):
    from reasonembed_rag.llm import LLMClient
    from reasonembed_rag.training.remixer import ReMixer, SynthesisSettings
    from reasonembed_rag.training.remixer.seeds import TaskSource, select_seeds

    corpus = {**SEEDS, **DISTRACTORS}
    seeds, stats = select_seeds(SEEDS.items(), task="champ_concepts_train", corpus=corpus, min_chars=16)
    source = TaskSource("champ_concepts_train", INSTRUCTION, seeds, corpus, stats)
    settings = SynthesisSettings(
        output=tmp_path / "out",
        annotation_style="direct",
        keep_candidates=4,
        chunk_size=3,
        show_progress=False,
    )
    settings.max_tokens.update(generate=64, reasoning=64, annotate_direct=10)
    client = LLMClient(local_server.config(temperature=1.0, top_p=0.6, seed=7, concurrency=1))
    summary = ReMixer(settings, llm=client, concurrency=1).run([source])

    task = summary["tasks"]["champ_concepts_train"]
    generate, mine, annotate, label = task["generate"], task["mine"], task["annotate"], task["label"]
    # every reply is accounted for, stage by stage
    assert generate["replies"] == 3 == generate["ok"] + generate["duplicate"] + generate["malformed"]
    assert mine["queries"] == generate["ok"] and mine["source_excluded"] == generate["ok"]
    assert annotate["pairs"] == mine["candidates"] == annotate["scored"] + annotate["unparseable"]
    assert label["labelled"] == label["rows"] + label["no_positive"] + label["no_negative"] + label["no_reasoning"]
    assert summary["this_run"]["failed_requests"] == {}
    usage = summary["this_run"]["llm_usage"]
    assert usage["requests"] == generate["replies"] + annotate["pairs"] + task["reasoning"]["replies"]

    # what comes out is valid training data, and no query's own source is among its candidates or labels
    queries = {
        row["query"]: row
        for row in map(json.loads, (tmp_path / "out/work/champ_concepts_train/queries.jsonl").read_text().splitlines())
        if row["status"] == "ok"
    }
    candidates = {
        row["key"]: row
        for row in map(
            json.loads, (tmp_path / "out/work/champ_concepts_train/candidates.jsonl").read_text().splitlines()
        )
    }
    for record in queries.values():
        assert record["seed_id"] not in candidates[record["query_hash"]]["candidates"]
    train = tmp_path / "out/train/champ_concepts_train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()] if train.exists() else []
    assert len(rows) == label["rows"]
    texts = set(corpus.values())
    for row in rows:
        assert set(row) == {"prompt", "query", "reasoning_query", "pos", "neg"}
        assert row["prompt"] == INSTRUCTION and row["query"] in queries
        assert row["reasoning_query"].startswith(row["query"]) and len(row["reasoning_query"]) > len(row["query"])
        assert row["pos"] and row["neg"] and set(row["pos"]).isdisjoint(row["neg"])
        assert set(row["pos"]) | set(row["neg"]) <= texts
        assert SEEDS[queries[row["query"]]["seed_id"]] not in row["pos"] + row["neg"]
    print(json.dumps({k: task[k] for k in ("generate", "annotate", "label")}))


def test_logit_annotator_reads_a_score_distribution():
    from reasonembed_rag.training.remixer.annotator import LogitAnnotator
    from reasonembed_rag.training.remixer.prompts import PromptBook

    annotator = LogitAnnotator(batch_size=2)
    prompts = PromptBook().for_task("champ_concepts")
    question = "Find the remainder of 3^100 divided by 7."
    conversations = [
        prompts.annotation_messages(question, SEEDS["fermat"], style="direct", examples=False),
        prompts.annotation_messages(
            question, DISTRACTORS["pigeonhole"] + " " + DISTRACTORS["vieta"], style="direct", examples=False
        ),
    ]
    distributions = annotator.score(conversations)
    assert len(distributions) == 2
    for distribution in distributions:
        assert abs(sum(distribution.probabilities) - 1) < 1e-4
        assert 1 <= distribution.score <= 5 and 1 <= distribution.expected <= 5
    # left padding in a batch does not change the result of the shorter prompt
    alone = annotator.score(conversations[:1])[0]
    assert max(abs(a - b) for a, b in zip(alone.probabilities, distributions[0].probabilities, strict=True)) < 1e-3
