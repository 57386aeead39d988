"""The TensorBoard event-file reader against files written by TensorBoard's own writer, checked
value for value against TensorBoard's own reader (EventAccumulator); damaged files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from replicator.store.tensorboard import find_event_files, read_event_file

tb_writer = pytest.importorskip("tensorboard.summary.writer.event_file_writer")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)
from tensorboard.compat.proto.event_pb2 import Event  # noqa: E402
from tensorboard.compat.proto.summary_pb2 import Summary  # noqa: E402
from tensorboard.compat.proto.tensor_pb2 import TensorProto  # noqa: E402
from tensorboard.plugins.scalar.metadata import create_summary_metadata  # noqa: E402


def _write(folder: Path, events: list[Event]) -> Path:
    """An event file written by TensorBoard's EventFileWriter (what SummaryWriter uses)."""
    writer = tb_writer.EventFileWriter(str(folder))
    for event in events:
        writer.add_event(event)
    writer.close()
    (path,) = folder.glob("events.out.tfevents.*")
    return path


def _simple(step: int, tag: str, value: float, wall_time: float) -> Event:
    # what SummaryWriter.add_scalar writes
    summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
    return Event(wall_time=wall_time, step=step, summary=summary)


def _tensor(step: int, tag: str, value: float, dtype: int, field: str) -> Event:
    # what tf.summary.scalar (TF2) and add_scalar(new_style=True) write
    tensor = TensorProto(dtype=dtype)
    getattr(tensor, field).append(value)
    metadata = create_summary_metadata(display_name=tag, description="")
    summary = Summary(value=[Summary.Value(tag=tag, tensor=tensor, metadata=metadata)])
    return Event(wall_time=1000.0 + step, step=step, summary=summary)


def _accumulated(path: Path) -> list[tuple[int, float, str, float]]:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    out = []
    for tag in acc.Tags()["scalars"]:
        out += [(e.step, e.wall_time, tag, e.value) for e in acc.Scalars(tag)]
    for tag in acc.Tags()["tensors"]:
        for e in acc.Tensors(tag):
            proto = e.tensor_proto
            number = (list(proto.float_val) + list(proto.double_val) + list(proto.int64_val))[0]
            out.append((e.step, e.wall_time, tag, float(number)))
    return sorted(out)


def test_scalars_match_tensorboards_own_reader(tmp_path: Path) -> None:
    events = [_simple(s, "loss/train", 1 / (s + 1), 1000.0 + s / 7) for s in range(300)]
    events += [_simple(s, "lr", 0.1 * 0.9**s, 2000.0 + s) for s in range(0, 300, 3)]
    events += [_simple(2**40, "big step", -0.5, 3000.0)]
    events += [_tensor(s, "acc", s / 10, dtype=1, field="float_val") for s in range(5)]
    events += [_tensor(s, "acc64", s / 3, dtype=2, field="double_val") for s in range(5)]
    events += [_tensor(s, "count", s * 7, dtype=9, field="int64_val") for s in range(5)]
    path = _write(tmp_path, events)

    read = read_event_file(path)

    assert read.problem is None
    assert sorted(read.scalars) == _accumulated(path)
    assert read.tags[:2] == ["loss/train", "lr"]


def test_text_and_histograms_are_not_taken_for_scalars(tmp_path: Path) -> None:
    text = TensorProto(dtype=7, string_val=[b"hello"])
    histogram = TensorProto(dtype=2, double_val=[0.0, 1.0, 3.0, 1.0, 2.0, 5.0])
    histogram.tensor_shape.dim.add(size=2)
    histogram.tensor_shape.dim.add(size=3)
    plugin = Summary.Value(tag="note", tensor=text)
    plugin.metadata.plugin_data.plugin_name = "text"
    histo = Summary.Value(tag="weights", tensor=histogram)
    histo.metadata.plugin_data.plugin_name = "histograms"
    events = [
        Event(step=1, wall_time=1.0, summary=Summary(value=[plugin, histo])),
        _simple(1, "loss", 0.25, 1.0),
    ]
    read = read_event_file(_write(tmp_path, events))
    assert [(s, tag, v) for s, _, tag, v in read.scalars] == [(1, "loss", 0.25)]
    assert read.skipped_tags == {"note", "weights"}


