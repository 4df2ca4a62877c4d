"""LangChainEmbeddings (with LangChain's standard test suites) and the LangChain Chroma store, with real MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from reasonembed_rag.integrations.langchain import LangChainEmbeddings

from .stub_encoders import CountingEncoder

QUERY = "Why do cells stop dividing as an organism ages?"


@pytest.fixture(autouse=True)
def _model_loaded_once(request):
    """Every LangChainEmbeddings(model='minilm-l6') built by the slow tests shares the session's model."""
    if request.node.get_closest_marker("slow"):
        request.getfixturevalue("shared_minilm")


@pytest.mark.slow
class TestLangChainEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[LangChainEmbeddings]:
        return LangChainEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": "minilm-l6", "task": "biology"}


@pytest.mark.slow
class TestLangChainEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[LangChainEmbeddings]:
        return LangChainEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": "minilm-l6", "task": "biology"}


@pytest.mark.slow
def test_retriever_over_the_collection_equals_exact_search(champ, champ_exact, champ_index):
    retriever = champ_index.store.langchain_retriever(k=10)
    rankings = [[document.id for document in retriever.invoke(query)] for query in champ.queries]
    champ_exact.assert_same_ranking(rankings, 10)


@pytest.mark.slow
def test_deep_search_and_cosine_relevance_scores(champ, champ_exact, champ_index):
    store = champ_index.store.langchain_vector_store()
    results = store.similarity_search_with_relevance_scores(champ.queries[2], k=300)
    champ_exact.assert_same_ranking([[document.id for document, _ in results]], 300, scores=champ_exact.scores[2:3])
    np.testing.assert_allclose([score for _, score in results], champ_exact.top_scores(300)[2], atol=1e-4)
    by_vector = store.similarity_search_by_vector(champ_exact.queries[2].tolist(), k=5)
    assert [document.id for document in by_vector] == [document.id for document, _ in results[:5]]


@pytest.mark.slow
def test_queries_carry_the_instruction_and_documents_never(minilm_instructed):
    embeddings = LangChainEmbeddings.from_encoder(minilm_instructed, task="biology")
    query = embeddings.embed_query(QUERY)
    document = embeddings.embed_documents([QUERY])[0]
    assert type(query[0]) is float and type(document[0]) is float
    np.testing.assert_allclose(query, minilm_instructed.encode_queries([QUERY], task="biology")[0], atol=1e-5)
    np.testing.assert_allclose(document, minilm_instructed.encode_documents([QUERY])[0], atol=1e-5)
    assert not np.allclose(query, document, atol=1e-3)


@pytest.mark.slow
async def test_async_twins_match(shared_minilm):
    embeddings = LangChainEmbeddings.from_encoder(shared_minilm, instruction="Retrieve passages.")
    np.testing.assert_allclose(await embeddings.aembed_query(QUERY), embeddings.embed_query(QUERY), atol=1e-5)
    np.testing.assert_allclose(
        await embeddings.aembed_documents([QUERY, "x"]), embeddings.embed_documents([QUERY, "x"]), atol=1e-5
    )


@pytest.mark.slow
def test_constructor_by_name_shares_the_loaded_model(shared_minilm):
    embeddings = LangChainEmbeddings(model="minilm-l6", task="biology")
    assert embeddings.encoder is shared_minilm
    economics = embeddings.with_task("economics")
    assert economics.encoder is shared_minilm and economics.task == "economics" and embeddings.task == "biology"


@pytest.mark.slow
def test_bad_arguments_are_refused(shared_minilm):
    with pytest.raises(ValueError, match="Unknown task 'nosuchtask'"):
        LangChainEmbeddings(model="minilm-l6", task="nosuchtask")
    with pytest.raises(ValidationError, match="unknown_field"):
        LangChainEmbeddings(model="minilm-l6", unknown_field=1)
    with pytest.raises(ValueError, match="disagrees"):
        LangChainEmbeddings(model="other", encoder=shared_minilm)


# --- fast: a tiny real model built from a config ------------------------------------------------------------------


def test_model_name_is_an_alias_of_model(tiny_model_folder):
    embeddings = LangChainEmbeddings(model_name=tiny_model_folder, task="biology")
    assert embeddings.model == tiny_model_folder
    assert LangChainEmbeddings(model=tiny_model_folder, model_name=tiny_model_folder).encoder is embeddings.encoder
    with pytest.raises(ValueError, match="model='other' and model_name=.* disagree"):
        LangChainEmbeddings(model="other", model_name=tiny_model_folder)
    with pytest.raises(ValueError, match="needs model="):
        LangChainEmbeddings(task="biology")


def test_loader_and_encode_options_reach_the_encoder(tiny_model_folder):
    plain = LangChainEmbeddings(model=tiny_model_folder)
    options = {"max_length": 12, "device": "cpu", "dtype": "float32"}
    embeddings = LangChainEmbeddings(model=tiny_model_folder, model_kwargs=options, encode_kwargs={"batch_size": 2})
    assert embeddings.encoder is not plain.encoder and embeddings.encoder.max_length == 12
    assert LangChainEmbeddings(model=tiny_model_folder, model_kwargs=dict(options)).encoder is embeddings.encoder
    long_text = "prime " * 50
    expected = embeddings.encoder.encode_documents([long_text])[0]
    np.testing.assert_allclose(embeddings.embed_documents([long_text])[0], expected, atol=1e-6)
    assert not np.allclose(plain.embed_documents([long_text])[0], expected, atol=1e-3)  # max_length truncated it

    counting = CountingEncoder(plain.encoder)
    batched = LangChainEmbeddings.from_encoder(counting, encode_kwargs={"batch_size": 2})
    batched.embed_documents(["a", "b", "c"])
    batched.embed_query("q")
    assert [kwargs["batch_size"] for _, _, kwargs in counting.calls] == [2, 2]

    with pytest.raises(ValueError, match="Unknown model_kwargs 'torch_dtype'. Accepted: pooling, max_length"):
        LangChainEmbeddings(model=tiny_model_folder, model_kwargs={"torch_dtype": "float16"})
    with pytest.raises(ValueError, match="Unknown encode_kwargs 'normalize_embeddings'"):
        LangChainEmbeddings(model=tiny_model_folder, encode_kwargs={"normalize_embeddings": True})
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        LangChainEmbeddings(model=tiny_model_folder, encode_kwargs={"batch_size": 0})
    with pytest.raises(ValueError, match="already loaded"):
        LangChainEmbeddings.from_encoder(plain.encoder, model_kwargs={"device": "cpu"})
