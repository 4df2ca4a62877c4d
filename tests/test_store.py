"""The Chroma store: real Chroma (embedded and a server started here), real MiniLM where vectors must mean something.

Store logic that does not depend on what vectors mean (ids, batching, streaming, identity checks) runs on the cheap
:class:`~tests.stub_encoders.TinyEncoder`; retrieval results are checked against exact search with MiniLM.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import chromadb
import chromadb.errors
import numpy as np
import pytest
from filelock import FileLock, Timeout

from reasonembed_rag.models import weights_fingerprint
from reasonembed_rag.store import (
    DEFAULT_BATCH_SIZE,
    HNSW_SETTINGS,
    LOCK_FILE,
    ChromaStore,
    CollectionMismatchError,
    Document,
    FolderLockedError,
    IndexingInterrupted,
    IndexReport,
    RecordBatch,
    VerifyReport,
    check_collection_name,
    default_chroma_path,
    get_client,
    recorded_model,
)

from .integration_helpers import ExactSearch, chroma_server
from .stub_encoders import CountingEncoder, PrecomputedEncoder, TinyEncoder
from .tiny_models import build_tiny_decoder

# --------------------------------------------------------------------------------------------------- real corpus


@pytest.mark.slow
def test_index_reports_every_document_once(champ, champ_index):
    assert champ_index.report == IndexReport(added=len(champ.ids), already_present=0, duplicates=0)
    assert champ_index.store.count() == len(champ.ids) == 545


@pytest.mark.slow
def test_search_equals_exact_search(champ, champ_exact, champ_index):
    hits = champ_index.store.search(champ.queries, k=10)
    champ_exact.assert_same_ranking([[hit.id for hit in row] for row in hits], 10)
    scores = np.array([[hit.score for hit in row] for row in hits])
    np.testing.assert_allclose(scores, champ_exact.top_scores(10), atol=1e-4)


@pytest.mark.slow
def test_deep_search_returns_the_whole_ranking(champ, champ_exact, champ_index):
    k = len(champ.ids)
    hits = champ_index.store.search_by_vectors(champ_exact.queries[:4], k=k + 100)
    for row, exact_scores, exact_ids in zip(
        hits, champ_exact.top_scores(k)[:4], champ_exact.top_ids(k)[:4], strict=True
    ):
        assert len(row) == k
        assert {hit.id for hit in row} == set(exact_ids)
        np.testing.assert_allclose([hit.score for hit in row], exact_scores, atol=1e-4)


@pytest.mark.slow
def test_search_one_query_with_content(champ, champ_index):
    hits = champ_index.store.search(champ.queries[0], k=3, include_content=True)
    assert len(hits) == 3
    assert all(hit.content == champ.texts[champ.ids.index(hit.id)] for hit in hits)


@pytest.mark.slow
def test_reindexing_embeds_and_adds_nothing(champ, champ_index):
    counting = CountingEncoder(champ_index.store.encoder)
    store = ChromaStore("champ", counting, chroma=champ_index.path)
    report = store.add_documents(zip(champ.ids, champ.texts, strict=True), show_progress=False)
    assert report == IndexReport(added=0, already_present=len(champ.ids), duplicates=0)
    assert counting.calls == []
    assert store.count() == len(champ.ids)


@pytest.mark.slow
def test_collection_records_model_and_cosine_space(champ_index, shared_minilm):
    collection = champ_index.store.collection
    assert collection.metadata == {
        "reasonembed_model": "minilm-l6",
        "reasonembed_dimension": shared_minilm.dimension,
        "reasonembed_query_format": shared_minilm.query_format,
        "reasonembed_weights": weights_fingerprint(shared_minilm.source),
        "reasonembed_quantize": "none",
    }
    hnsw = collection.configuration_json["hnsw"]
    assert {key: hnsw[key] for key in HNSW_SETTINGS} == HNSW_SETTINGS
    assert recorded_model("champ", chroma=champ_index.path) == "minilm-l6"


# --------------------------------------------------------------------------------------------------- identity checks


@pytest.mark.slow
def test_mismatched_model_is_refused_naming_both(champ_index):
    with pytest.raises(CollectionMismatchError) as caught:
        ChromaStore("champ", TinyEncoder("other-model", dimension=384), chroma=champ_index.path)
    assert "'minilm-l6'" in str(caught.value) and "'other-model'" in str(caught.value)


@pytest.mark.slow
def test_dimension_mismatch_is_refused(champ_index):
    with pytest.raises(CollectionMismatchError, match=r"384-d vectors.*makes 8-d vectors"):
        ChromaStore("champ", TinyEncoder("minilm-l6", dimension=8), chroma=champ_index.path)


@pytest.mark.slow
def test_query_format_mismatch_is_refused(champ_index):
    changed = TinyEncoder("minilm-l6", dimension=384, query_format="Instruct: {instruction}\nQuery: {query}")
    with pytest.raises(CollectionMismatchError, match="query format"):
        ChromaStore("champ", changed, chroma=champ_index.path)


def test_vectors_of_the_wrong_dimension_are_refused(tmp_path):
    store = ChromaStore("vectors", TinyEncoder(dimension=8), chroma=tmp_path)
    with pytest.raises(ValueError, match=r"shape \(2, 4\).*\(n, 8\)"):
        store.add_embeddings(["a", "b"], np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(1, 4\)"):
        store.search_by_vectors(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="2 ids but 1 documents"):
        store.add_embeddings(["a", "b"], np.ones((2, 8), dtype=np.float32), documents=["x"])


def test_hnsw_settings_can_be_overridden_but_space_stays_cosine(tmp_path):
    store = ChromaStore("custom-hnsw", TinyEncoder(), chroma=tmp_path, hnsw={"ef_search": 50, "space": "l2"})
    hnsw = store.collection.configuration_json["hnsw"]
    assert (hnsw["ef_search"], hnsw["space"], hnsw["max_neighbors"]) == (50, "cosine", HNSW_SETTINGS["max_neighbors"])


def test_collection_not_made_by_us_is_refused(tmp_path):
    get_client(tmp_path).create_collection("plain", embedding_function=None)
    with pytest.raises(CollectionMismatchError, match="not created by reasonembed-rag"):
        ChromaStore("plain", TinyEncoder(), chroma=tmp_path)


def test_missing_collection_without_create(tmp_path):
    with pytest.raises(LookupError, match="No collection 'absent'"):
        ChromaStore("absent", TinyEncoder(), chroma=tmp_path, create=False)


@pytest.mark.parametrize("name", ["ab", "has space", "-leading", "trailing_", "x" * 513])
def test_invalid_collection_names(name):
    with pytest.raises(ValueError, match="not valid in Chroma"):
        check_collection_name(name)


# --------------------------------------------------------------------------------------------------- indexing rules


def test_duplicate_ids_keep_the_first_document(tmp_path):
    store = ChromaStore("duplicates", TinyEncoder(), chroma=tmp_path)
    documents = [("a", "first a"), ("b", "b"), ("a", "second a"), Document("c", "c", {"source": "test"})]
    assert store.add_documents(documents, show_progress=False) == IndexReport(added=3, duplicates=1)
    stored = store.collection.get(ids=["a", "c"], include=["documents", "metadatas"])
    assert dict(zip(stored["ids"], stored["documents"], strict=True)) == {"a": "first a", "c": "c"}
    assert stored["metadatas"][stored["ids"].index("c")] == {"source": "test"}
    # Across chunks, a repeated id is already in the collection by the time its chunk is read.
    report = store.add_documents([("d", "d"), ("e", "e"), ("d", "again")], batch_size=2, show_progress=False)
    assert report == IndexReport(added=2, already_present=1)


def test_bad_documents_are_refused_clearly(tmp_path):
    store = ChromaStore("bad-input", TinyEncoder(), chroma=tmp_path)
    with pytest.raises(ValueError, match="'id' and 'content'"):
        store.add_documents([{"id": "a", "text": "no content key"}])
    with pytest.raises(TypeError, match="need str"):
        store.add_documents([("a", None)])
    with pytest.raises(ValueError, match="non-empty strings"):
        store.add_embeddings([""], np.ones((1, 8), dtype=np.float32))


def test_more_documents_than_one_chroma_call_streamed_in_chunks(tmp_path):
    encoder = TinyEncoder()
    store = ChromaStore("many", encoder, chroma=tmp_path)
    limit = store.max_batch_size
    total = 6500
    assert total > limit
    produced = 0
    read_ahead = []
    embed = encoder.encode_documents

    def encode_documents(texts, **kwargs):
        read_ahead.append(produced - sum(encoder.document_calls))
        return embed(texts, **kwargs)

    encoder.encode_documents = encode_documents

    def documents():
        nonlocal produced
        for i in range(total):
            produced += 1
            yield {"id": f"doc-{i}", "content": f"document number {i}"}

    report = store.add_documents(documents(), show_progress=False)
    assert report == IndexReport(added=total)
    assert store.count() == total
    assert max(read_ahead) <= DEFAULT_BATCH_SIZE  # never more than one (small) chunk read but not yet written
    assert sum(encoder.document_calls) == total and max(encoder.document_calls) <= DEFAULT_BATCH_SIZE
    assert store.add_documents(documents(), show_progress=False) == IndexReport(already_present=total)
    assert sum(encoder.document_calls) == total


@pytest.mark.slow
def test_more_precomputed_vectors_than_one_chroma_call_and_deep_search(tmp_path):
    encoder = TinyEncoder(dimension=16)
    store = ChromaStore("many-vectors", encoder, chroma=tmp_path)
    ids = [f"v{i}" for i in range(6100)]
    vectors = np.random.default_rng(0).standard_normal((6100, 16)).astype(np.float32)  # precomputed, distinct
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert store.add_embeddings(ids, vectors, documents=ids, show_progress=False) == IndexReport(added=6100)
    assert store.count() == 6100
    assert store.add_embeddings(ids, vectors) == IndexReport(already_present=6100)
    top = store.search_by_vectors(vectors[:3], k=1)
    assert [row[0].id for row in top] == ids[:3]
    # Deep retrieval (k in the thousands) is exact through the store and both frameworks.
    query, k = "a deep query", 2500
    exact = ExactSearch(ids, vectors, encoder.encode_queries([query]))
    exact.assert_same_ranking([[hit.id for hit in store.search(query, k=k)]], k)
    exact.assert_same_ranking([[document.id for document in store.langchain_retriever(k=k).invoke(query)]], k)
    exact.assert_same_ranking(
        [[result.node.node_id for result in store.llama_index_retriever(k=k).retrieve(query)]], k
    )


@pytest.mark.slow
def test_empty_collection_returns_no_hits(tmp_path, shared_minilm):
    store = ChromaStore("empty", shared_minilm, chroma=tmp_path)
    assert store.count() == 0
    assert store.search("anything at all", k=10) == []
    assert store.search(["one", "two"], k=1000) == [[], []]
    assert store.llama_index_retriever(k=5).retrieve("anything") == []
    assert store.langchain_retriever(k=5).invoke("anything") == []


def test_bad_k_is_refused(tmp_path):
    store = ChromaStore("bad-k", TinyEncoder(), chroma=tmp_path)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        store.search("q", k=0)


# --------------------------------------------------------------------------------------------------- records


def _stored_records(tmp_path, name="records", hnsw=None):
    """A store holding five records with known vectors, texts (r0 without) and metadata (odd ones only)."""
    store = ChromaStore(name, TinyEncoder(), chroma=tmp_path, hnsw=hnsw)
    ids = [f"r{i}" for i in range(5)]
    vectors = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadatas = [{"n": i} if i % 2 else None for i in range(5)]
    store.add_embeddings(ids, vectors, documents=[f"text {i}" if i else None for i in range(5)], metadatas=metadatas)
    return store, dict(zip(ids, vectors, strict=True))


def _everything(store):
    """id -> (vector, text, metadata) over all of a store's records."""
    found = {}
    for batch in store.records():
        for i, doc_id in enumerate(batch.ids):
            found[doc_id] = (batch.embeddings[i], batch.documents[i], batch.metadatas[i])
    return found


