"""Crafted checkpoint files whose manifest was rewritten to match (issue 12, item 7).

The attacker (or a bug elsewhere) replaces the latest checkpoint with a file whose header or
metadata is wrong in a chosen way, and writes its hash and size into the manifest, so the hash
check passes. Each such file must be refused with a CheckpointError naming the file and what is
wrong, ``load("latest")`` falls back to the previous checkpoint with a warning, and
``replicator checkpoint verify`` / ``ls`` report it damaged; no parser exception escapes and
nothing in the file is executed.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from replicator.checkpoints import (
    CheckpointFallbackWarning,
    CheckpointManager,
    describe_checkpoints,
    read_checkpoint,
    read_checkpoint_file,
)
from replicator.checkpoints.file import MAGIC, hash_checkpoint
from replicator.checkpoints.read import check_checkpoint_file
from replicator.cli.main import cli
from replicator.errors import CheckpointError, CheckpointHashError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _pack(header: Any, data: bytes = b"", *, raw: bytes | None = None) -> bytes:
    """A safetensors file: 8-byte length, the header (JSON of ``header`` or ``raw``), data."""
    text = raw if raw is not None else json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(text)) + text + data


def _split(blob: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(header without metadata, metadata tree, tensor data) of a real checkpoint file."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = json.loads(header.pop("__metadata__")["replicator"])
    return header, meta, blob[8 + n :]


def _join(header: dict[str, Any], meta: Any, data: bytes, *, raw_meta: Any = None) -> bytes:
    replicator = json.dumps(meta) if raw_meta is None else raw_meta
    return _pack({"__metadata__": {"format": MAGIC, "replicator": replicator}, **header}, data)


def _edit(change: Callable[[dict[str, Any], dict[str, Any]], Any]) -> Callable[[bytes], bytes]:
    """Rewrite a real file: ``change(header, meta)`` edits both in place, or returns the raw
    value to store as the metadata instead."""

    def craft(blob: bytes) -> bytes:
        header, meta, data = _split(blob)
        out = change(header, meta)
        return _join(header, meta, data, raw_meta=out)

    return craft


W = "state.w"  # the tensor holding the state's array "w" (float64, 4 values, 32 bytes)


def _grow_last(header: dict[str, Any]) -> None:
    """The tensor stored last claims 1000 more items than the file holds."""
    last = max(header.values(), key=lambda e: e["data_offsets"][1])
    count = int(np.prod(last["shape"])) + 1000
    itemsize = {"F64": 8, "F32": 4, "I64": 8, "U8": 1}[last["dtype"]]
    last.update(
        shape=[count],
        data_offsets=[last["data_offsets"][0], last["data_offsets"][0] + count * itemsize],
    )


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    target[key] = value


def _deep_header(blob: bytes) -> bytes:
    return _pack(None, raw=b"[" * 200_000 + b"]" * 200_000)


def _deep_metadata(blob: bytes) -> bytes:
    header, _, data = _split(blob)
    raw = json.dumps({"format": MAGIC, "state": 0}).replace("0", "[" * 200_000 + "]" * 200_000)
    return _join(header, None, data, raw_meta=raw)


def _meta(tree: Any) -> str:
    return json.dumps(tree)


# (id, how the file is crafted from the real one, what the error must say)
CASES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("header nested 200000 deep", _deep_header, r"header nests too deeply"),
    ("metadata nested 200000 deep", _deep_metadata, r"metadata nests more than 100 levels"),
    (
        "metadata nested 150 deep",
        _edit(lambda h, m: _set(m, "state", _nest(150))),
        r"metadata nests more than 100 levels",
    ),
    ("header is a list", lambda b: _pack([1, 2]), r"header is a JSON list, not an object"),
    ("header not UTF-8", lambda b: _pack(None, raw=b'{"\xff\xfe": 1}'), r"header is not UTF-8"),
    ("header not JSON", lambda b: _pack(None, raw=b'{"w": '), r"header is not valid JSON"),
    (
        "header length past the end",
        lambda b: struct.pack("<Q", len(b)) + b[8:],
        r"header length field .* runs past the end",
    ),
    (
        "entry is a list",
        _edit(lambda h, m: _set(h, W, ["F64", [4], [0, 32]])),
        r"tensor 'state\.w' is described by a JSON list",
    ),
    (
        "string sizes",
        _edit(lambda h, m: _set(h[W], "shape", ["4"])),
        r"tensor 'state\.w' has shape \['4'\], whose sizes are not all non-negative integers",
    ),
    (
        "boolean size",
        _edit(lambda h, m: _set(h[W], "shape", [True])),
        r"tensor 'state\.w' has shape \[True\]",
    ),
    (
        "negative offsets",
        _edit(lambda h, m: _set(h[W], "data_offsets", [-32, 0])),
        r"tensor 'state\.w' has data_offsets \[-32, 0\], not 0 <= begin <= end",
    ),
    (
        "string offsets",
        _edit(lambda h, m: _set(h[W], "data_offsets", ["0", "32"])),
        r"tensor 'state\.w' has data_offsets \['0', '32'\], not two integers",
    ),
    (
        "offsets beyond the file",
        _edit(lambda h, m: _grow_last(h)),
        r"holds \d+ bytes of tensor data and its header describes \d+ \(truncated or padded\)",
    ),
    (
        "overlapping tensors",
        _edit(lambda h, m: _set(h, "v", dict(h[W]))),
        r"tensor '(v|state\.w)' \(bytes 0\.\.32\) overlaps the one before it",
    ),
    (
        "absurd shape",
        _edit(lambda h, m: _set(h[W], "shape", [2**40, 2**40])),
        r"tensor 'state\.w' has 32 bytes for shape \[1099511627776, 1099511627776\] of F64",
    ),
    (
        "too many dimensions",
        _edit(lambda h, m: h[W].update(shape=[0] * 40, data_offsets=[0, 0])),
        r"tensor 'state\.w' has shape .*not a list of at most 32 sizes",
    ),
    (
        "size beyond int64",
        _edit(lambda h, m: h[W].update(shape=[0, 2**64], data_offsets=[0, 0])),
        r"whose sizes are not all non-negative integers",
    ),
    (
        "absurd dtype",
        _edit(lambda h, m: _set(h[W], "dtype", "C128")),
        r"tensor 'state\.w' has dtype 'C128', not one of",
    ),
    (
        "metadata not a string",
        _edit(lambda h, m: 5),
        r"__metadata__\.replicator is not a JSON string",
    ),
    (
        "metadata not JSON",
        _edit(lambda h, m: '{"format": '),
        r"metadata is not valid JSON",
    ),
    (
        "metadata a list",
        _edit(lambda h, m: "[1]"),
        r"metadata is not a JSON object of format",
    ),
    (
        "reference to a missing tensor",
        _edit(lambda h, m: _set(m["state"], "w", {"$ndarray": "nope"})),
        r"refers to tensor 'nope', which it does not hold",
    ),
    (
        "reference by a list",
        _edit(lambda h, m: _set(m["state"], "w", {"$ndarray": ["w"]})),
        r"refers to tensor \['w'\]",
    ),
    (
        "numpy array of bfloat16",
        _edit(lambda h, m: h[W].update(dtype="BF16", shape=[16])),
        r"numpy array 'state\.w' has dtype BF16",
    ),
    (
        "$tuple not a list",
        _edit(lambda h, m: _set(m["state"], "w", {"$tuple": 5})),
        r"\$tuple holds",
    ),
    (
        "unhashable $dict key",
        _edit(lambda h, m: _set(m, "state", {"$dict": [[{"a": 1}, 2]]})),
        r"a \$dict key is a dict",
    ),
    (
        "$dict item not a pair",
        _edit(lambda h, m: _set(m, "state", {"$dict": [[1, 2, 3]]})),
        r"\$dict item is not a \[key, value\] pair",
    ),
    (
        "$float not a float",
        _edit(lambda h, m: _set(m, "state", {"$float": "banana"})),
        r"holds the float 'banana'",
    ),
    (
        "$bytes not base64",
        _edit(lambda h, m: _set(m, "state", {"$bytes": "%%%"})),
        r"bytes that are not base64",
    ),
    (
        "top level is a tensor",
        _edit(lambda h, m: _meta({"format": MAGIC, "$ndarray": W})),
        r"metadata decodes to a ndarray, not a dict",
    ),
    ("step a string", _edit(lambda h, m: _set(m, "step", "2")), r"its step is '2'"),
    ("epoch a float", _edit(lambda h, m: _set(m, "epoch", 1.5)), r"its epoch is 1\.5"),
    ("metrics a list", _edit(lambda h, m: _set(m, "metrics", [1])), r"metrics are a list"),
    ("rng a list", _edit(lambda h, m: _set(m, "rng", [1])), r"random state is invalid"),
    (
        "python rng state too short",
        _edit(lambda h, m: _set(m["rng"]["python"], "state", [1, 2, 3])),
        r"random state is invalid \(Python's random state",
    ),
    (
        "numpy rng key of strings",
        _edit(lambda h, m: _set(m["rng"]["numpy"]["state"], "key", ["x"] * 624)),
        r"random state is invalid \(numpy's global state",
    ),
    (
        "generators a string",
        _edit(lambda h, m: _set(m["rng"], "generators", "x")),
        r"generators are a str",
    ),
    (
        "unknown bit generator",
        _edit(
            lambda h, m: _set(
                m["rng"]["generators"], "g", {"kind": "numpy", "state": {"bit_generator": "os"}}
            )
        ),
        r"generator 'g': bit generator 'os'",
    ),
]


def _save_two(directory: Path) -> Path:
    """Two real checkpoints (steps 1 and 2); returns the latest file."""
    manager = CheckpointManager(directory, keep_last=2)
    manager.save({"w": np.arange(4, dtype=np.float64)}, step=1)
    manager.save({"w": np.arange(4, dtype=np.float64) * 2}, step=2)
    return manager.latest.path


def _plant(directory: Path, latest: Path, blob: bytes) -> None:
    """Replace ``latest`` by ``blob`` and rewrite the manifest so its hash and size match."""
    latest.write_bytes(blob)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["checkpoints"][-1].update(hash=hash_checkpoint(latest), size=len(blob))
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(("craft", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_crafted_file_is_refused_and_latest_falls_back(tmp_path, craft, reason):
    directory = tmp_path / "run" / "checkpoints"
    latest = _save_two(directory)
    _plant(directory, latest, craft(latest.read_bytes()))
    name = re.escape(str(latest))

    fresh = CheckpointManager(directory, keep_last=2)
    with pytest.raises(CheckpointError, match=rf"{name}.*{reason}") as caught:
        fresh.load(2)
    assert not isinstance(caught.value, CheckpointHashError)  # the hash did match
    with pytest.raises(CheckpointError, match=reason):
        read_checkpoint(latest)
    with pytest.warns(CheckpointFallbackWarning, match=rf"{latest.name} .*{reason}.*step 1"):
        got = fresh.load()
    assert got.step == 1 and got.fallback_from == latest.name
    assert got.state["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    events = [json.loads(x) for x in (directory / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["invalid", "fallback"]  # load(2) only raises

    runner = CliRunner()
    result = runner.invoke(cli, ["checkpoint", "verify", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # an exit, no exception escaped
    lines = result.output.splitlines()
    assert lines[0].split() == ["ok", "step", "1", "step000000001-000001.safetensors"]
    assert lines[1].split() == ["damaged", "step", "2", latest.name]
    assert re.search(reason, lines[2]) and str(latest) in lines[2]
    assert lines[3] == "1 of 2 checkpoint(s) match the manifest."
    report = json.loads(
        runner.invoke(cli, ["checkpoint", "verify", "--json", str(directory)]).output
    )
    assert [r["status"] for r in report["checkpoints"]] == ["ok", "damaged"]

    result = runner.invoke(cli, ["checkpoint", "ls", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()
    assert "DAMAGED" not in first
    assert "latest" in second and "  DAMAGED: " in second
    rows = describe_checkpoints(tmp_path / "run")
    assert rows[0]["damaged"] is None and rows[1]["damaged"]
    assert "Traceback" not in result.output


def test_crafted_pickle_with_matching_hash_runs_nothing_even_with_a_safetensors_name(tmp_path):
    """A file that is valid JSON up to its metadata, whose tensor bytes hold a pickle."""
    import pickle

    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Planted(str(marker)))
    directory = tmp_path / "ckpt"
    latest = _save_two(directory)
    header, meta, _ = _split(latest.read_bytes())
    header = {W: {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}
    meta.pop("rng")
    meta["state"]["w"] = {"$bytes": "not base64 %"}
    _plant(directory, latest, _join(header, meta, payload))
    with pytest.warns(CheckpointFallbackWarning):
        assert CheckpointManager(directory, keep_last=2).load().step == 1
    with pytest.raises(CheckpointError, match="not base64"):
        read_checkpoint(latest, trust_pickle=True)  # a safetensors file is never unpickled
    assert not marker.exists()


class _Planted:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_state_too_deep_to_load_is_refused_when_saved(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save({"x": _nest(95)}, step=1)  # within the limit: it round-trips
    assert CheckpointManager(tmp_path).load().state["x"] == _nest(95)
    with pytest.raises(CheckpointError, match=r"state\['x'\].* nests more than 100 levels deep"):
        manager.save({"x": _nest(150)}, step=2)


def test_crafted_manifest_entry_is_refused_with_its_field(tmp_path, cli):
    latest = _save_two(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["checkpoints"][-1]["file"] = "../../../etc/passwd"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"checkpoint 2 names the file '\.\./\.\./\.\./etc"):
        CheckpointManager(tmp_path)
    manifest["checkpoints"][-1].update(file=latest.name, step="2")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    result = cli("checkpoint", "verify", str(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: Checkpoint manifest {tmp_path / 'manifest.json'}: ")
    assert "checkpoint 2 has step '2', not a non-negative integer" in result.stderr
    (tmp_path / "manifest.json").write_text("[1, 2]")
    result = cli("checkpoint", "verify", str(tmp_path))
    assert result.returncode == 1 and "has an unknown format" in result.stderr
    assert "Traceback" not in result.stderr


def test_real_command_reports_a_crafted_file_without_a_traceback(tmp_path, cli):
    run_dir = tmp_path / "run"
    latest = _save_two(run_dir / "checkpoints")
    _plant(run_dir / "checkpoints", latest, _deep_metadata(latest.read_bytes()))
    result = cli("checkpoint", "verify", str(run_dir))
    assert result.returncode == 1 and result.stderr == ""
    assert result.stdout.splitlines()[1].split() == ["damaged", "step", "2", latest.name]
    assert "metadata nests more than 100 levels deep" in result.stdout
    result = cli("checkpoint", "ls", str(run_dir))
    assert result.returncode == 0 and result.stderr == ""
    assert "DAMAGED: its metadata nests more than 100 levels deep" in result.stdout


# -- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TAGS = ["$tensor", "$ndarray", "$tuple", "$dict", "$float", "$bytes", "scalar", "device"]
FIELDS = ["dtype", "shape", "data_offsets", "format", "step", "epoch", "metrics", "rng", "state"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from(["w", "v", "F64", "U8", "BF16", "nan", "inf", "cpu", "meta", "AAA=", MAGIC]),
    st.text(max_size=6),
)
names = st.sampled_from(["state.w", "v", "missing"]) | scalars


def _tagged(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The tags the decoder knows, holding plausible and implausible values."""
    return st.one_of(
        st.builds(lambda n, s: {"$ndarray": n, "scalar": s}, names, scalars),
        st.builds(lambda n, d: {"$tensor": n, "device": d}, names, scalars),
        st.builds(lambda v: {"$tuple": v}, st.lists(inner, max_size=3) | inner),
        st.builds(lambda v: {"$dict": v}, st.lists(st.lists(inner, max_size=3), max_size=3)),
        st.builds(lambda v: {"$float": v}, st.sampled_from(["nan", "-inf"]) | inner),
        st.builds(lambda v: {"$bytes": v}, st.sampled_from(["AAA=", "AA"]) | inner),
    )


