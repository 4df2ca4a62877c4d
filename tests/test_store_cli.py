"""``reasonembed-rag index`` and ``search`` end to end, with MiniLM shared from the test session."""

from __future__ import annotations

import argparse
import gzip
import json

import pytest

from reasonembed_rag.cli import store as store_cli

pytestmark = pytest.mark.slow


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="reasonembed-rag")
    store_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(autouse=True)
def _session_model(monkeypatch, shared_minilm):
    def load_encoder(args):
        assert args.model == "minilm-l6", args.model
        return shared_minilm

    monkeypatch.setattr(store_cli, "load_encoder", load_encoder)


def test_index_folder_and_jsonl_then_search(tmp_path, capsys):
    (tmp_path / "notes" / "sub").mkdir(parents=True)
    (tmp_path / "notes" / "cells.txt").write_text("Telomeres shorten with every cell division.")
    (tmp_path / "notes" / "sub" / "prices.md").write_text("Inflation is a rise in the general price level.")
    (tmp_path / "notes" / "skip.json").write_text("{}")
    rows = [{"id": "calc", "content": "The derivative of x squared is two x."}, {"id": "primes", "content": "Primes."}]
    with gzip.open(tmp_path / "more.jsonl.gz", "wt") as handle:
        handle.write("\n".join(json.dumps(row) for row in rows) + "\n\n")
    chroma = str(tmp_path / "db")

    assert run("index", str(tmp_path / "notes"), "--collection", "notes", "--chroma", chroma, "--no-progress") == 0
    assert "Added 2 documents" in capsys.readouterr().out
    assert run("index", str(tmp_path / "more.jsonl.gz"), "--collection", "notes", "--chroma", chroma) == 0
    assert "Added 2 documents" in capsys.readouterr().out
    assert run("index", str(tmp_path / "notes"), "--collection", "notes", "--chroma", chroma) == 0
    out = capsys.readouterr().out
    assert "Added 0 documents" in out and "2 already there" in out

    assert run("search", "derivative of a polynomial", "--collection", "notes", "--chroma", chroma, "-k", "2") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[2] == "calc"  # "  rank  score  id  snippet"
    assert run("search", "cell ageing", "price level", "--collection", "notes", "--chroma", chroma, "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert [result["hits"][0]["id"] for result in results] == ["cells.txt", "sub/prices.md"]
    assert results[0]["hits"][0]["content"] == "Telomeres shorten with every cell division."
    assert len(results[0]["hits"]) == 4


def test_wrong_model_and_missing_collection_are_refused_before_loading(tmp_path):
    chroma = str(tmp_path / "db")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"id": "a", "content": "a"}) + "\n")
    run("index", str(tmp_path / "docs.jsonl"), "--collection", "docs", "--chroma", chroma)
    with pytest.raises(ValueError, match="built with model 'minilm-l6', not 'smollm2-135m'"):
        run("search", "q", "--collection", "docs", "--chroma", chroma, "--model", "smollm2-135m")
    with pytest.raises(SystemExit, match="'absent' not found"):
        run("search", "q", "--collection", "absent", "--chroma", chroma)


def test_bad_jsonl_names_the_line_and_the_fix(tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "a", "text": "no content field"}) + "\n")
    with pytest.raises(
        SystemExit, match=r"bad.jsonl:1: needs an 'id' field and a string 'content' field.*--content-field"
    ):
        run("index", str(tmp_path / "bad.jsonl"), "--collection", "bad", "--chroma", str(tmp_path / "db"))
    assert (
        run(
            "index",
            str(tmp_path / "bad.jsonl"),
            "--collection",
            "bad",
            "--chroma",
            str(tmp_path / "db"),
            "--content-field",
            "text",
        )
        == 0
    )
