"""The one JSONL reader (reasonembed_rag.jsonl): rows, gzip, and errors that name file:line and the problem."""

from __future__ import annotations

import gzip
import re

import pytest

from reasonembed_rag.jsonl import JSONLError, read_jsonl


def _write(path, lines: list[bytes]):
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_rows_with_their_line_numbers_blank_lines_skipped(tmp_path, name):
    path = _write(tmp_path / name, [b'{"id": "a", "content": "\xc3\xa9t\xc3\xa9"}', b"", b"  ", b'{"id": "b"}'])
    assert list(read_jsonl(path)) == [(1, {"id": "a", "content": "été"}), (4, {"id": "b"})]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"id": "a", "content": ', r"not valid JSON \(Expecting value at column 24\)"),
        (b'["a", "b"]', "expected a JSON object, got list"),
        (b'"just a string"', "expected a JSON object, got str"),
        (b'{"id": "caf\xe9"}', r"not UTF-8 \(byte 0xe9 at byte 12 of the line\)"),
        (b'{"id": "a"}', r"missing field 'content' \(the row has 'id'\)"),
    ],
)
def test_errors_name_file_line_and_the_problem(tmp_path, line, problem):
    path = _write(tmp_path / "docs.jsonl", [b'{"id": "x", "content": "fine"}', b"", line, b'{"id": "z"}'])
    with pytest.raises(JSONLError, match=rf"^{re.escape(str(path))}:3: {problem}") as raised:
        list(read_jsonl(path, fields=("id", "content")))
    assert isinstance(raised.value, ValueError)


def test_a_caller_chooses_the_exception_or_skips_bad_lines(tmp_path):
    class TaskError(ValueError):
        pass

    path = _write(tmp_path / "t.jsonl.gz", [b'{"key": 1}', b"{oops", b"[1]", b'{"key": 2}', b'{"other": 3}'])
    with pytest.raises(TaskError, match=r"t.jsonl.gz:2: not valid JSON"):
        list(read_jsonl(path, error=TaskError))
    skipped: list[str] = []
    rows = list(read_jsonl(path, fields=("key",), skip=lambda error: skipped.append(str(error))))
    assert rows == [(1, {"key": 1}), (4, {"key": 2})]
    assert [message.split(": ", 1)[0] for message in skipped] == [f"{path}:2", f"{path}:3", f"{path}:5"]
