"""ChromaEmbeddingFunction: registration, persisted config, and a collection reopened in a fresh process."""

from __future__ import annotations

import chromadb
import numpy as np
import pytest
from chromadb.utils.embedding_functions import known_embedding_functions

from reasonembed_rag.integrations.chroma import ChromaEmbeddingFunction
from reasonembed_rag.store import ChromaStore

from .integration_helpers import run_python

QUERY = "Why do cells stop dividing as an organism ages?"
TEXTS = [
    "Telomeres shorten with every cell division until the cell stops dividing.",
    "Inflation is a sustained rise in the general price level.",
]

REOPEN = """
import json, sys
import chromadb
import reasonembed_rag.integrations.chroma  # registers the embedding function, as importing the package's store does
from reasonembed_rag.store import ChromaStore

path, queries = sys.argv[1], json.loads(sys.argv[2])
collection = chromadb.PersistentClient(path=path).get_collection("champ")
function = collection.configuration["embedding_function"]
raw = collection.query(query_texts=queries, n_results=10, include=["distances"])["ids"]
store = ChromaStore("champ", function.encoder, chroma=path, create=False)
via_store = [[hit.id for hit in row] for row in store.search(queries, k=10)]
print(json.dumps({"function": repr(function), "raw": raw, "store": via_store, "count": store.count()}))
"""


def test_registered_and_not_legacy():
    assert known_embedding_functions["reasonembed"] is ChromaEmbeddingFunction
    function = ChromaEmbeddingFunction("some-model", task="biology")
    assert not function.is_legacy()
    assert function.default_space() == "cosine"


def test_config_round_trip_does_not_load_the_model():
    function = ChromaEmbeddingFunction("no-such-model-folder", instruction="Find proofs.")
    rebuilt = ChromaEmbeddingFunction.build_from_config(function.get_config())
    assert rebuilt.get_config() == {"model": "no-such-model-folder", "task": None, "instruction": "Find proofs."}
    with pytest.raises(ValueError, match="needs a 'model'"):
        ChromaEmbeddingFunction.build_from_config({"task": "biology"})
    with pytest.raises(ValueError, match="either task"):
        ChromaEmbeddingFunction("m", task="biology", instruction="x")


@pytest.mark.slow
def test_documents_and_queries_are_embedded_differently(minilm_instructed):
    function = ChromaEmbeddingFunction.from_encoder(minilm_instructed, task="biology")
    documents = np.array(function(TEXTS))
    queries = np.array(function.embed_query([QUERY]))
    np.testing.assert_allclose(documents, minilm_instructed.encode_documents(TEXTS), atol=1e-5)
    np.testing.assert_allclose(queries[0], minilm_instructed.encode_queries([QUERY], task="biology")[0], atol=1e-5)
    assert function.with_task("economics").encoder is minilm_instructed


@pytest.mark.slow
def test_plain_chroma_collection_with_our_function(tmp_path, shared_minilm):
    client = chromadb.PersistentClient(path=str(tmp_path))
    collection = client.create_collection(
        "plain-chroma",
        embedding_function=ChromaEmbeddingFunction(model="minilm-l6", task="biology"),
        configuration={"hnsw": {"space": "cosine"}},
    )
    collection.add(ids=["cells", "prices"], documents=TEXTS)
    assert collection.query(query_texts=[QUERY], n_results=1)["ids"] == [["cells"]]
    reopened = client.get_collection("plain-chroma")  # no function passed: rebuilt from the persisted config
    assert reopened.query(query_texts=[QUERY], n_results=2)["ids"] == [["cells", "prices"]]
    assert reopened.configuration["embedding_function"].encoder is shared_minilm


@pytest.mark.slow
def test_reopened_in_a_new_process(champ, champ_exact, champ_index):
    import json

    queries = champ.queries[:6]
    result = run_python(REOPEN, str(champ_index.path), json.dumps(queries))
    assert result["function"] == "ChromaEmbeddingFunction(model='minilm-l6', task=None, instruction=None)"
    assert result["count"] == len(champ.ids)
    scores = champ_exact.scores[:6]
    champ_exact.assert_same_ranking(result["raw"], 10, scores=scores)
    champ_exact.assert_same_ranking(result["store"], 10, scores=scores)


@pytest.mark.slow
def test_store_persists_its_task_in_the_function(tmp_path, shared_minilm):
    store = ChromaStore("with-task", shared_minilm, chroma=tmp_path, task="biology")
    persisted = store.collection.configuration_json["embedding_function"]
    assert persisted == {
        "type": "known",
        "name": "reasonembed",
        "config": {"model": "minilm-l6", "task": "biology", "instruction": None},
    }
