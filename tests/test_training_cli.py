"""``reasonembed-train``: train / export / card end to end on a tiny model, clear errors, the subcommand hook."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from reasonembed_rag import ReasonEmbedEncoder
from reasonembed_rag.training import cli

from .test_training_trainer import TEXTS, write_training_data
from .tiny_models import build_tiny_decoder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return build_tiny_decoder(root / "tiny", "llama"), write_training_data(root / "data")


def _train(model, data, output, *extra: str) -> int:
    return cli.main(
        [
            "train",
            "--data",
            str(data),
            "--model",
            str(model),
            "--output",
            str(output),
            "--batch-size",
            "2",
            "--group-size",
            "3",
            "--max-steps",
            "3",
            "--save-steps",
            "2",
            "--device",
            "cpu",
            "--no-progress",
            *extra,
        ]
    )


def test_train_infonce_then_export_a_checkpoint_then_add_results(tmp_path, setup, capsys):
    model, data = setup
    output = tmp_path / "basic"
    assert _train(model, data, output, "--loss", "infonce", "--lr", "1e-3", "--warmup-ratio", "0") == 0
    assert "Trained 3 steps" in capsys.readouterr().out
    trained = ReasonEmbedEncoder.from_pretrained(str(output), device="cpu")
    assert trained.encode(TEXTS).shape == (len(TEXTS), trained.dimension)
    assert json.loads((output / "training_args.json").read_text())["loss"] == "infonce"

    checkpoint = output / "checkpoints" / "checkpoint-2"
    assert (
        cli.main(["export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "step2"), "--form", "merged"])
        == 0
    )
    step2 = ReasonEmbedEncoder.from_pretrained(str(tmp_path / "step2"), device="cpu")
    assert (tmp_path / "step2" / "model.safetensors").exists()
    assert "2 optimiser steps" in (tmp_path / "step2" / "README.md").read_text()
    assert abs(step2.encode(TEXTS) - trained.encode(TEXTS)).max() > 1e-6  # step 2 is not step 3

    results = tmp_path / "results.json"
    row = {
        "model": "basic",
        "via": "direct",
        "tasks": {"champ_concepts": {"ndcg@10": 0.3456, "queries": 5}},
        "mean": {"ndcg@10": 0.3456},
    }
    results.write_text(json.dumps(row))
    baseline = tmp_path / "bm25.json"
    baseline.write_text(
        json.dumps({**row, "model": "bm25", "tasks": {"champ_concepts": {"ndcg@10": 0.22}}, "mean": {"ndcg@10": 0.22}})
    )
    assert cli.main(["card", str(output), "--results", str(results), str(baseline)]) == 0
    card = (output / "README.md").read_text()
    assert "| model | champ_concepts | mean |" in card
    assert "| basic | 34.6 | 34.6 |" in card and "| bm25 | 22.0 | 22.0 |" in card
    assert len(json.loads((output / "results.json").read_text())) == 2
    note = "The champ_concepts_ood column is not out of domain for `basic`: it trained on those queries."
    assert cli.main(["card", str(output), "--results", str(baseline), "--note", note]) == 0
    card = (output / "README.md").read_text()
    assert note in card and card.index("| bm25 | 22.0 | 22.0 |") < card.index(note) < card.index("## Training data")
    assert cli.main(["card", str(output), "--results", str(baseline)]) == 0  # the note stays until replaced
    assert note in (output / "README.md").read_text()


def test_wise_ft_scales_the_adapter_delta_exactly(tmp_path, setup, capsys):
    model, data = setup
    output = tmp_path / "lora"
    assert _train(model, data, output, "--lora", "--lr", "5e-2", "--warmup-ratio", "0") == 0
    base = ReasonEmbedEncoder.from_pretrained(str(model), device="cpu").model.state_dict()
    trained = ReasonEmbedEncoder.from_pretrained(str(output), device="cpu").model.state_dict()
    assert cli.main(["wise-ft", str(output), "--alpha", "0.25"]) == 0
    scaled = ReasonEmbedEncoder.from_pretrained(str(output), device="cpu").model.state_dict()
    moved = [name for name in base if not torch.equal(base[name], trained[name])]
    assert moved, "the run must change the weights for the test to mean anything"
    for name in moved:
        torch.testing.assert_close(scaled[name], base[name] + 0.25 * (trained[name] - base[name]))
    assert json.loads((output / "training_info.json").read_text())["wise_ft_alpha"] == 0.25
    assert "WiSE-FT: the adapter's weight delta scaled by 0.25" in (output / "README.md").read_text()
    assert cli.main(["wise-ft", str(output), "--alpha", "1.5"]) == 1
    assert "alpha must be in [0, 1]" in capsys.readouterr().err


def test_soup_averages_seeds_exactly_as_one_adapter(tmp_path, setup, capsys):
    model, data = setup
    runs = [tmp_path / f"seed{seed}" for seed in (1, 2, 3)]
    for seed, run in zip((1, 2, 3), runs, strict=True):
        assert _train(model, data, run, "--lora", "--lr", "5e-2", "--warmup-ratio", "0", "--seed", str(seed)) == 0
    base = ReasonEmbedEncoder.from_pretrained(str(model), device="cpu").model.state_dict()
    trained = [ReasonEmbedEncoder.from_pretrained(str(run), device="cpu").model.state_dict() for run in runs]
    soup = tmp_path / "soup"
    assert cli.main(["soup", *map(str, runs), "--output", str(soup), "--alpha", "0.5"]) == 0
    assert "Wrote the soup of 3 runs" in capsys.readouterr().out
    souped = ReasonEmbedEncoder.from_pretrained(str(soup), device="cpu")
    moved = [name for name in base if not torch.equal(base[name], trained[0][name])]
    assert moved and any(not torch.equal(trained[0][n], trained[1][n]) for n in moved), "seeds must differ"
    for name in moved:
        mean = sum(state[name] for state in trained) / 3
        torch.testing.assert_close(souped.model.state_dict()[name], base[name] + 0.5 * (mean - base[name]))
    assert (
        json.loads((soup / "adapter_config.json").read_text())["r"]
        == 3 * json.loads((runs[0] / "adapter_config.json").read_text())["r"]
    )
    info = json.loads((soup / "training_info.json").read_text())
    assert info["soup"]["seeds"] == [1, 2, 3] and info["wise_ft_alpha"] == 0.5
    assert (
        "Model soup: the uniform mean of the weights of 3 runs of this recipe (seeds 1, 2, 3)"
        in (soup / "README.md").read_text()
    )
    assert souped.encode(TEXTS).shape == (len(TEXTS), souped.dimension)

    assert cli.main(["soup", str(runs[0]), "--output", str(tmp_path / "one")]) == 1
    assert "at least two adapter folders" in capsys.readouterr().err
    assert cli.main(["soup", str(runs[0]), str(model), "--output", str(tmp_path / "bad")]) == 1
    assert f"{model} is not a LoRA adapter model folder" in capsys.readouterr().err
    assert cli.main(["soup", str(runs[0]), str(runs[1]), "--output", str(runs[0])]) == 1
    assert "not over one of its runs" in capsys.readouterr().err


def test_malformed_data_is_a_one_line_error_naming_file_line_and_field(tmp_path, setup, capsys):
    model, _ = setup
    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"prompt": "p", "query": "q", "reasoning_query": "r", "pos": ["a"], "neg": ["b"]}\n'
        '{"prompt": "p", "query": "q", "pos": ["a"], "neg": ["b"]}\n'
    )
    assert _train(model, data, tmp_path / "out") == 1
    assert f"{data}:2: field 'reasoning_query' is missing" in capsys.readouterr().err
    assert _train(model, data, tmp_path / "out2", "--skip-malformed", "--group-size", "2") == 0
    info = json.loads((tmp_path / "out2" / "training_info.json").read_text())
    assert info["data"]["skipped"] == 1 and info["data"]["samples"] == 1


def test_unknown_model_is_a_clear_error(tmp_path, setup, capsys):
    _, data = setup
    assert _train(tmp_path / "no-such-model", data, tmp_path / "out") == 1
    assert "No model file or folder" in capsys.readouterr().err


def test_subcommand_modules_register_their_commands(monkeypatch, capsys):
    module = types.ModuleType("fake_remixer_cli")

    def register(subparsers):
        parser = subparsers.add_parser("synthesize", help="fake")
        parser.add_argument("--corpus")
        parser.set_defaults(handler=lambda namespace: print(f"synthesizing {namespace.corpus}"))

    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_remixer_cli", module)
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("fake_remixer_cli", "missing_module_for_test.cli"))
    assert cli.main(["synthesize", "--corpus", "docs.jsonl"]) == 0
    assert "synthesizing docs.jsonl" in capsys.readouterr().out
    parser, commands, failures = cli.build_parser()
    assert commands == ["card", "export", "soup", "synthesize", "train", "wise-ft"] and failures == []


def test_help_lists_the_paper_recipe_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--lora-rank",
        "--lora-alpha",
        "--lora-targets",
        "--full",
        "--lr",
        "--warmup-ratio",
        "--epochs",
        "--max-steps",
        "--grad-accum",
        "--query-max-length",
        "--passage-max-length",
        "--temperature",
        "--redapter-warmup-steps",
        "--mask-false-negatives",
        "--pooling",
        "--gradient-checkpointing",
        "--bf16",
        "--seed",
        "--save-steps",
        "--resume",
    ):
        assert option in text


def test_a_subcommand_module_with_a_missing_dependency_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_sub_cli.py").write_text("import not_installed_dependency_for_test\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("broken_sub_cli",))
    _, commands, failures = cli.build_parser()
    assert commands == ["card", "export", "soup", "train", "wise-ft"]
    assert len(failures) == 1 and "not_installed_dependency_for_test" in failures[0]
    with pytest.raises(SystemExit):
        cli.main(["synthesize"])
    assert "could not be loaded: broken_sub_cli" in capsys.readouterr().err
