"""The static scan: each rule finds its source at the right line, and look-alikes that are not
sources stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.audit import RULES, imported_modules, scan_file, scan_paths

FOUND = {
    "seed from the clock": ("import time, random\nrng = random.Random(int(time.time()))\n", "clock-seed", 2),
    "seed from os.urandom": ("import os, numpy as np\nnp.random.seed(int.from_bytes(os.urandom(4), 'big'))\n", "clock-seed", 2),
    "default_rng()": ("import numpy as np\nrng = np.random.default_rng()\n", "unseeded-rng", 2),
    "default_rng(None)": ("import numpy as np\nrng = np.random.default_rng(None)\n", "unseeded-rng", 2),
    "random.seed()": ("import random\nrandom.seed()\n", "unseeded-rng", 2),
    "torch.Generator(device=...)": ("import torch\ng = torch.Generator(device='cpu')\n", "unseeded-rng", 2),
    "for over a set": ("names = {'a', 'b'}\nfor n in names:\n    print(n)\n", "set-order", 2),
    "sum over a set": ("x = sum({0.1, 0.2, 0.3})\n", "set-order", 1),
    "sorted by id": ("xs = [object()]\nys = sorted(xs, key=id)\n", "sort-by-id", 2),
    "os.listdir": ("import os\nfor f in os.listdir('.'):\n    print(f)\n", "unsorted-listing", 2),
    "Path.glob": ("from pathlib import Path\nfiles = list(Path('.').glob('*.txt'))\n", "unsorted-listing", 2),
    "as_completed": ("from concurrent.futures import as_completed\nfor f in as_completed([]):\n    pass\n", "as-completed", 2),
    "cudnn.benchmark": ("import torch\ntorch.backends.cudnn.benchmark = True\n", "cudnn-benchmark", 2),
    "index_add_": ("def f(out, i, v):\n    out.index_add_(0, i, v)\n", "cuda-atomic-op", 2),
    "DataLoader workers": ("from torch.utils.data import DataLoader\nDataLoader([], num_workers=4)\n", "dataloader-workers", 2),
    "while on the clock": ("import time\nt = time.time()\nwhile time.time() - t < 5:\n    pass\n", "wall-clock-loop", 3),
    "break on the clock": ("import time\nt = time.monotonic()\nwhile True:\n    if time.monotonic() - t > 5:\n        break\n", "wall-clock-loop", 4),
}  # fmt: skip

QUIET = {
    "seeded generator": "import numpy as np\nrng = np.random.default_rng(1234)\n",
    "seeded torch generator": "import torch\ng = torch.Generator()\ng.manual_seed(0)\n",
    "chained manual_seed": "import torch\ng = torch.Generator().manual_seed(0)\n",
    "sorted listing": "import os\nfor f in sorted(os.listdir('.')):\n    print(f)\n",
    "set built from a set": "a = {'x'}\nb = {s.upper() for s in a}\n",
    "len of a set": "n = len({'a', 'b'})\n",
    "seeded DataLoader": "from torch.utils.data import DataLoader\nDataLoader([], num_workers=2, worker_init_fn=print)\n",
    "index_put_ without accumulate": "def f(x, i, v):\n    x.index_put_(i, v)\n",
    "timed logging without break": "import time\nfor i in range(3):\n    if time.time() > 0:\n        print(i)\n",
}  # fmt: skip


def _write(tmp_path: Path, code: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(code)
    return path


@pytest.mark.parametrize("case", list(FOUND))
def test_rule_finds_the_source_at_its_line(tmp_path: Path, case: str) -> None:
    code, rule, line = FOUND[case]
    findings = scan_file(_write(tmp_path, code), root=tmp_path)
    assert [(f.code, f.line) for f in findings] == [(rule, line)], findings
    [finding] = findings
    assert finding.where == f"train.py:{line}"
    assert finding.message.startswith(RULES[rule])
    assert finding.fix and finding.confirmed is None


@pytest.mark.parametrize("case", list(QUIET))
def test_look_alike_is_not_a_finding(tmp_path: Path, case: str) -> None:
    assert scan_file(_write(tmp_path, QUIET[case]), root=tmp_path) == []


def test_scan_skips_environments_and_unparsable_files(tmp_path: Path) -> None:
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "dep.py").write_text("import random\nrandom.seed()\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "model.py").write_text(
        "import torch\nimport numpy.random as r\nr.seed(0)\n"
    )

    assert [f.where for f in scan_paths([tmp_path], root=tmp_path)] == []
    assert imported_modules([tmp_path]) == {"torch", "numpy"}
