"""ReasonEmbedEncoder on real models: tiny random Qwen3/Llama decoders, packaged MiniLM and SmolLM2."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from reasonembed_rag import ModelNotAvailableError, ReasonEmbedEncoder
from reasonembed_rag.instructions import BRIGHT_INSTRUCTIONS
from reasonembed_rag.models import ModelSpec, package_path

from .tiny_models import WORDS, build_tiny_decoder

rng = np.random.default_rng(0)
MIXED = [
    "",
    "   ",
    "the prime number theorem",
    "def f(x):\n    return x\n",
    *(" ".join(rng.choice(WORDS, size=int(n))) for n in rng.integers(1, 300, size=12)),
]


@pytest.fixture(scope="module", params=["qwen3", "llama"])
def tiny(request, tmp_path_factory):
    folder = build_tiny_decoder(tmp_path_factory.mktemp(request.param), request.param)
    return ReasonEmbedEncoder.from_pretrained(str(folder))


def _one_by_one(encoder: ReasonEmbedEncoder, texts: list[str]) -> np.ndarray:
    return np.stack([encoder.encode([text])[0] for text in texts])


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@pytest.mark.parametrize("batch_tokens", [64, 700, 100_000])
def test_batched_equals_one_at_a_time_tiny(tiny, batch_tokens):
    single = _one_by_one(tiny, MIXED)
    tiny.batch_tokens = batch_tokens
    try:
        batched = tiny.encode(MIXED)
    finally:
        tiny.batch_tokens = 16384
    assert batched.dtype == np.float32 and batched.shape == (len(MIXED), tiny.dimension)
    assert _min_cosine(batched, single) >= 0.9999


def test_batch_size_caps_texts_per_forward_pass(tiny):
    sizes: list[int] = []
    hook = tiny.model.register_forward_hook(
        lambda module, args, kwargs, output: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        texts = MIXED[:5]
        default = tiny.encode_documents(texts)
        assert sizes == [5]
        sizes.clear()
        capped = tiny.encode_documents(texts, batch_size=2)
        assert sizes == [2, 2, 1]
        sizes.clear()
        tiny.encode_queries(texts, task="biology", batch_size=4)
        assert sizes == [4, 1]
    finally:
        hook.remove()
    assert _min_cosine(capped, default) >= 0.9999
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            tiny.encode(["x"], batch_size=bad)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["minilm", "smollm2"])
def test_batched_equals_one_at_a_time_packaged(request, fixture):
    encoder = request.getfixturevalue(fixture)
    texts = MIXED[:10]
    assert _min_cosine(encoder.encode(texts), _one_by_one(encoder, texts)) >= 0.9999


def test_output_is_l2_normalised(tiny):
    vectors = tiny.encode(MIXED)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_last_token_pooling_equals_reference(tiny):
    """Plain computation: one unpadded sequence, hidden state of its last position, L2-normalised."""
    text = "the proof of the theorem is a sum"
    ids = tiny.tokenize([text])[0]
    assert ids[-1] == tiny._suffix[-1]
    with torch.inference_mode():
        hidden = tiny._replicas[0](input_ids=torch.tensor([ids], device=tiny.devices[0])).last_hidden_state[0, -1]
    reference = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu().numpy()
    batch = tiny.encode([text, "a much longer text " * 20, ""])[0]
    np.testing.assert_allclose(batch, reference, atol=1e-5)


def test_qwen3_keeps_post_processor_end_token_and_llama_gets_eos(tiny):
    tokenizer = tiny.tokenizer
    ids = tiny.tokenize(["the gene"])[0]
    if tokenizer.bos_token == "<s>":  # Llama-style: bos prefix kept, eos appended by us
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    else:  # Qwen3-style: the post-processor's <|endoftext|> is the last token
        assert ids[-1] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
        assert ids.count(ids[-1]) == 1


def test_truncation_keeps_end_token(tiny):
    tiny.config.max_length = 16
    try:
        ids = tiny.tokenize(["the " * 1000])[0]
    finally:
        tiny.config.max_length = 8192
    assert len(ids) == 16
    assert ids[-1] == tiny._suffix[-1]


def test_instruction_only_on_queries(tiny):
    query = "what is the sum of the angle of a triangle"
    instruction = BRIGHT_INSTRUCTIONS["aops"]
    formatted = f"Instruct: {instruction}\nQuery: {query}"
    assert tiny.format_queries([query], task="aops") == [formatted]
    np.testing.assert_allclose(tiny.encode_queries([query], task="aops"), tiny.encode([formatted]), atol=1e-6)
    np.testing.assert_allclose(tiny.encode_queries([query], instruction=instruction), tiny.encode([formatted]))
    np.testing.assert_allclose(tiny.encode_documents([query]), tiny.encode([query]))
    assert not np.allclose(tiny.encode_queries([query], task="aops"), tiny.encode_documents([query]))


def test_newlines_are_kept(tiny):
    query = "line one\nline two"
    assert tiny.format_queries([query], task="leetcode")[0].endswith("Query: line one\nline two")


def test_long_variant_and_hyphenated_task(tiny):
    assert "documents" in tiny.format_queries(["x"], task="biology", long=True)[0]
    assert tiny.format_queries(["x"], task="theoremqa-theorems") == tiny.format_queries(
        ["x"], task="theoremqa_theorems"
    )
    with pytest.raises(ValueError, match="no long-document"):
        tiny.format_queries(["x"], task="aops", long=True)


def test_task_and_instruction_errors(tiny):
    with pytest.raises(ValueError, match="Unknown task 'chemistry'.*biology"):
        tiny.encode_queries(["x"], task="chemistry")
    with pytest.raises(ValueError, match="either task"):
        tiny.encode_queries(["x"], task="aops", instruction="y")


@pytest.mark.slow
def test_minilm_ignores_instruction_and_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    texts = ["A prime number has two divisors.", "def add(a, b):\n    return a + b", ""]
    assert not minilm.uses_instructions
    np.testing.assert_allclose(minilm.encode_queries(texts, task="aops"), minilm.encode_documents(texts))
    folder = package_path(__import__("reasonembed_rag").REGISTRY["minilm-l6"])
    reference = SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True)
    assert _min_cosine(minilm.encode_documents(texts), reference) >= 0.9999


def test_edge_inputs(tiny):
    assert tiny.encode([]).shape == (0, tiny.dimension)
    empty, blank = tiny.encode(["", "   "])
    assert np.isfinite(empty).all() and np.isfinite(blank).all()
    huge = tiny.encode(["the prime " * 50_000])  # 100k characters: truncated, not an error
    assert huge.shape == (1, tiny.dimension) and np.isfinite(huge).all()
    with pytest.raises(TypeError, match=r"queries\[1\] is int"):
        tiny.encode_queries(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single str"):
        tiny.encode_documents("a bare string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"documents\[0\] is NoneType"):
        tiny.encode_documents([None])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "float8"}, "Unknown dtype 'float8'. Accepted values: float32"),
        ({"device": "tpu"}, "Accepted values: 'cpu', 'cuda'"),
        ({"pooling": "max"}, "Unknown pooling 'max'. Accepted values: lasttoken, mean, cls"),
        ({"query_format": "Instruct: {instruction}"}, "must contain '{query}'"),
    ],
)
def test_bad_settings_name_accepted_values(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("'", "'")):
        ReasonEmbedEncoder.from_pretrained(tiny.name, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="no CUDA GPU"):
        ReasonEmbedEncoder.from_pretrained(tiny.name, device="cuda")


def test_out_of_memory_backs_off_and_keeps_order(tiny, monkeypatch):
    expected = tiny.encode(MIXED)
    real = type(tiny)._embed_batch
    sizes = []

    def flaky(self, model, device, batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, model, device, batch)

    monkeypatch.setattr(type(tiny), "_embed_batch", flaky)
    assert _min_cosine(tiny.encode(MIXED), expected) >= 0.999  # bf16 on a GPU depends a little on batch makeup
    assert max(sizes) > 2 and sizes[-1] <= 2


def test_other_runtime_errors_are_not_swallowed(tiny, monkeypatch):
    def broken(self, model, device, batch):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(type(tiny), "_embed_batch", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        tiny.encode(["a"])


def test_several_devices_give_the_same_vectors(tiny):
    """Two replicas (both on CPU here; on a multi-GPU machine, one per GPU) split the batches between them."""
    device = str(tiny.devices[0])
    double = ReasonEmbedEncoder.from_pretrained(tiny.name, devices=[device, device], batch_tokens=64)
    assert len(double._replicas) == 2
    assert _min_cosine(double.encode(MIXED), tiny.encode(MIXED)) >= 0.999


def test_save_and_reload_carries_settings(tiny, tmp_path):
    tiny.config.task_instructions = {"my_task": "Given a note, retrieve related notes."}
    try:
        tiny.save_pretrained(tmp_path / "model")
    finally:
        tiny.config.task_instructions = {}
    loaded = ReasonEmbedEncoder.from_pretrained(str(tmp_path / "model"))
    assert loaded.config.task_instructions == {"my_task": "Given a note, retrieve related notes."}
    assert loaded.format_queries(["q"], task="my_task") == [
        "Instruct: Given a note, retrieve related notes.\nQuery: q"
    ]
    np.testing.assert_allclose(loaded.encode(MIXED), tiny.encode(MIXED), atol=1e-6)


def test_bfloat16_on_cpu_is_close_to_float32(tiny):
    low = ReasonEmbedEncoder.from_pretrained(tiny.name, dtype="bfloat16")
    assert next(low._replicas[0].parameters()).dtype == torch.bfloat16
    assert _min_cosine(low.encode(MIXED), tiny.encode(MIXED)) > 0.98


def test_missing_package_names_the_install_command(monkeypatch):
    spec = ModelSpec(
        alias="ghost",
        source="package",
        location="no_such_package_xyz/model",
        kind="encoder",
        pooling="mean",
        query_format="{query}",
        max_length=128,
        licence="mit",
        description="",
        pip_install="pip install ghost-pkg",
    )
    with pytest.raises(ModelNotAvailableError, match="pip install ghost-pkg"):
        package_path(spec)


def test_missing_folder_and_offline_hub_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="No model file or folder"):
        ReasonEmbedEncoder.from_pretrained(str(tmp_path / "nothing-here"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = (
        "from reasonembed_rag import ReasonEmbedEncoder\n"
        "try:\n    ReasonEmbedEncoder.from_pretrained('reason-embed-qwen3-8b')\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("ModelNotAvailableError") and "HF_HUB_OFFLINE" in out and "hanhainebula" in out


def test_project_model_slot_explains_how_to_get_it(monkeypatch, tmp_path):
    import reasonembed_rag.models as models

    monkeypatch.setattr(models, "trained_models_dir", lambda: tmp_path)
    with pytest.raises(ModelNotAvailableError, match="reasonembed-train"):
        ReasonEmbedEncoder.from_pretrained("reasonembed-smollm2-135m")


def test_importing_the_core_imports_no_framework():
    code = (
        "import sys, reasonembed_rag\n"
        "print([m for m in ('llama_index', 'langchain_core', 'chromadb') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
