"""`replicator ui` is read-only, stays inside the store, and needs a token off loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import UiServer, UiStore, clean_env, start_ui

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime (the index excluded: a cache)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("index.sqlite")
    }


def test_only_get_and_head_and_nothing_is_written(ui_server: UiServer, ui_store: UiStore) -> None:
    run_id = ui_store.ids["a"][0]
    before = tree_state(ui_store.store / "runs" / run_id)
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        for path in ("/api/runs", f"/api/runs/{run_id}", "/", "/static/app.css", "/nowhere"):
            answer = httpx.request(method, f"{ui_server.base}{path}", timeout=30, content=b"{}")
            assert answer.status_code == 405, (method, path)
            assert "read-only" in answer.json()["error"]
            assert answer.headers["allow"] == "GET, HEAD"
    head = httpx.head(f"{ui_server.base}/api/runs/{run_id}", timeout=30)
    assert head.status_code == 200 and head.content == b""
    for path in ("", "/metrics", "/output", "/checkpoints/verify", "/metrics.csv"):
        assert httpx.get(f"{ui_server.base}/api/runs/{run_id}{path}", timeout=60).status_code == 200
    assert tree_state(ui_store.store / "runs" / run_id) == before


def test_every_answer_has_the_security_headers(ui_server: UiServer, ui_store: UiStore) -> None:
    paths = ["/", "/api/runs", "/api/runs/nope", "/static/app.css", "/nowhere"]
    for path in paths:
        answer = httpx.get(f"{ui_server.base}{path}", timeout=30)
        assert answer.headers["content-security-policy"] == CSP, path
        assert answer.headers["x-content-type-options"] == "nosniff"
    refused = httpx.post(f"{ui_server.base}/api/runs", timeout=30)
    assert refused.headers["content-security-policy"] == CSP


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/..%2F..%2F..%2Fetc",
        "/api/runs/%2Fetc%2Fpasswd",
        "/api/runs/..",
        "/api/runs/.../metrics",
        "/api/runs/%2E%2E/output",
        "/api/runs/~root",
        "/api/compare?ids=..,/etc",
        "/api/compare/curves?ids=/etc/passwd&key=loss",
        "/api/export/report?ids=../../x",
        "/static/..%2F..%2Fcli%2Fui.py",
        "/static/%2Fetc%2Fpasswd",
        "/static/js/../../app.py",
    ],
)
def test_paths_outside_the_store_are_refused(ui_server: UiServer, path: str) -> None:
    answer = httpx.get(f"{ui_server.base}{path}", timeout=30)
    assert answer.status_code in (400, 404), answer.text
    assert "error" in answer.json()
    assert "root:" not in answer.text and "import" not in answer.text


def test_symlinks_out_of_the_store_are_not_followed(ui_store: UiStore, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(ui_store.store, copy, ignore=shutil.ignore_patterns("index*"))
    outside = tmp_path / "outside-run"
    shutil.copytree(copy / "runs" / ui_store.ids["a"][0], outside)
    (outside / "stdout.log").write_text("SECRET OUTSIDE THE STORE\n")
    (copy / "runs" / "20990101-000000-link").symlink_to(outside, target_is_directory=True)
    (outside / "environment.json").write_text('{"python": {"SECRET": "OUTSIDE"}}')
    inside = copy / "runs" / ui_store.ids["a"][1]
    for name in ("stdout.log", "metrics.jsonl", "environment.json"):
        (inside / name).unlink()
        (inside / name).symlink_to(outside / name)
    with start_ui(copy) as server:
        base = server.base
        listed = httpx.get(f"{base}/api/runs", timeout=30).json()
        linked = httpx.get(f"{base}/api/runs/20990101-000000-link/output", timeout=30)
        output = httpx.get(f"{base}/api/runs/{inside.name}/output", timeout=30)
        detail = httpx.get(f"{base}/api/runs/{inside.name}", timeout=30)
        metrics = httpx.get(f"{base}/api/runs/{inside.name}/metrics", timeout=30)
        csv_text = httpx.get(f"{base}/api/runs/{inside.name}/metrics.csv", timeout=30).text
    assert "20990101-000000-link" not in [r["id"] for r in listed["runs"]]
    assert linked.status_code == 400 and "leads out of the store" in linked.json()["error"]
    assert output.status_code == 200 and output.json()["lines"] == []
    assert detail.json()["environment"] == {} and detail.json()["metric_keys"] == []
    assert metrics.json()["series"] == {} and csv_text == "step,key,value,time\n"
    assert all("OUTSIDE" not in a.text for a in (linked, output, detail))
    # listing did not write the store's index either: the server writes nothing
    assert not (copy / "index.sqlite").exists()


def test_a_foreign_host_header_is_refused_on_loopback(ui_server: UiServer) -> None:
    # a page served from evil.example whose DNS points at 127.0.0.1 (DNS rebinding)
    answer = httpx.get(f"{ui_server.base}/api/runs", headers={"host": "evil.example"}, timeout=30)
    assert answer.status_code == 403
    assert "not this machine" in answer.json()["error"]
    ok = httpx.get(f"{ui_server.base}/api/runs", headers={"host": "localhost:1234"}, timeout=30)
    assert ok.status_code == 200


def test_a_non_loopback_bind_requires_the_token(ui_store: UiStore) -> None:
    token = "t0k3n-for-the-test"
    with start_ui(ui_store.store, "--host", "0.0.0.0", "--token", token) as server:
        assert server.url.endswith(f"/?token={token}")
        base = server.base  # 127.0.0.1: the wildcard bind answers there too
        assert httpx.get(f"{base}/api/runs", timeout=30).status_code == 401
        assert httpx.get(f"{base}/", timeout=30).status_code == 401
        wrong = httpx.get(f"{base}/api/runs", params={"token": "guess"}, timeout=30)
        assert wrong.status_code == 401 and "token" in wrong.json()["error"]
        bearer = {"authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/api/runs", headers=bearer, timeout=30).status_code == 200
        with httpx.Client(base_url=base, timeout=30) as browser:
            first = browser.get("/", params={"token": token})
            assert first.status_code == 200
            cookie = first.headers["set-cookie"]
            assert "replicator_ui_token=" in cookie
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            # later requests carry only the cookie
            assert browser.get("/api/runs").status_code == 200
            assert browser.get("/static/app.css").status_code == 200


def test_a_generated_token_is_printed(ui_store: UiStore) -> None:
    with start_ui(ui_store.store, "--host", "0.0.0.0") as server:
        assert server.token and len(server.token) >= 24
        assert httpx.get(f"{server.base}/api/runs", timeout=30).status_code == 401
        answer = httpx.get(f"{server.base}/api/runs", params={"token": server.token}, timeout=30)
        assert answer.status_code == 200


def test_bad_command_lines_are_one_line_errors(ui_store: UiStore, tmp_path: Path) -> None:
    def ui(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replicator", "ui", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            cwd=tmp_path,
        )

    missing = ui("--store", str(tmp_path / "nowhere"), "--port", "0")
    assert missing.returncode != 0
    assert missing.stderr.startswith("Error: No store at") and "Traceback" not in missing.stderr
    bad_host = ui("--store", str(ui_store.store), "--port", "0", "--host", "no.such.host.invalid")
    assert bad_host.returncode == 2 and "Traceback" not in bad_host.stderr
    assert "--host" in bad_host.stderr
    empty = ui("--store", str(ui_store.store), "--port", "0", "--token", " ")
    assert empty.returncode == 2 and "--token is empty" in empty.stderr


def test_a_busy_port_is_a_clear_error(ui_server: UiServer, ui_store: UiStore) -> None:
    port = ui_server.base.rsplit(":", 1)[1]
    busy = subprocess.run(
        [sys.executable, "-m", "replicator", "ui", "--store", str(ui_store.store), "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=os.fspath(ui_store.project),
    )
    assert busy.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in busy.stderr and "--port" in busy.stderr


@pytest.mark.parametrize("missing", ["starlette", "uvicorn"])
def test_without_the_ui_extra_the_error_names_it(tmp_path: Path, missing: str) -> None:
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from replicator.cli.main import main\n"
        "sys.exit(main(['ui', '--port', '0']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'replicator[ui]'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
