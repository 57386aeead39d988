"""`reproduce --env fresh` where the packages came from, and a second reproduce without a rebuild.

The real case (issue 15): a run recorded with ``torch 2.13.0+cpu`` installed from a local wheel
folder (pip's ``find-links``). The ``+cpu`` label made the fresh environment ask PyTorch's CPU
index, unreachable here, and uv aborted. Here the same with a wheel the test builds itself
(``torchtiny 1.0+cpu``, a torch-family name with a build label) in a find-links folder named only
in the user's pip configuration file, an editable package of the project beside it, and an
unmodified script; reproduced twice with ``--env fresh``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from repro_helpers import find_uv, git

pytestmark = [pytest.mark.slow]


def _wheel(folder: Path, name: str, version: str, source: str) -> Path:
    """A real, minimal pure-Python wheel (PEP 427) with a correct RECORD."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return out


TRAIN = """\
import sys
import torchtiny, mylib
seed = int(sys.argv[1])
for step in range(4):
    print(f"step={step} loss={torchtiny.scale(seed) / (step + 1) + mylib.OFFSET:.6f}")
"""


def test_local_wheel_and_pip_config_then_a_cached_second_reproduce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    uv = find_uv()
    # only the configuration file names the folder (a PIP_FIND_LINKS variable would win over it)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "torchtiny", "1.0+cpu", "def scale(seed):\n    return 0.5 * seed\n")
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nfind-links = {wheels}\n")
    project = tmp_path / "project"
    (project / "mylib" / "mylib").mkdir(parents=True)
    (project / "mylib" / "mylib" / "__init__.py").write_text("OFFSET = 0.25\n")
    (project / "mylib" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "mylib"\nversion = "0.1"\n'
    )
    (project / "train.py").write_text(TRAIN)
    git(project.parent, "init", "-q", "-b", "main", str(project))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "project")
    venv = tmp_path / "recorded-venv"
    base = getattr(sys, "_base_executable", sys.executable)
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PIP_FIND_LINKS")}
    subprocess.run([uv, "venv", "-q", "--python", base, str(venv)], check=True, env=clean)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
         "--find-links", str(wheels), "torchtiny==1.0+cpu", "-e", str(project / "mylib")],
        check=True, env=clean,
    )  # fmt: skip
    env = {
        **clean,
        "PIP_CONFIG_FILE": str(pip_conf),
        "REPLICATOR_STORE": str(tmp_path / "store"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    recorded = cli(
        "run", "--seed", "3", "--metric-pattern", r"step=(?P<step>\d+) loss=(?P<loss>[\d.]+)",
        "--", str(venv / "bin" / "python"), "train.py", "{seed}",
        cwd=project, env=env,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    first = cli("reproduce", "last", "--env", "fresh", cwd=project, env=env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "NOT REPRODUCED" not in first.stdout and "REPRODUCED" in first.stdout, first.stdout
    assert "download.pytorch.org" not in first.stdout + first.stderr
    assert "reused the cached environment" not in first.stdout
    second = cli(
        "reproduce", "last~1", "--env", "fresh", "--installer", "uv",
        cwd=project, env=env, timeout=600,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert "reused the cached environment" in second.stdout, second.stdout
    assert "REPRODUCED" in second.stdout and "NOT REPRODUCED" not in second.stdout
    # one cached environment, holding the wheel's build; the editable package is not in it
    (cached,) = [p for p in (tmp_path / "cache" / "replicator" / "envs").iterdir() if p.is_dir()]
    site = next(cached.glob("lib/python*/site-packages"))
    assert (site / "torchtiny-1.0+cpu.dist-info").is_dir()
    assert not list(site.glob("mylib*"))
