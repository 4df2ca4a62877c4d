"""Encoder loading options and their command-line flags: --devices, --batch-tokens, --query-max-length,
--doc-max-length and --quantize, identical on ``bright``, ``index`` and ``embed``."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from reasonembed_rag import ReasonEmbedEncoder
from reasonembed_rag.cli import build_parser, main
from reasonembed_rag.cli.common import load_encoder
from reasonembed_rag.encoder import require_bitsandbytes
from reasonembed_rag.evaluation.data import RetrievalTask
from reasonembed_rag.evaluation.runner import collection_name
from reasonembed_rag.models import ModelNotAvailableError

TEXTS = [
    "Let G be a finite group of prime order p. Show that G is cyclic.",
    "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen.",
    "The derivative of x^2 is 2x; the integral of 2x is x^2 plus a constant.",
    "How many ways can 5 people sit around a round table?",
]
LONG = "Vieta's formulas relate the coefficients of a polynomial to sums and products of its roots " * 8
FLAGS = [
    "--model", "minilm-l6", "--devices", "cpu,cpu", "--batch-tokens", "512",
    "--query-max-length", "6", "--doc-max-length", "9", "--quantize", "int8",
]  # fmt: skip


@pytest.mark.parametrize(
    "command", [["bright"], ["index", "docs.jsonl", "--collection", "c"], ["embed", "some text"]], ids=lambda c: c[0]
)
def test_the_model_flags_exist_on_every_embedding_command_and_reach_the_encoder(command):
    args = build_parser().parse_args([*command, *FLAGS])
    encoder = load_encoder(args)
    assert [str(d) for d in encoder.devices] == ["cpu", "cpu"] and encoder.batch_tokens == 512
    assert (encoder.query_max_length, encoder.document_max_length, encoder.quantize) == (6, 9, "int8")
    assert "DynamicQuantizedLinear" in repr(encoder.model)


def test_separate_query_and_document_lengths_truncate(minilm):
    short = ReasonEmbedEncoder.from_pretrained("minilm-l6", query_max_length=8, document_max_length=12)
    np.testing.assert_allclose(short.encode_documents([LONG]), minilm.encode([LONG], max_length=12), atol=1e-6)
    np.testing.assert_allclose(short.encode_queries([LONG]), minilm.encode([LONG], max_length=8), atol=1e-6)
    assert float((short.encode_documents([LONG]) @ minilm.encode_documents([LONG]).T)[0, 0]) < 0.99
    with pytest.raises(ValueError, match="document_max_length must be at least 4"):
        ReasonEmbedEncoder.from_pretrained("minilm-l6", document_max_length=2)


def test_embed_cli_doc_max_length_truncates(tmp_path, minilm):
    out = tmp_path / "v.npy"
    assert main(["embed", LONG, "--doc-max-length", "12", "--output", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), minilm.encode([LONG], max_length=12), atol=1e-6)


def test_int8_vectors_stay_close_to_float(minilm):
    int8 = ReasonEmbedEncoder.from_pretrained("minilm-l6", device="cpu", quantize="int8")
    cosines = np.sum(int8.encode_documents(TEXTS) * minilm.encode_documents(TEXTS), axis=1)
    assert cosines.min() > 0.95, cosines
    assert not np.allclose(cosines, 1.0, atol=1e-4)  # the weights really were quantised
    # every linear layer is int8 except each feed-forward block's output projection (its inputs hold the outliers)
    modules = int8.model.named_modules()
    kinds = {name: type(module).__module__ for name, module in modules if "Linear" in type(module).__name__}
    float_layers = sorted(name for name, kind in kinds.items() if kind.startswith("torch.nn.modules"))
    assert float_layers == [f"encoder.layer.{i}.output.dense" for i in range(6)], float_layers
    assert sum(kind.startswith("torch.ao") for kind in kinds.values()) == len(kinds) - 6
    # bright's document-vector cache must not hand float vectors to the int8 model (or the reverse)
    task = RetrievalTask(name="t", queries=[], documents={"d": "text"}, instruction=None)
    assert collection_name(task, int8) != collection_name(task, minilm)


def test_bitsandbytes_quantization_refuses_cpu_with_a_clear_message(capsys):
    with pytest.raises(ValueError, match=r"quantize='8bit' uses bitsandbytes' CUDA kernels .* use quantize='int8'"):
        ReasonEmbedEncoder.from_pretrained("minilm-l6", device="cpu", quantize="8bit")
    assert main(["embed", "x", "--device", "cpu", "--quantize", "4bit"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Unknown quantize 'int4'"):
        ReasonEmbedEncoder.from_pretrained("minilm-l6", device="cpu", quantize="int4")
    with pytest.raises(ValueError, match="computes in float32"):
        ReasonEmbedEncoder.from_pretrained("minilm-l6", device="cpu", dtype="bfloat16", quantize="int8")


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_missing_bitsandbytes_names_the_install_command():
    with pytest.raises(ModelNotAvailableError, match="pip install bitsandbytes"):
        require_bitsandbytes()