def test_records_are_read_in_batches_holding_what_was_asked(tmp_path):
    store, vectors = _stored_records(tmp_path)
    batches = list(store.records(batch_size=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert all(isinstance(batch, RecordBatch) for batch in batches)
    assert sorted(doc_id for batch in batches for doc_id in batch.ids) == sorted(vectors)
    for batch in batches:
        assert batch.embeddings.dtype == np.float32 and batch.embeddings.shape == (len(batch), 8)
        for i, doc_id in enumerate(batch.ids):
            np.testing.assert_allclose(batch.embeddings[i], vectors[doc_id], atol=1e-6)
            number = int(doc_id[1:])
            assert batch.documents[i] == (f"text {number}" if number else None)
            assert batch.metadatas[i] == ({"n": number} if number % 2 else None)
    (ids_only,) = store.records(embeddings=False, documents=False, metadatas=False)
    assert len(ids_only) == 5 and (ids_only.embeddings, ids_only.documents, ids_only.metadatas) == (None, None, None)
    assert list(ChromaStore("no-records", TinyEncoder(), chroma=tmp_path).records()) == []
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        next(store.records(batch_size=0))


def test_copy_is_a_scratch_collection_and_delete_collection_removes_it(tmp_path):
    store, _ = _stored_records(tmp_path, "original", hnsw={"ef_search": 123})
    before = _everything(store)
    copy = store.copy("scratch")
    assert (copy.name, copy.count(), recorded_model("scratch", chroma=tmp_path)) == ("scratch", 5, "tiny-encoder")
    copied = _everything(copy)
    assert copied.keys() == before.keys()
    for doc_id, (vector, text, metadata) in before.items():
        # Chroma normalises vectors it stores in cosine space, so a copy can move by a float32 rounding step.
        np.testing.assert_allclose(copied[doc_id][0], vector, atol=1e-6)
        assert copied[doc_id][1:] == (text, metadata)
    client = get_client(tmp_path)
    hnsw = [client.get_collection(name).configuration_json["hnsw"] for name in ("original", "scratch")]
    assert hnsw[0]["ef_search"] == 123 and hnsw[1] == hnsw[0]
    query = next(iter(before.values()))[0]
    (copy_hits,), (hits,) = copy.search_by_vectors(query, k=5), store.search_by_vectors(query, k=5)
    assert [hit.id for hit in copy_hits] == [hit.id for hit in hits]
    np.testing.assert_allclose([hit.score for hit in copy_hits], [hit.score for hit in hits], atol=1e-6)

    # Writing to the copy leaves the original as it was.
    copy.add_documents([("injected", "an adversarial passage")], show_progress=False)
    copy.delete(["r0", "r1", "not-there"])
    copy.delete([])
    assert sorted(_everything(copy)) == ["injected", "r2", "r3", "r4"]
    assert _everything(store).keys() == before.keys() and store.count() == 5

    with pytest.raises(ValueError, match="'original' into 'scratch'.*already exists"):
        store.copy("scratch")
    with pytest.raises(ValueError, match="not valid in Chroma"):
        store.copy("x")
    assert copy.delete_collection() is True
    assert copy.delete_collection() is False  # deleting twice is harmless
    assert sorted(c.name for c in get_client(tmp_path).list_collections()) == ["original"]
    assert store.count() == 5


# --------------------------------------------------------------------------------------------------- clients


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REASONEMBED_RAG_HOME", str(tmp_path / "home"))
    assert default_chroma_path() == tmp_path / "home" / "chroma"
    monkeypatch.delenv("REASONEMBED_RAG_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_chroma_path() == tmp_path / "xdg" / "reasonembed-rag" / "chroma"


def test_default_client_is_persistent_under_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("REASONEMBED_RAG_HOME", str(tmp_path))
    store = ChromaStore("default-place", TinyEncoder())
    store.add_documents([("a", "a")], show_progress=False)
    assert (tmp_path / "chroma" / "chroma.sqlite3").exists()
    assert "default Chroma folder" in store.location


def test_user_client_on_the_same_folder_shares_the_database(tmp_path):
    store = ChromaStore("shared-folder", TinyEncoder(), chroma=tmp_path)
    store.add_documents([("a", "a")], show_progress=False)
    assert chromadb.PersistentClient(path=str(tmp_path)).get_collection("shared-folder").count() == 1


@pytest.mark.parametrize(
    ("address", "message"),
    [("ftp://host:1", "http://host:port"), ("http://host:99999", "invalid port"), ("http://h:1/path", "has a path")],
)
def test_bad_server_addresses(address, message):
    with pytest.raises(ValueError, match=message):
        get_client(address)


def test_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        get_client(tmp_path / "file")


@pytest.mark.slow
def test_chroma_server_through_the_same_api(tmp_path, champ, champ_exact, shared_minilm):
    subset = 120
    documents = [{"id": i, "content": t} for i, t in zip(champ.ids[:subset], champ.texts[:subset], strict=True)]
    exact = ExactSearch(champ.ids[:subset], champ_exact.documents[:subset], champ_exact.queries[:3])
    encoder = PrecomputedEncoder(shared_minilm, champ.texts, champ_exact.documents)
    with chroma_server(tmp_path / "server") as url:
        store = ChromaStore("champ-server", encoder, chroma=url)
        assert store.add_documents(documents, show_progress=False) == IndexReport(added=subset)
        assert store.add_documents(documents, show_progress=False) == IndexReport(already_present=subset)
        hits = store.search(champ.queries[:3], k=10)
        exact.assert_same_ranking([[hit.id for hit in row] for row in hits], 10)
        reopened = ChromaStore("champ-server", shared_minilm, chroma=url, create=False)
        assert reopened.count() == subset
        langchain = [[d.id for d in reopened.langchain_retriever(k=10).invoke(q)] for q in champ.queries[:3]]
        exact.assert_same_ranking(langchain, 10)
        llama_index = [
            [n.node.node_id for n in reopened.llama_index_retriever(k=10).retrieve(q)] for q in champ.queries[:3]
        ]
        exact.assert_same_ranking(llama_index, 10)
        with pytest.raises(CollectionMismatchError, match="'other-model'"):
            ChromaStore("champ-server", TinyEncoder("other-model", dimension=384), chroma=url)


# --------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["a..b", "x...y", "192.168.0.1", "1.2.3.4", "theorem..qa", "255.255.255.255"])
def test_names_chroma_refuses_are_refused_by_our_check_first(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.\.|IP address") as caught:
        check_collection_name(name)
    assert "3-512 characters" in str(caught.value)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        ChromaStore(name, TinyEncoder(), chroma=tmp_path)


@pytest.mark.parametrize("name", ["1.2.3", "256.1.1.1", "01.2.3.4", "1.2.3.4.5", "a.b.c.d", "my-corpus.v2"])
def test_names_that_look_close_but_chroma_accepts(name):
    assert check_collection_name(name) == name
    chromadb.EphemeralClient().get_or_create_collection(name, embedding_function=None)  # Chroma agrees


@pytest.mark.parametrize(
    ("bad_id", "shown"), [(1, r"id 1 \(int\)"), (None, r"id None \(NoneType\)"), (2.5, r"id 2.5 \(float\)")]
)
def test_non_string_ids_are_refused_not_converted(tmp_path, bad_id, shown):
    store = ChromaStore("typed-ids", TinyEncoder(), chroma=tmp_path)
    store.add_documents([{"id": "1", "content": "the string id"}], show_progress=False)
    with pytest.raises(TypeError, match=rf"Document 2 of the input has {shown}.*must be non-empty strings"):
        store.add_documents([{"id": "x", "content": "x"}, {"id": bad_id, "content": "other"}], show_progress=False)
    with pytest.raises(TypeError, match="Document 1 of the input"):
        store.add_documents([(bad_id, "pair")], show_progress=False)
    assert store.collection.get(ids=["1"], include=["documents"])["documents"] == ["the string id"]
    assert store.count() == 1  # nothing merged, nothing of the refused chunk written


def test_a_huge_k_returns_the_whole_collection(tmp_path):
    store = ChromaStore("huge-k", TinyEncoder(), chroma=tmp_path)
    store.add_documents([("a", "prime number"), ("b", "cell gene")], show_progress=False)
    assert {hit.id for hit in store.search("prime", k=5_000_000_000)} == {"a", "b"}


def test_failed_first_indexing_leaves_no_collection_bound_to_its_model(tmp_path):
    def documents():
        yield {"id": "a", "content": "fine"}
        raise OSError("disk read failed")

    store = ChromaStore("failed", TinyEncoder("first-model"), chroma=tmp_path)
    with pytest.raises(OSError, match="disk read failed"):
        store.add_documents(documents(), show_progress=False)
    store.close()
    assert recorded_model("failed", chroma=tmp_path) is None  # empty: binds no model
    other = ChromaStore("failed", TinyEncoder("second-model"), chroma=tmp_path)  # not refused
    assert other.add_documents([("b", "b")], show_progress=False) == IndexReport(added=1)
    assert other.collection.metadata["reasonembed_model"] == "second-model"
    other.close()
    # Once it holds vectors, the collection is bound again.
    with pytest.raises(CollectionMismatchError, match="'second-model'"):
        ChromaStore("failed", TinyEncoder("first-model"), chroma=tmp_path)


def test_interrupted_indexing_keeps_written_chunks_and_resumes(tmp_path):
    total, interrupt_after = 50, 23

    def documents(stop: int | None):
        for i in range(total):
            if i == stop:
                raise KeyboardInterrupt
            yield {"id": f"doc-{i}", "content": f"document number {i}"}

    store = ChromaStore("interrupted", TinyEncoder(), chroma=tmp_path)
    with pytest.raises(IndexingInterrupted) as caught:
        store.add_documents(documents(interrupt_after), batch_size=10, show_progress=False)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.report == IndexReport(added=20)  # two whole chunks; the third was being read
    assert store.count() == 20
    assert store.add_documents(documents(None), batch_size=10, show_progress=False) == IndexReport(
        added=total - 20, already_present=20
    )
    ids = store.collection.get(include=[])["ids"]
    assert len(ids) == len(set(ids)) == total


def test_default_chunks_are_small(tmp_path):
    encoder = TinyEncoder()
    store = ChromaStore("small-chunks", encoder, chroma=tmp_path)
    store.add_documents(((f"d{i}", f"text {i}") for i in range(DEFAULT_BATCH_SIZE + 5)), show_progress=False)
    assert encoder.document_calls == [DEFAULT_BATCH_SIZE, 5]
    assert DEFAULT_BATCH_SIZE <= 512 < store.max_batch_size


# --------------------------------------------------------------------------------------------------- weights


def test_retrained_weights_are_refused_naming_both_fingerprints_and_reembed_rebuilds(tmp_path):
    model = build_tiny_decoder(tmp_path / "model", hidden_size=8, seed=0)
    first = TinyEncoder("my-model", folder=model)
    store = ChromaStore("retrained", first, chroma=tmp_path / "db")
    store.add_documents([("a", "prime number"), ("b", "cell gene")], show_progress=False)
    old = store.collection.metadata["reasonembed_weights"]
    assert old == weights_fingerprint(model) != "-"
    store.close()

    os.utime(model / "model.safetensors")  # touched or copied again: same contents, same fingerprint
    assert ChromaStore("retrained", TinyEncoder("my-model", folder=model), chroma=tmp_path / "db").count() == 2

    build_tiny_decoder(model, hidden_size=8, seed=1)  # trained again in place
    retrained = TinyEncoder("my-model", folder=model)
    new = weights_fingerprint(model)
    assert new != old
    with pytest.raises(CollectionMismatchError, match=rf"weights {old} of 'my-model'.*has weights {new}.*--reembed"):
        ChromaStore("retrained", retrained, chroma=tmp_path / "db")
    rebuilt = ChromaStore("retrained", retrained, chroma=tmp_path / "db", reembed=True)
    assert rebuilt.count() == 0 and rebuilt.collection.metadata["reasonembed_weights"] == new
    with pytest.raises(ValueError, match="needs create=True"):
        ChromaStore("retrained", retrained, chroma=tmp_path / "db", reembed=True, create=False)


def test_collection_from_before_fingerprints_records_them_on_the_next_write(tmp_path):
    encoder = TinyEncoder()
    legacy = {"reasonembed_model": encoder.name, "reasonembed_dimension": 8, "reasonembed_query_format": "{query}"}
    get_client(tmp_path).create_collection("legacy", metadata=legacy, configuration={"hnsw": {"space": "cosine"}})
    store = ChromaStore("legacy", encoder, chroma=tmp_path)
    store.add_documents([("a", "a")], show_progress=False)
    recorded = {"reasonembed_weights": weights_fingerprint(encoder.source), "reasonembed_quantize": "none"}
    assert store.collection.metadata == {**legacy, **recorded}
    assert get_client(tmp_path).get_collection("legacy").metadata["reasonembed_weights"] == store.weights_fingerprint


def test_another_quantisation_may_search_but_not_write(tmp_path):
    """Quantised and float vectors of one model differ slightly: a collection records which built it and refuses to
    mix them (the weights fingerprint cannot tell: the files are the same)."""
    store = ChromaStore("float", TinyEncoder(), chroma=tmp_path)
    store.add_documents([("a", "alpha beta"), ("b", "gamma delta")], show_progress=False)
    assert store.collection.metadata["reasonembed_quantize"] == "none"
    store.close()
    quantised = ChromaStore("float", TinyEncoder(quantize="int8"), chroma=tmp_path)
    assert {hit.id for hit in quantised.search("alpha", k=2)} == {"a", "b"}
    with pytest.raises(CollectionMismatchError, match=r"quantised as 'none'.*quantised as 'int8'.*no --quantize"):
        quantised.add_documents([("c", "epsilon")], show_progress=False)
    assert quantised.count() == 2
    quantised.close()
    rebuilt = ChromaStore("float", TinyEncoder(quantize="int8"), chroma=tmp_path, reembed=True)
    rebuilt.add_documents([("c", "epsilon")], show_progress=False)
    assert rebuilt.collection.metadata["reasonembed_quantize"] == "int8" and rebuilt.count() == 1


# --------------------------------------------------------------------------------------------------- one writer


def test_a_second_writer_waits_for_the_lock_and_says_so(tmp_path, caplog):
    folder = tmp_path / "db"
    folder.mkdir()
    other_writer = FileLock(folder / LOCK_FILE, thread_local=False)  # another lock object: another process, to flock
    other_writer.acquire()
    with caplog.at_level(logging.WARNING, logger="reasonembed_rag.store"):
        with pytest.raises(FolderLockedError, match=rf"lock on the Chroma folder {folder}.*chroma run --path"):
            ChromaStore("locked", TinyEncoder(), chroma=folder, lock_timeout=0.3)
        assert f"waiting for the lock on {folder} held by another writer" in caplog.text
        # Readers take no lock.
        with pytest.raises(LookupError, match="No collection 'locked'"):
            ChromaStore("locked", TinyEncoder(), chroma=folder, create=False)
        threading.Timer(0.5, other_writer.release).start()
        with ChromaStore("locked", TinyEncoder(), chroma=folder, lock_timeout=30) as store:
            assert "got the lock on" in caplog.text
            store.add_documents([("a", "a")], show_progress=False)
            reentrant = ChromaStore("locked", TinyEncoder(), chroma=folder, lock_timeout=0)  # same process
            assert reentrant.count() == 1
            reentrant.close()
            with pytest.raises(Timeout):
                FileLock(folder / LOCK_FILE).acquire(timeout=0.1)
    FileLock(folder / LOCK_FILE).acquire(timeout=0.1).lock.release()  # released on close


def test_a_reader_takes_the_lock_when_it_writes(tmp_path):
    folder = tmp_path / "db"
    ChromaStore("reader", TinyEncoder(), chroma=folder).close()
    reader = ChromaStore("reader", TinyEncoder(), chroma=folder, create=False)
    FileLock(folder / LOCK_FILE).acquire(timeout=0.1).lock.release()  # opening it took no lock
    reader.add_documents([("a", "a")], show_progress=False)
    with pytest.raises(Timeout):
        FileLock(folder / LOCK_FILE).acquire(timeout=0.1)
    assert reader.count() == 1
    reader.close()
    FileLock(folder / LOCK_FILE).acquire(timeout=0.1).lock.release()


def test_verify_finds_and_repairs_vectors_lost_by_two_unlocked_writers(tmp_path):
    folder = tmp_path / "db"
    encoder = TinyEncoder(dimension=16)
    with ChromaStore("lost", encoder, chroma=folder) as store:
        assert store.verify() == VerifyReport()
    # What two processes writing one folder without the lock do: a writer whose in-memory view predates another's
    # writes overwrites the persisted vector index (tests/unlocked_writers.py; the store's lock prevents it).
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name("unlocked_writers.py")), str(folder), "lost", "700"], check=True
    )
    store = ChromaStore("lost", encoder, chroma=folder)
    assert store.count() == 2100
    with pytest.raises(chromadb.errors.InternalError, match="Error finding id"):
        store.collection.get(include=["embeddings"])
    found = store.verify()
    assert {doc_id.split("-")[0] for doc_id in found.missing} == {"second", "bare"}  # the second writer's records
    assert found.reembedded == 0 and found.removed == ()
    assert len(store.search_by_vectors(np.ones(16, dtype=np.float32), k=3000)[0]) == 2100 - len(found.missing)
    repaired = store.verify(repair=True)
    assert set(repaired.missing) == set(found.missing)
    with_text = [doc_id for doc_id in found.missing if not doc_id.startswith("bare-")]
    assert repaired.reembedded == len(with_text) and set(repaired.removed) == set(found.missing) - set(with_text)
    assert store.verify() == VerifyReport()
    assert len(store.collection.get(include=["embeddings"])["ids"]) == store.count() == 2100 - len(repaired.removed)
    assert len(store.search_by_vectors(np.ones(16, dtype=np.float32), k=3000)[0]) == store.count()
    stored = store.collection.get(ids=with_text[:1], include=["embeddings", "documents"])
    expected = encoder.encode_documents(stored["documents"])
    np.testing.assert_allclose(stored["embeddings"], expected, atol=1e-5)
