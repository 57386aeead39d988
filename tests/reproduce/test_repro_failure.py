"""A reproduction whose command fails: the cause quotes the exception that ended it, and names
the ignored file or folder the original working tree had and the code snapshot lacks."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from repro_helpers import git

from replicator.reproduce import reproduce

HYDRA_APP = '''\
"""Reads data/ like a torchvision dataset: downloads it when it is not there."""
from pathlib import Path

import hydra

URL = "https://example.invalid/mnist/train-images-idx3-ubyte.gz"


def download(url, root):
    raise RuntimeError(f"Error downloading {url}")  # no network where it is reproduced


@hydra.main(version_base="1.3", config_path=None)
def main(cfg) -> None:
    root = Path("data") / "mnist"
    if not root.is_dir():
        download(URL, root)
    print(sum(len(p.read_bytes()) for p in root.iterdir()))


if __name__ == "__main__":
    main()
'''


def _quiet() -> dict[str, io.BytesIO]:
    return {"stdout": io.BytesIO(), "stderr": io.BytesIO()}


def test_hydra_failure_quotes_the_exception_and_names_the_ignored_data(
    project: Path, record
) -> None:
    pytest.importorskip("hydra")
    (project / "train.py").write_text(HYDRA_APP)
    (project / ".gitignore").write_text("data/\noutputs/\n")
    (project / "data" / "mnist").mkdir(parents=True)
    (project / "data" / "mnist" / "train.bin").write_bytes(b"\x00\x01")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "hydra app reading data/")
    run_id = record(Path(sys.executable))

    failed = reproduce(run_id, env="current", **_quiet())

    assert failed.verdict == "failed" and failed.exit_code == 1
    cause = failed.causes[0]
    assert cause.startswith(
        "run: the command failed with exit code 1: RuntimeError: Error downloading "
        "https://example.invalid/mnist/train-images-idx3-ubyte.gz"
    ), cause
    assert "HYDRA_FULL_ERROR" not in cause
    assert "lacks data/, ignored by git but present in the original working tree" in cause
    assert "outputs/" not in cause  # the original run's own outputs are not data it read
    assert "data: section" in cause
    assert failed.decided_by == "the command did not complete, so nothing was compared"


def test_failure_on_a_named_file_outside_the_snapshot(project: Path, record) -> None:
    (project / "train.py").write_text(
        "import pickle\n"
        "from pathlib import Path\n"
        "def load(path):\n"
        "    with open(path, 'rb') as f:\n"
        "        return pickle.load(f)\n"
        "try:\n"
        "    print(load(Path('data') / 'features.pkl'))\n"
        "except OSError as exc:\n"
        "    raise ValueError('no features: run prepare.py first') from exc\n"
    )
    (project / "data").mkdir()
    import pickle

    (project / "data" / "features.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    run_id = record(Path(sys.executable))

    failed = reproduce(run_id, env="current", **_quiet())

    cause = failed.causes[0]
    # the chained traceback's last exception, not the FileNotFoundError it was raised from
    assert cause.startswith(
        "run: the command failed with exit code 1: ValueError: no features: run prepare.py first"
    ), cause
    assert "data/ exists in the original working tree but not in the code snapshot" in cause
