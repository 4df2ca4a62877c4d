"""The shipped `reasonembed-minilm-l6`: loads offline from package data, small, embeds like a MiniLM (fast); its
recipe, trained without the out-of-domain validation's problems (`reasonembed-minilm-l6-ood`, which scores it there),
is at least as good as its backbone on that validation (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from reasonembed_rag import REGISTRY, ReasonEmbedEncoder
from reasonembed_rag.models import project_model_path

TEXTS = ["How many strings of length 6 over {1, 2, 3} have adjacent digits differing by at most 1?", "AM-GM: ..."]


@pytest.fixture(scope="module")
def shipped():
    return ReasonEmbedEncoder.from_pretrained("reasonembed-minilm-l6", device="cpu")


@pytest.fixture(scope="module")
def twin():
    return ReasonEmbedEncoder.from_pretrained("reasonembed-minilm-l6-ood", device="cpu")


def test_alias_loads_offline_as_a_small_adapter_and_encodes(shipped, twin, minilm):
    for alias in ("reasonembed-minilm-l6", "reasonembed-minilm-l6-ood"):
        folder = project_model_path(REGISTRY[alias])
        assert (folder / "adapter_model.safetensors").exists()
        assert all(path.stat().st_size < 25 * 2**20 for path in folder.rglob("*") if path.is_file())
    assert not np.allclose(shipped.encode_queries(TEXTS), twin.encode_queries(TEXTS)), "two trainings, two models"
    assert shipped.dimension == 384 and shipped.query_format == "{query}" and not shipped.uses_instructions
    vectors = shipped.encode_queries(TEXTS, task="aops")
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * minilm.encode_queries(TEXTS)).sum(axis=1)
    assert (cosines < 0.99999).all(), "the adapter must change the backbone's vectors"
    assert (cosines > 0.5).all(), "averaged with its backbone, it must stay close to it"


@pytest.mark.slow
def test_not_worse_than_its_backbone_out_of_domain(twin, minilm, tmp_path):
    from reasonembed_rag.evaluation.data import load_folder_task
    from reasonembed_rag.evaluation.offline import CHAMP_OOD_TASK, build_offline_tasks
    from reasonembed_rag.evaluation.runner import evaluate

    task = load_folder_task(build_offline_tasks(tmp_path / "data"), CHAMP_OOD_TASK)
    ours, base = (
        evaluate([task], encoder, chroma=str(tmp_path / f"chroma-{i}"))[0].metrics["ndcg@10"]
        for i, encoder in enumerate((twin, minilm))
    )
    assert ours >= base
