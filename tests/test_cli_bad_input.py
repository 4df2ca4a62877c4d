"""The command line given bad input: a clear message and exit status, never a traceback (issue 14, item 3).

Runs ``reasonembed-rag`` in this process through :func:`reasonembed_rag.cli.main` with a real tiny model folder built
from a config (:mod:`tests.tiny_models`), so that every command that loads a model stays fast.
"""

from __future__ import annotations

import json

import chromadb
import numpy as np
import pytest

from reasonembed_rag.cli import main
from reasonembed_rag.evaluation.runner import evaluate

from .tiny_models import build_tiny_decoder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny real model folder: ``--model`` takes it like any other."""
    return str(build_tiny_decoder(tmp_path_factory.mktemp("tiny-model"), hidden_size=16))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.mark.parametrize("keep", ["0", "-5", "ten"])
def test_bright_keep_must_be_positive(keep, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["bright", "--model", "bm25", "--keep", keep])
    assert caught.value.code == 2
    assert "--keep" in capsys.readouterr().err
    with pytest.raises(ValueError, match="keep must be at least 1"):
        evaluate([], "bm25", keep=0)


def test_search_with_a_huge_k_returns_everything(tmp_path, tiny_model, capsys):
    chroma = str(tmp_path / "db")
    rows = [{"id": "a", "content": "prime number"}, {"id": "b", "content": "cell gene"}]
    source = write_jsonl(tmp_path / "docs.jsonl", rows)
    assert main(["index", source, "--collection", "docs", "--chroma", chroma, "--model", tiny_model]) == 0
    capsys.readouterr()
    assert main(["search", "prime", "--collection", "docs", "--chroma", chroma, "-k", "5000000000", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert sorted(hit["id"] for hit in hits) == ["a", "b"]


def test_embed_missing_input_and_missing_output_folder(tmp_path, tiny_model):
    with pytest.raises(SystemExit, match=r"--input .*absent.txt does not exist"):
        main(["embed", "--input", str(tmp_path / "absent.txt"), "--model", tiny_model])
    with pytest.raises(SystemExit, match=r"folder of --output .*no-such-folder.*does not exist"):
        main(["embed", "hello", "--output", str(tmp_path / "no-such-folder" / "out.npy"), "--model", tiny_model])


def test_embed_prints_the_file_it_really_wrote(tmp_path, tiny_model, capsys):
    output = tmp_path / "foo"
    assert main(["embed", "hello", "world", "--output", str(output), "--model", tiny_model]) == 0
    assert f"-> {output}.npy (2 x 16" in capsys.readouterr().out
    assert np.load(f"{output}.npy").shape == (2, 16) and not output.exists()


def test_utf8_errors_name_the_file_and_line(tmp_path, tiny_model):
    bad = tmp_path / "texts.txt"
    bad.write_bytes("first line\nsecond line caf\xe9\n".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"texts.txt:2: not UTF-8 \(byte 0xe9\); save the file as UTF-8"):
        main(["embed", "--input", str(bad), "--model", tiny_model])
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_bytes(b'{"id": "a", "content": "fine"}\n{"id": "b", "content": "caf\xe9"}\n')
    with pytest.raises(SystemExit, match=r"docs.jsonl:2: not UTF-8"):
        main(["index", str(jsonl), "--collection", "docs", "--chroma", str(tmp_path / "db"), "--model", tiny_model])
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "good.txt").write_text("fine")
    (folder / "latin.txt").write_bytes(b"one\ntwo\nna\xefve\n")
    with pytest.raises(SystemExit, match=r"latin.txt:3: not UTF-8"):
        main(["index", str(folder), "--collection", "notes", "--chroma", str(tmp_path / "db"), "--model", tiny_model])


@pytest.mark.parametrize(("value", "shown"), [(1, "1"), (None, "null"), (2.5, "2.5")])
def test_non_string_ids_are_refused_naming_the_line(tmp_path, tiny_model, value, shown):
    source = write_jsonl(tmp_path / "docs.jsonl", [{"id": "1", "content": "one"}, {"id": value, "content": "other"}])
    with pytest.raises(SystemExit, match=rf"docs.jsonl:2: the 'id' field is {shown}, not a non-empty string"):
        main(["index", source, "--collection", "ids", "--chroma", str(tmp_path / "db"), "--model", tiny_model])


def test_failed_index_leaves_no_collection_bound_to_its_model(tmp_path, tiny_model, capsys):
    chroma = str(tmp_path / "db")
    source = write_jsonl(tmp_path / "docs.jsonl", [{"id": "a", "content": "a"}, {"id": 7, "content": "b"}])
    with pytest.raises(SystemExit, match="docs.jsonl:2"):
        main(["index", source, "--collection", "docs", "--chroma", chroma, "--model", tiny_model])
    other = str(build_tiny_decoder(tmp_path / "other-model", hidden_size=8))
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "a", "content": "a"}])
    assert main(["index", good, "--collection", "docs", "--chroma", chroma, "--model", other]) == 0
    assert "Added 1 documents" in capsys.readouterr().out


def test_folder_mode_does_not_follow_links_out_of_the_folder(tmp_path, tiny_model, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("a file outside the folder")
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "note.txt").write_text("inside")
    (folder / "sub" / "also.txt").symlink_to(folder / "note.txt")  # a link inside the folder is fine
    (folder / "leak.txt").symlink_to(secret)
    (folder / "outside").symlink_to(tmp_path, target_is_directory=True)
    chroma = str(tmp_path / "db")
    assert main(["index", str(folder), "--collection", "notes", "--chroma", chroma, "--model", tiny_model]) == 0
    assert f"skipped {folder / 'leak.txt'}: it links outside {folder}" in capsys.readouterr().err
    with chromadb.PersistentClient(path=chroma) as client:
        stored = client.get_collection("notes", embedding_function=None).get(include=["documents"])
    assert sorted(stored["ids"]) == ["note.txt", "sub/also.txt"]
    assert "a file outside the folder" not in stored["documents"]


def test_retrained_model_is_refused_and_reembed_rebuilds(tmp_path, capsys):
    model = build_tiny_decoder(tmp_path / "model", hidden_size=16, seed=0)
    chroma = str(tmp_path / "db")
    source = write_jsonl(tmp_path / "docs.jsonl", [{"id": f"d{i}", "content": f"text {i}"} for i in range(5)])
    index = ["index", source, "--collection", "docs", "--chroma", chroma, "--model", str(model)]
    assert main(index) == 0
    build_tiny_decoder(model, hidden_size=16, seed=1)  # trained again in place
    capsys.readouterr()
    assert main(index) == 2
    error = capsys.readouterr().err
    assert "was built with weights" in error and "has weights" in error and "--reembed" in error
    assert main([*index, "--reembed"]) == 0
    assert "Added 5 documents" in capsys.readouterr().out
    assert main(index) == 0
    assert "Added 0 documents" in capsys.readouterr().out
    build_tiny_decoder(model, hidden_size=16, seed=2)  # trained once more; --reembed alone keeps the recorded model
    assert main(["index", source, "--collection", "docs", "--chroma", chroma, "--reembed"]) == 0
    assert f"Added 5 documents to 'docs' with {model.resolve()}" in capsys.readouterr().out
    other = build_tiny_decoder(tmp_path / "other", hidden_size=8)
    assert main(["index", source, "--collection", "docs", "--chroma", chroma, "--model", str(other), "--reembed"]) == 0
    assert main(["search", "text", "--collection", "docs", "--chroma", chroma]) == 0  # the new model is recorded
