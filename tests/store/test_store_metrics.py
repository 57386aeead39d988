"""The metrics-file reader (store/metrics.py) on files written by hand, as a crash leaves them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from replicator.store.metrics import decode_value, encode_value, iter_jsonl, read_metrics


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_nonfinite_values_are_strings_in_the_file_and_floats_when_read(tmp_path: Path) -> None:
    encoded = [encode_value(v) for v in (math.nan, math.inf, -math.inf, 0.5, True, 3)]
    assert encoded[:3] == ["NaN", "Infinity", "-Infinity"] and encoded[3:] == [0.5, 1, 3]
    path = _write(
        tmp_path / "m.jsonl",
        *(json.dumps({"step": i, "key": "x", "value": v}) for i, v in enumerate(encoded)),
    )
    values = [m["value"] for m in read_metrics(path)]
    assert math.isnan(values[0]) and values[1:3] == [math.inf, -math.inf]
    assert values[3:] == [0.5, 1, 3]
    assert decode_value("fast") == "fast"  # only the three non-finite spellings are decoded


def test_torn_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.jsonl",
        '{"step": 0, "key": "loss", "value": 1.0}',
        "[1, 2]",
        '{"note": "no key"}',
        '{"step": 1, "key": "loss", "val',
    )
    with pytest.warns(RuntimeWarning, match="skipped damaged line 4"):
        assert [(m["step"], m["value"]) for m in read_metrics(path)] == [(0, 1.0)]
    with pytest.warns(RuntimeWarning, match="skipped damaged line 4"):
        assert len(list(iter_jsonl(path))) == 2  # the two JSON objects; torn line, list skipped
    assert read_metrics(tmp_path / "absent.jsonl") == []


def test_a_resume_marker_supersedes_later_steps_written_before_it(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.jsonl",
        *(json.dumps({"step": s, "key": "loss", "value": float(s)}) for s in range(4)),
        json.dumps({"event": "resume", "step": 1}),
        json.dumps({"step": 2, "key": "loss", "value": 20.0}),
    )
    assert [(m["step"], m["value"]) for m in read_metrics(path)] == [(0, 0.0), (1, 1.0), (2, 20.0)]
    everything = read_metrics(path, include_superseded=True)
    assert [m["step"] for m in everything if m.get("superseded")] == [2, 3]
    assert "superseded" not in path.read_text()  # worked out when reading, never written