@pytest.mark.parametrize("cut", [5, 13, -3])
def test_a_truncated_file_is_read_up_to_the_damage(tmp_path: Path, cut: int) -> None:
    events = [_simple(s, "loss", float(s), 100.0 + s) for s in range(50)]
    whole = _write(tmp_path / "whole", events)
    full = read_event_file(whole).scalars
    data = whole.read_bytes()
    # a writer killed in the middle of the last record: its header, its data, its checksum
    sizes = _record_sizes(data)
    end = sum(sizes[:-1]) + (cut if cut > 0 else sizes[-1] + cut)
    damaged = tmp_path / "cut" / whole.name
    damaged.parent.mkdir()
    damaged.write_bytes(data[:end])

    read = read_event_file(damaged)

    assert read.scalars == full[:-1]
    assert read.problem is not None
    assert f"record {len(sizes)} at byte {sum(sizes[:-1])}" in read.problem
    assert "the file ends inside" in read.problem


def test_a_corrupt_record_stops_the_reading_there(tmp_path: Path) -> None:
    path = _write(tmp_path, [_simple(s, "loss", float(s), 100.0 + s) for s in range(20)])
    data = bytearray(path.read_bytes())
    sizes = _record_sizes(bytes(data))
    at = sum(sizes[:11]) + 12 + 3  # inside the data of record 12 (the 11th scalar)
    data[at] ^= 0x40
    path.write_bytes(bytes(data))

    read = read_event_file(path)

    assert [s for s, _, _, _ in read.scalars] == list(range(10))
    assert read.problem == (
        f"record 12 at byte {sum(sizes[:11])} has a wrong checksum (the file is corrupt from "
        "there on)"
    )


def test_an_unknown_file_version_is_read_and_said(tmp_path: Path) -> None:
    from tensorboard.summary.writer.record_writer import RecordWriter

    path = tmp_path / "events.out.tfevents.1.host"
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        writer.write(Event(wall_time=1.0, file_version="brain.Event:9").SerializeToString())
        writer.write(_simple(3, "loss", 0.5, 2.0).SerializeToString())
        writer.flush()

    read = read_event_file(path)

    assert [(s, t, v) for s, _, t, v in read.scalars] == [(3, "loss", 0.5)]
    assert read.problem is None
    assert read.notes and "brain.Event:9" in read.notes[0]


def test_non_finite_values_survive(tmp_path: Path) -> None:
    values = [math.inf, -math.inf, math.nan, -0.0]
    path = _write(tmp_path, [_simple(i, "x", v, 1.0) for i, v in enumerate(values)])
    got = [v for _, _, _, v in read_event_file(path).scalars]
    assert got[:2] == [math.inf, -math.inf] and math.isnan(got[2])
    assert math.copysign(1, got[3]) == -1


def test_event_files_are_found_by_time_and_outside_hidden_folders(tmp_path: Path) -> None:
    import os

    old = _write(tmp_path / "runs" / "old", [_simple(0, "a", 1.0, 1.0)])
    os.utime(old, (1000, 1000))
    new = _write(tmp_path / "runs" / "new", [_simple(0, "a", 1.0, 1.0)])
    _write(tmp_path / ".venv" / "x", [_simple(0, "a", 1.0, 1.0)])
    _write(tmp_path / "store", [_simple(0, "a", 1.0, 1.0)])
    assert find_event_files(tmp_path, since=2000, skip=[tmp_path / "store"]) == [new]


def _record_sizes(data: bytes) -> list[int]:
    sizes, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 8], "little")
        sizes.append(length + 16)
        pos += length + 16
    return sizes
