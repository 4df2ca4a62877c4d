"""The MTEB wrapper (issue 15 item 5): mteb 2.x evaluates :class:`MTEBEncoder` on a retrieval task built in memory
from the offline CHAMP data, and agrees with ``reasonembed-rag bright``'s evaluation of the same data."""

from __future__ import annotations

import json

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")


def _champ_task():
    """The offline CHAMP test side as an mteb ``AbsTaskRetrieval`` (in memory, no Hub); excluded ids become
    ``top_ranked`` candidate lists, as mteb's own BRIGHT tasks do it."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    from reasonembed_rag.evaluation.tasks import OFFLINE, load_tasks

    (task,) = load_tasks(OFFLINE, None)

    class ChampConcepts(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="champ_concepts",
            description="CHAMP problems -> the concepts that solve them (reasonembed-rag's offline task).",
            reference="https://github.com/YujunMao/CHAMP",
            dataset={"path": "local/champ_concepts", "revision": "local"},
            type="Retrieval",
            category="t2t",
            modalities=["text"],
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            main_score="ndcg_at_10",
            date=("2024-01-01", "2024-01-01"),
            domains=["Academic"],
            task_subtypes=[],
            license="mit",
            annotations_creators="expert-annotated",
            dialect=[],
            sample_creation="found",
            bibtex_citation="",
        )

        def load_data(self, num_proc=None, **kwargs):
            documents = sorted(task.documents)
            excluded = {q.id: set(q.excluded_ids) for q in task.queries if q.excluded_ids}
            split = RetrievalSplitData(
                queries=Dataset.from_list([{"id": q.id, "text": q.text} for q in task.queries]),
                corpus=Dataset.from_list([{"id": d, "text": task.documents[d]} for d in documents]),
                relevant_docs=task.qrels,
                top_ranked={q: [d for d in documents if d not in ids] for q, ids in excluded.items()} or None,
            )
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    return task, ChampConcepts()


def test_mteb_scores_agree_with_the_bright_evaluation(shared_minilm, tmp_path):
    from reasonembed_rag.evaluation.runner import evaluate
    from reasonembed_rag.integrations.mteb import MTEBEncoder

    task, mteb_task = _champ_task()
    encoder = MTEBEncoder(shared_minilm)
    assert isinstance(encoder, mteb.models.models_protocols.EncoderProtocol)
    result = mteb.evaluate(encoder, mteb_task, cache=None, show_progress_bar=False)
    ours = evaluate([task], shared_minilm, chroma=str(tmp_path / "chroma"))[0]
    scores = result.task_results[0].scores["test"][0]
    assert scores["ndcg_at_10"] == pytest.approx(ours.metrics["ndcg@10"], abs=0.005)
    assert scores["recall_at_10"] == pytest.approx(ours.metrics["recall@10"], abs=0.005)


def test_queries_get_our_task_instruction_and_documents_none(minilm_instructed):
    from torch.utils.data import DataLoader

    from reasonembed_rag.instructions import EXTRA_INSTRUCTIONS
    from reasonembed_rag.integrations.mteb import MTEBEncoder, task_instruction

    _, mteb_task = _champ_task()
    encoder = MTEBEncoder(minilm_instructed)
    texts = ["Find x with x^2 = 4.", "The quadratic formula."]
    loader = DataLoader([{"text": t} for t in texts], batch_size=1)
    options = {"task_metadata": mteb_task.metadata, "hf_split": "test", "hf_subset": "default"}
    queries = encoder.encode(loader, prompt_type=mteb.types.PromptType.query, **options)
    documents = encoder.encode(loader, prompt_type=mteb.types.PromptType.document, **options)
    expected = minilm_instructed.encode_queries(texts, instruction=EXTRA_INSTRUCTIONS["champ_concepts"])
    np.testing.assert_allclose(queries, expected, atol=1e-5)
    np.testing.assert_allclose(documents, minilm_instructed.encode_documents(texts), atol=1e-5)
    assert not np.allclose(queries, documents, atol=1e-3)
    assert task_instruction("BrightEarthScienceLongRetrieval") == (
        "Given an Earth Science post, retrieve relevant documents that help answer the post."
    )
    assert "retrieve relevant theorems" in task_instruction("BrightRetrieval", "theoremqa_theorems")
    assert task_instruction("BrightLeetcodeRetrieval").startswith("Given a Coding problem")
    assert task_instruction("SciFact") is None
    json.dumps(encoder.mteb_model_meta.model_dump(mode="json"))
