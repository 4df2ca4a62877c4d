"""LlamaIndexEmbedding and the LlamaIndex objects over a Chroma collection, with the real MiniLM model."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import QueryBundle, TextNode
from llama_index.core.storage.kvstore import SimpleKVStore

from reasonembed_rag.integrations.llama_index import DEFAULT_EMBED_BATCH_SIZE, LlamaIndexEmbedding

from .stub_encoders import CountingEncoder

QUERY = "Why do cells stop dividing as an organism ages?"
TEXTS = [
    "Telomeres shorten with every cell division until the cell stops dividing.",
    "Inflation is a sustained rise in the general price level.",
    "Photosynthesis turns light into chemical energy.",
]


@pytest.mark.slow
def test_retriever_over_the_collection_equals_exact_search(champ, champ_exact, champ_index):
    retriever = champ_index.store.llama_index_retriever(k=10)
    rankings = [[result.node.node_id for result in retriever.retrieve(query)] for query in champ.queries]
    champ_exact.assert_same_ranking(rankings, 10)
    first = retriever.retrieve(champ.queries[0])[0]
    assert first.node.get_content() == champ.texts[champ.ids.index(first.node.node_id)]


@pytest.mark.slow
def test_deep_retrieval_with_precomputed_query_vectors(champ, champ_exact, champ_index):
    retriever = champ_index.store.llama_index_retriever(k=400)
    bundle = QueryBundle(query_str=champ.queries[1], embedding=champ_exact.queries[1].tolist())
    ranking = [result.node.node_id for result in retriever.retrieve(bundle)]
    assert len(ranking) == 400
    champ_exact.assert_same_ranking([ranking], 400, scores=champ_exact.scores[1:2])


@pytest.mark.slow
def test_queries_carry_the_instruction_and_texts_never(minilm_instructed):
    embedding = LlamaIndexEmbedding.from_encoder(minilm_instructed, task="biology")
    query = np.array(embedding.get_query_embedding(QUERY))
    text = np.array(embedding.get_text_embedding(QUERY))
    np.testing.assert_allclose(query, minilm_instructed.encode_queries([QUERY], task="biology")[0], atol=1e-5)
    np.testing.assert_allclose(text, minilm_instructed.encode_documents([QUERY])[0], atol=1e-5)
    assert not np.allclose(query, text, atol=1e-3)
    bare = np.array(embedding.with_task(None).get_query_embedding(QUERY))
    assert not np.allclose(query, bare, atol=1e-3)


@pytest.mark.slow
def test_text_batches_reach_the_encoder_whole(shared_minilm):
    counting = CountingEncoder(shared_minilm)
    embedding = LlamaIndexEmbedding.from_encoder(counting)
    assert embedding.embed_batch_size == DEFAULT_EMBED_BATCH_SIZE
    vectors = embedding.get_text_embedding_batch([f"text {i}" for i in range(DEFAULT_EMBED_BATCH_SIZE + 5)])
    assert [(kind, size) for kind, size, _ in counting.calls] == [
        ("documents", DEFAULT_EMBED_BATCH_SIZE),
        ("documents", 5),
    ]
    assert len(vectors) == DEFAULT_EMBED_BATCH_SIZE + 5 and isinstance(vectors[0][0], float)


@pytest.mark.slow
async def test_async_matches_sync_without_blocking_the_loop(shared_minilm):
    embedding = LlamaIndexEmbedding.from_encoder(shared_minilm, task="biology")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    running = asyncio.create_task(ticker())
    started = time.perf_counter()
    texts = await embedding.aget_text_embedding_batch([f"document {i} " * 20 for i in range(128)])
    elapsed = time.perf_counter() - started
    running.cancel()
    assert ticks >= min(5, elapsed / 0.005 / 4), (ticks, elapsed)
    assert len(texts) == 128
    query = await embedding.aget_query_embedding(QUERY)
    np.testing.assert_allclose(query, embedding.get_query_embedding(QUERY), atol=1e-5)
    text = await embedding.aget_text_embedding(TEXTS[0])
    np.testing.assert_allclose(text, embedding.get_text_embedding(TEXTS[0]), atol=1e-5)


@pytest.mark.slow
def test_constructor_by_name_shares_the_loaded_model(shared_minilm):
    embedding = LlamaIndexEmbedding(model="minilm-l6", task="biology")
    assert embedding.encoder is shared_minilm
    assert embedding.model_name == "minilm-l6" and embedding.task == "biology"
    economics = embedding.with_task("economics")
    assert economics.encoder is shared_minilm and economics.task == "economics" and embedding.task == "biology"
    explicit = embedding.with_task(instruction="Retrieve theorems.")
    assert explicit.task is None and explicit.instruction == "Retrieve theorems."


@pytest.mark.slow
def test_bad_arguments_are_refused(shared_minilm):
    with pytest.raises(ValueError, match="Unknown task 'nosuchtask'"):
        LlamaIndexEmbedding.from_encoder(shared_minilm, task="nosuchtask")
    with pytest.raises(ValueError, match="either task"):
        LlamaIndexEmbedding.from_encoder(shared_minilm, task="biology", instruction="x")
    with pytest.raises(ValueError, match="needs model="):
        LlamaIndexEmbedding()


@pytest.mark.slow
def test_settings_index_and_ingestion_pipeline(shared_minilm, monkeypatch):
    embedding = LlamaIndexEmbedding.from_encoder(shared_minilm, task="biology")
    monkeypatch.setattr(Settings, "_embed_model", embedding)
    index = VectorStoreIndex.from_documents([Document(text=text) for text in TEXTS])
    best = index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0]
    assert best.node.get_content() == TEXTS[0]

    nodes = IngestionPipeline(transformations=[embedding]).run(nodes=[TextNode(text=text) for text in TEXTS])
    np.testing.assert_allclose(
        np.array([node.embedding for node in nodes]), shared_minilm.encode_documents(TEXTS), atol=1e-5
    )


@pytest.mark.slow
def test_insert_through_the_index_lands_in_the_collection(tmp_path, shared_minilm):
    from reasonembed_rag.store import ChromaStore

    store = ChromaStore("llama-insert", shared_minilm, chroma=tmp_path)
    index = store.llama_index_index()
    for i, text in enumerate(TEXTS):
        index.insert_nodes([TextNode(id_=f"node-{i}", text=text)])
    assert store.count() == len(TEXTS)
    assert [hit.id for hit in store.search(QUERY, k=1)] == ["node-0"]
    assert store.llama_index_retriever(k=1).retrieve(QUERY)[0].node.node_id == "node-0"


# --- fast: a tiny real model built from a config ------------------------------------------------------------------


@pytest.fixture
def tiny_embedding(tiny_model_folder):
    return LlamaIndexEmbedding(model=tiny_model_folder, task="biology", embeddings_cache=SimpleKVStore())


def test_class_name_is_the_class_name(tiny_embedding):
    assert LlamaIndexEmbedding.class_name() == "LlamaIndexEmbedding" == type(tiny_embedding).__name__
    assert tiny_embedding.to_dict()["class_name"] == "LlamaIndexEmbedding"


def test_the_cache_never_mixes_tasks_or_queries_and_texts(tiny_embedding):
    encoder = tiny_embedding.encoder
    biology = tiny_embedding.get_query_embedding(QUERY)
    economics = tiny_embedding.with_task("economics")
    assert economics.embeddings_cache is tiny_embedding.embeddings_cache  # the copy shares the cache
    np.testing.assert_allclose(biology, encoder.encode_queries([QUERY], task="biology")[0], atol=1e-5)
    np.testing.assert_allclose(
        economics.get_query_embedding(QUERY), encoder.encode_queries([QUERY], task="economics")[0], atol=1e-5
    )
    text = tiny_embedding.get_text_embedding(QUERY)
    np.testing.assert_allclose(text, encoder.encode_documents([QUERY])[0], atol=1e-5)
    np.testing.assert_allclose(tiny_embedding.get_agg_embedding_from_queries([QUERY]), biology, atol=1e-5)
    assert tiny_embedding.embeddings_cache.get(QUERY, collection="embeddings") is not None  # texts are still cached


async def test_the_async_cache_path_keeps_queries_out_too(tiny_embedding):
    encoder = tiny_embedding.encoder
    economics = tiny_embedding.with_task("economics")
    np.testing.assert_allclose(
        await tiny_embedding.aget_query_embedding(QUERY), encoder.encode_queries([QUERY], task="biology")[0], atol=1e-5
    )
    np.testing.assert_allclose(
        await economics.aget_query_embedding(QUERY), encoder.encode_queries([QUERY], task="economics")[0], atol=1e-5
    )
    np.testing.assert_allclose(
        await tiny_embedding.aget_text_embedding(QUERY), encoder.encode_documents([QUERY])[0], atol=1e-5
    )


def test_model_name_alias_and_loader_options(tiny_model_folder):
    by_alias = LlamaIndexEmbedding(model_name=tiny_model_folder)
    assert by_alias.model_name == tiny_model_folder
    with pytest.raises(ValueError, match="disagree"):
        LlamaIndexEmbedding(model="other", model_name=tiny_model_folder)
    short = LlamaIndexEmbedding(
        model=tiny_model_folder, model_kwargs={"max_length": 10, "device": "cpu"}, encode_kwargs={"batch_size": 3}
    )
    assert short.encoder is not by_alias.encoder and short.encoder.max_length == 10
    assert short.model_kwargs == {"max_length": 10, "device": "cpu"} and short.encode_kwargs == {"batch_size": 3}
    counting = CountingEncoder(by_alias.encoder)
    batched = LlamaIndexEmbedding.from_encoder(counting, encode_kwargs={"batch_size": 3})
    batched.get_text_embedding_batch(["a", "b"])
    batched.get_query_embedding("q")
    assert [(kind, kwargs["batch_size"]) for kind, _, kwargs in counting.calls] == [("documents", 3), ("queries", 3)]
    with pytest.raises(ValueError, match="Unknown model_kwargs 'device_map'"):
        LlamaIndexEmbedding(model=tiny_model_folder, model_kwargs={"device_map": "auto"})
