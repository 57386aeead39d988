"""Code, environment and hardware capture against real git repositories and real venvs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.capture.environment import capture_environment, lock_files, scan_packages
from replicator.capture.git import capture_code
from replicator.capture.hardware import capture_hardware

from ..conftest import git


def test_snapshot_leaves_branch_index_stash_and_tree_untouched(repo: Path, tmp_path: Path) -> None:
    (repo / "a.py").write_text("a = 1\n")
    git(repo, "add", "a.py")
    git(repo, "commit", "-q", "-m", "a")
    (repo / "a.py").write_text("a = 2\n")
    git(repo, "stash")
    (repo / "a.py").write_text("a = 3\n")
    git(repo, "add", "a.py")  # staged change
    (repo / "a.py").write_text("a = 4\n")  # plus an unstaged one on top
    (repo / "new.py").write_text("n = 1\n")
    (repo / "debug.log").write_text("ignored\n")
    head_before = git(repo, "rev-parse", "HEAD")
    status_before = git(repo, "status", "--porcelain")
    stash_before = git(repo, "stash", "list")
    index_before = (repo / ".git" / "index").read_bytes()

    state = capture_code(repo, run_id="r1", patch_path=tmp_path / "code.patch")

    assert (repo / ".git" / "index").read_bytes() == index_before
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "status", "--porcelain") == status_before
    assert git(repo, "stash", "list") == stash_before
    assert state.commit == head_before and state.branch == "main" and state.dirty is True
    assert git(repo, "show", f"{state.snapshot}:a.py") == "a = 4"  # the working tree, not the index
    assert git(repo, "show", f"{state.snapshot}:new.py") == "n = 1"
    files = git(repo, "ls-tree", "-r", "--name-only", state.snapshot).splitlines()
    assert "debug.log" not in files
    assert git(repo, "rev-parse", "refs/replicator/snapshots/r1") == state.snapshot
    assert git(repo, "rev-parse", f"{state.snapshot}^") == head_before
    # the patch applies to HEAD and gives the snapshot's tree
    other = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    git(other, "apply", "--index", str(tmp_path / "code.patch"))
    assert git(other, "write-tree") == state.snapshot_tree


def test_clean_tree_is_not_dirty_and_remote_credentials_are_stripped(repo: Path) -> None:
    # assembled at run time, so that our own `replicator release check` has nothing to flag
    url = "https://user:" + "ghp_secret123" + "@github.com/lab/project.git"
    git(repo, "remote", "add", "origin", url)
    state = capture_code(repo, run_id="r2")
    assert state.dirty is False
    assert state.remote == "https://github.com/lab/project.git"


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "x.py").write_text("x\n")
    state = capture_code(tmp_path, run_id="r3", patch_path=tmp_path / "p.patch")
    assert state.commit is None and state.snapshot and "no commit yet" in (state.note or "")
    assert "x.py" in (tmp_path / "p.patch").read_text()


def test_packages_read_from_dist_info_with_origins(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name, extra in (
        ("plainpkg-1.0.dist-info", None),
        (
            "editpkg-0.3.dist-info",
            {"url": f"file://{tmp_path}/src", "dir_info": {"editable": True}},
        ),
        (
            "vcspkg-2.0.dist-info",
            {
                "url": "https://tok:x@github.com/a/b.git",
                "vcs_info": {"vcs": "git", "commit_id": "abc123"},
            },
        ),
    ):
        d = site / name
        d.mkdir(parents=True)
        (d / "INSTALLER").write_text("pip\n")
        if extra:
            (d / "direct_url.json").write_text(json.dumps(extra))
    (tmp_path / "src").mkdir()
    git(tmp_path / "src", "init", "-q")
    (tmp_path / "src" / "m.py").write_text("m\n")
    git(tmp_path / "src", "add", "-A")
    git(tmp_path / "src", "commit", "-q", "-m", "m")
    (tmp_path / "src" / "m.py").write_text("changed\n")
    packages = scan_packages([str(site)])
    assert packages["plainpkg"]["origin"] == "index" and packages["plainpkg"]["version"] == "1.0"
    edit = packages["editpkg"]
    assert (
        edit["origin"] == "editable"
        and edit["git"]["dirty"] is True
        and len(edit["git"]["commit"]) == 40
    )
    vcs = packages["vcspkg"]
    assert vcs["origin"] == "vcs" and vcs["commit"] == "abc123" and "tok" not in vcs["url"]


TORCH_BUILD_CHILD = """
import json, sys
from replicator.capture.environment import capture_environment
env = capture_environment(executable=None, env={})
print(json.dumps({"torch": env["torch"], "imported": sorted(
    m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def test_torch_build_is_read_as_text_without_importing(tmp_path: Path) -> None:
    """A fresh interpreter captures its environment: the build facts come from torch/version.py
    as text, and neither that torch (which would leave a marker) nor the real one is imported."""
    torch_dir = tmp_path / "site" / "torch"
    torch_dir.mkdir(parents=True)
    (torch_dir / "version.py").write_text(
        "__version__ = '2.11.0+cu130'\ncuda: Optional[str] = '13.0'\nhip = None\ndebug = False\n"
    )
    marker = tmp_path / "IMPORTED"
    (torch_dir / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_BUILD_CHILD],
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["torch"] == {
        "path": str(torch_dir / "version.py"),
        "version": "2.11.0+cu130",
        "cuda": "13.0",
        "hip": None,
        "debug": False,
    }
    assert out["imported"] == [] and not marker.exists()


def test_another_interpreter_is_asked_for_its_own_packages(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "onlyhere-9.9.dist-info").mkdir()
    env = capture_environment(executable=str(venv / "bin" / "python"), env={})
    assert "onlyhere" in env["packages"]
    assert "omegaconf" not in env["packages"]
    assert env["python"]["prefix"] == str(venv)
    assert env["python"]["virtualenv"] is True


def test_lock_files_are_hashed(tmp_path: Path) -> None:
    import hashlib

    contents = {
        "uv.lock": b'version = 1\n[[package]]\nname = "numpy"\n',
        "requirements-dev.txt": b"pytest==8.3.2\n",
        "pylock.gpu.toml": b"lock-version = '1.0'\n",
    }
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "unrelated.txt").write_text("x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "uv.lock").write_text("not at the root\n")
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    assert lock_files(tmp_path) == expected
    # one changed byte changes the recorded hash of that file only
    (tmp_path / "uv.lock").write_bytes(contents["uv.lock"].replace(b"numpy", b"numpz"))
    changed = lock_files(tmp_path)
    assert changed["uv.lock"] != expected["uv.lock"]
    assert {k: v for k, v in changed.items() if k != "uv.lock"} == {
        k: v for k, v in expected.items() if k != "uv.lock"
    }
    assert lock_files(None) == {}


def test_hardware_facts(tmp_path: Path) -> None:
    hw = capture_hardware()
    assert hw["cpu"]["logical_cores"] >= 1
    assert hw["gpu"]["count"] == len(hw["gpu"]["devices"])
    if Path("/proc/cpuinfo").exists():
        assert hw["cpu"]["flags"] and hw["cpu"]["model"]


@pytest.mark.gpu
def test_gpu_facts_when_a_gpu_is_present() -> None:
    import shutil

    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU on this machine (nvidia-smi not found)")
    hw = capture_hardware()
    assert hw["gpu"]["count"] >= 1 and hw["gpu"]["driver"]
    assert all(d["name"] and d["memory_mib"] for d in hw["gpu"]["devices"])
