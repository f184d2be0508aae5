"""The two message helpers every one-line error uses: an exception's first line, a value's short repr."""

from __future__ import annotations

import pytest

from finetune_cli.errors import error_text, first_line, short_repr
from finetune_cli.runs import read as results


def test_an_exception_with_an_empty_message_is_named_by_its_class():
    assert first_line(ValueError()) == "ValueError"
    assert first_line(OSError("")) == "OSError"
    assert first_line(RuntimeError("\nsecond line only")) == "RuntimeError"
    assert error_text(KeyError()) == "KeyError"
    assert error_text(ValueError("bad\nmore")) == "ValueError: bad"


def test_first_line_is_cut_to_its_limit():
    assert first_line(ValueError("x" * 200), 80) == "x" * 77 + "..."
    assert first_line(ValueError("x" * 200)) == "x" * 200


def test_short_repr_is_one_bounded_line():
    assert short_repr("abc") == "'abc'"
    assert len(short_repr("y" * 1000)) <= 40
    assert short_repr(10**5000).startswith("<an integer of")
    assert "\n" not in short_repr({"a": ["b\n"] * 50})


def test_an_empty_message_inside_an_error_handler_is_still_one_line(tmp_path, monkeypatch):
    (tmp_path / "summary.json").write_text('{"status": "completed"}')  # the status is read first
    (tmp_path / "config.yaml").write_text("seed: 0\n")

    def fails_without_a_message(text):
        raise ValueError()

    monkeypatch.setattr(results, "safe_load", fails_without_a_message)
    with pytest.raises(ValueError, match=r"^config.yaml: unreadable record: ValueError$"):
        results.read_run(tmp_path)
