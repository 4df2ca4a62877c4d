"""The shipped `reasonembed-smollm2-135m`: loads offline from package data as a small mean-pooled adapter over its
backbone, trained only on the out-of-domain split's training rows (fast); on the out-of-domain validation it beats
its raw backbone (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reasonembed_rag import REGISTRY, ReasonEmbedEncoder
from reasonembed_rag.models import project_model_path

TEXTS = ["How many strings of length 6 over {1, 2, 3} have adjacent digits differing by at most 1?", "AM-GM: ..."]
FOLDER = project_model_path(REGISTRY["reasonembed-smollm2-135m"])


@pytest.fixture(scope="module")
def shipped():
    return ReasonEmbedEncoder.from_pretrained("reasonembed-smollm2-135m", device="cpu")


def test_a_small_mean_pooled_adapter_trained_without_the_validation_problems():
    config = json.loads((FOLDER / "reasonembed_config.json").read_text())
    assert config["base_model"] == "smollm2-135m" and config["pooling"] == "mean"
    assert all(path.stat().st_size < 25 * 2**20 for path in FOLDER.rglob("*") if path.is_file())
    info = json.loads((FOLDER / "training_info.json").read_text())
    # champ-data holds out the validation problems and their gold concepts (tests/test_remixer.py checks it)
    assert info["arguments"]["data"] == "data/champ-ood/mix", info["arguments"]["data"]


def test_alias_loads_offline_and_changes_its_backbone(shipped):
    backbone = ReasonEmbedEncoder.from_pretrained("smollm2-135m", pooling="mean", device="cpu")
    vectors = shipped.encode_queries(TEXTS, task="aops")
    assert vectors.shape == (2, 576) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * backbone.encode_queries(TEXTS, task="aops")).sum(axis=1)
    assert (cosines < 0.9999).all(), "the adapter must change the backbone's vectors"


@pytest.mark.slow
def test_beats_its_raw_backbone_out_of_domain(shipped, smollm2, tmp_path):
    from reasonembed_rag.evaluation.data import load_folder_task
    from reasonembed_rag.evaluation.offline import CHAMP_OOD_TASK, build_offline_tasks
    from reasonembed_rag.evaluation.runner import evaluate

    task = load_folder_task(build_offline_tasks(tmp_path / "data"), CHAMP_OOD_TASK)
    ours, base = (
        evaluate([task], encoder, chroma=str(tmp_path / f"chroma-{i}"))[0].metrics["ndcg@10"]
        for i, encoder in enumerate((shipped, smollm2))
    )
    assert ours > base
