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
    assert rebuilt.get_config() == {
        "model": "no-such-model-folder",
        "task": None,
        "instruction": "Find proofs.",
        "pooling": None,
        "max_length": None,
        "query_format": None,
        "device": None,
    }
    old_style = ChromaEmbeddingFunction.build_from_config({"model": "m", "task": "biology", "instruction": None})
    # a configuration written before the settings were recorded rebuilds with the model's own settings
    assert old_style.model_kwargs == {} and old_style.task == "biology"
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
        "config": {"model": "minilm-l6", "task": "biology", "instruction": None, **shared_minilm.loading_settings()},
    }


# --- fast: a tiny real model built from a config ------------------------------------------------------------------

OWN_FORMAT = "Task: {instruction} | {query}"


def test_config_records_the_loading_settings_and_rebuilds_the_same_encoder(tiny_model_folder):
    asked = ChromaEmbeddingFunction(
        model_name=tiny_model_folder, task="biology", model_kwargs={"query_format": OWN_FORMAT, "max_length": 64}
    )
    config = asked.get_config()  # before loading: the options asked for
    assert {k: config[k] for k in ("query_format", "max_length", "pooling", "device")} == {
        "query_format": OWN_FORMAT,
        "max_length": 64,
        "pooling": None,
        "device": None,
    }
    rebuilt = ChromaEmbeddingFunction.build_from_config(config)
    assert rebuilt.encoder.query_format == OWN_FORMAT and rebuilt.encoder.max_length == 64
    np.testing.assert_allclose(
        rebuilt.embed_query([QUERY])[0], rebuilt.encoder.encode_queries([QUERY], task="biology")[0], atol=1e-6
    )
    assert rebuilt.encoder.format_queries([QUERY], task="biology")[0].startswith("Task: ")

    loaded = rebuilt.get_config()  # after loading: the encoder's own settings, device included
    assert loaded == {**config, "pooling": "lasttoken", "device": "cpu"}
    assert ChromaEmbeddingFunction.build_from_config(loaded).encoder is rebuilt.encoder  # shared, not reloaded
    plain = ChromaEmbeddingFunction(tiny_model_folder)
    assert plain.encoder is not rebuilt.encoder and plain.encoder.query_format != OWN_FORMAT

    elsewhere = ChromaEmbeddingFunction.build_from_config({**loaded, "device": "cuda:99"})  # no such device here
    assert "device" not in elsewhere.model_kwargs and elsewhere.encoder is rebuilt.encoder


def test_swapping_the_model_of_a_collection_is_refused(tmp_path):
    client = chromadb.PersistentClient(path=str(tmp_path))
    function = ChromaEmbeddingFunction("model-a", task="biology", model_kwargs={"query_format": OWN_FORMAT})
    collection = client.create_collection(
        "swap", embedding_function=function, configuration={"hnsw": {"space": "cosine"}}
    )
    with pytest.raises(ValueError, match="model 'model-a' -> 'model-b'"):
        collection.modify(configuration={"embedding_function": ChromaEmbeddingFunction("model-b")})
    with pytest.raises(ValueError, match="query_format"):
        bare = ChromaEmbeddingFunction("model-a", model_kwargs={"query_format": "{query}"})
        collection.modify(configuration={"embedding_function": bare})
    assert collection.configuration["embedding_function"].model == "model-a"
    collection.modify(configuration={"embedding_function": function.with_task("economics")})  # queries only: fine
    assert collection.configuration["embedding_function"].task == "economics"
    function.validate_config_update(function.get_config(), {**function.get_config(), "device": "cuda:1"})


def test_encode_options_reach_the_encoder(tiny_model_folder):
    from .stub_encoders import CountingEncoder

    counting = CountingEncoder(ChromaEmbeddingFunction(tiny_model_folder).encoder)
    function = ChromaEmbeddingFunction.from_encoder(counting, encode_kwargs={"batch_size": 4})
    function(["a", "b"])
    function.embed_query(["q"])
    function.with_task("economics")(["c"])
    assert [(kind, kwargs["batch_size"]) for kind, _, kwargs in counting.calls] == [
        ("documents", 4),
        ("queries", 4),
        ("documents", 4),
    ]
    with pytest.raises(ValueError, match="Unknown encode_kwargs"):
        ChromaEmbeddingFunction(tiny_model_folder, encode_kwargs={"prompt": "x"})