json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(TAGS + FIELDS) | st.text(max_size=4), inner, max_size=4),
        _tagged(inner),
    ),
    max_leaves=25,
)
entry = (
    st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(["F64", "F32", "U8", "BF16", "BOOL", "X"]),
            "shape": st.lists(st.integers(-2, 4), max_size=3),
            "data_offsets": st.lists(st.integers(-8, 64), min_size=2, max_size=2),
        }
    )
    | json_like
)
headers = st.builds(
    lambda entries, meta, data: (entries, meta, data),
    st.dictionaries(st.sampled_from(["state.w", "v", "rng.torch.cpu"]), entry, max_size=3),
    st.fixed_dictionaries(
        {"format": st.just(MAGIC) | scalars},
        optional={k: json_like for k in ("state", "step", "epoch", "metrics", "rng")},
    ),
    st.binary(max_size=64),
)


def _read_or_refuse(path: Path) -> None:
    """Reading either succeeds or raises CheckpointError; the header check agrees with it."""
    problem = check_checkpoint_file(path)
    assert problem is None or isinstance(problem, str)
    try:
        tree = read_checkpoint_file(path, expected_hash=hash_checkpoint(path))
    except CheckpointError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(tree, dict)
    assert problem is None  # the cheap check never flags a file that loads


@FUZZ
@given(headers)
def test_fuzzed_header_and_metadata_load_or_are_refused(tmp_path, parts):
    entries, meta, data = parts
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(_join(entries, meta, data))
    _read_or_refuse(path)


# a header that is right (a float64 [4] and a uint8 [3]), so that the metadata gets decoded
GOOD_HEADER = {
    "state.w": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]},
    "v": {"dtype": "U8", "shape": [3], "data_offsets": [32, 35]},
}
metadata = st.fixed_dictionaries(
    {"format": st.just(MAGIC)},
    optional={k: json_like for k in ("state", "step", "epoch", "metrics", "rng")},
)


@FUZZ
@given(metadata)
def test_fuzzed_metadata_under_a_good_header_loads_or_is_refused(tmp_path, meta):
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(_join(GOOD_HEADER, meta, bytes(range(35))))
    _read_or_refuse(path)


@FUZZ
@given(st.binary(max_size=200), st.binary(max_size=32))
def test_fuzzed_header_bytes_load_or_are_refused(tmp_path, text, data):
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(_pack(None, data, raw=text))
    _read_or_refuse(path)
