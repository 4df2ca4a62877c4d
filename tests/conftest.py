"""Shared fixtures: real models loaded once per test session (packaged MiniLM and SmolLM2, tiny random decoders)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm():
    from reasonembed_rag import ReasonEmbedEncoder

    return ReasonEmbedEncoder.from_pretrained("minilm-l6")


@pytest.fixture(scope="session")
def smollm2():
    from reasonembed_rag import ReasonEmbedEncoder

    return ReasonEmbedEncoder.from_pretrained("smollm2-135m")


# --- Store and framework integrations (issue 3) --------------------------------------------------------------------

INSTRUCTED_FORMAT = "Instruct: {instruction}\nQuery: {query}"


@pytest.fixture(scope="session")
def shared_minilm(minilm):
    """MiniLM, also made the encoder that adapters built from the name 'minilm-l6' use (no second copy)."""
    from reasonembed_rag.integrations._shared import share_encoder

    share_encoder(minilm)
    return minilm


@pytest.fixture(scope="session")
def minilm_instructed():
    """MiniLM with a ReasonEmbed-style query format, so that instructions change query vectors."""
    from reasonembed_rag import ReasonEmbedEncoder

    encoder = ReasonEmbedEncoder.from_pretrained("minilm-l6", query_format=INSTRUCTED_FORMAT)
    encoder.name = "minilm-l6-instructed"
    return encoder


@pytest.fixture(scope="session")
def champ():
    """A real retrieval corpus: CHAMP's 89 concepts and 456 hints (545 documents) and 24 of its problems as queries."""
    import champ_dataset

    from .integration_helpers import Corpus

    data = champ_dataset.load("v0")
    items = list(data.concepts.items()) + list(data.hints.items())
    problems = [problem for problem in data.problems.values() if problem.ch_list]
    return Corpus(
        ids=[identifier for identifier, _ in items],
        texts=[item.text for _, item in items],
        queries=[problem.text for problem in problems[::11]][:24],
    )


@pytest.fixture(scope="session")
def champ_exact(shared_minilm, champ):
    """Exact cosine search over the CHAMP corpus with the encoder alone (no Chroma): the reference ranking."""
    from .integration_helpers import ExactSearch

    documents = shared_minilm.encode_documents(champ.texts, show_progress=False)
    queries = shared_minilm.encode_queries(champ.queries, show_progress=False)
    return ExactSearch(champ.ids, documents, queries)


@pytest.fixture(scope="session")
def champ_index(tmp_path_factory, shared_minilm, champ, champ_exact):
    """The CHAMP corpus indexed once, through the store, into a persisted collection 'champ'.

    The store embeds through MiniLM with the document vectors of ``champ_exact`` already known, so the corpus is
    embedded once per session.
    """
    from reasonembed_rag.store import ChromaStore

    from .integration_helpers import IndexedCorpus
    from .stub_encoders import PrecomputedEncoder

    path = tmp_path_factory.mktemp("chroma-champ")
    encoder = PrecomputedEncoder(shared_minilm, champ.texts, champ_exact.documents)
    store = ChromaStore("champ", encoder, chroma=path)
    documents = ({"id": i, "content": t} for i, t in zip(champ.ids, champ.texts, strict=True))
    report = store.add_documents(documents, show_progress=False)
    return IndexedCorpus(store=store, path=path, report=report)


@pytest.fixture(scope="session")
def local_server():
    """The REAL offline LLM for every test that needs one: a ``transformers serve`` of SmolLM2-135M-Instruct on
    127.0.0.1 (one thread), started once per test session and stopped at its end."""
    pytest.importorskip("fastapi")
    from reasonembed_rag.llm import LocalLLMServer

    server = LocalLLMServer(threads=1)
    with server:
        yield server
    assert not server.running


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """A tiny random Qwen3 decoder folder (a real model built from a config; loads in about a second), for adapters
    built from a model name. Its query format takes instructions, so tasks change query vectors."""
    from .tiny_models import build_tiny_decoder

    return str(build_tiny_decoder(tmp_path_factory.mktemp("tiny-adapter-model"), "qwen3"))
