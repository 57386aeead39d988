"""Store.coerce: the one conversion of every ``store=`` argument (None, a path, a Store)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from replicator.errors import UsageError
from replicator.store import Store
from replicator.store.frames import load_runs

from .test_store import make_run


class _Where(os.PathLike[str]):
    """A PathLike that is neither str nor Path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def test_none_is_the_store_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "replicator.yaml").write_text("store: runs-here\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert Store.coerce(None).root == (tmp_path / "runs-here").resolve()


@pytest.mark.parametrize("form", [str, Path, _Where], ids=["str", "Path", "PathLike"])
def test_a_path_is_the_store_directory(tmp_path: Path, form: type) -> None:
    store = Store.coerce(form(tmp_path / "s"))
    assert store.root == (tmp_path / "s").resolve()
    assert store.project_root == tmp_path.resolve()


def test_a_store_is_taken_as_it_is(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", project_root=tmp_path / "elsewhere")
    assert Store.coerce(store) is store


@pytest.mark.parametrize("wrong", [3, 2.5, ["runs"]], ids=["int", "float", "list"])
def test_anything_else_is_a_usage_error_naming_what_was_given(wrong: object) -> None:
    with pytest.raises(
        UsageError,
        match=re.escape(
            "store must be a Store, the path of a store directory or None, "
            f"got {type(wrong).__name__} {wrong!r}."
        ),
    ):
        Store.coerce(wrong)  # type: ignore[arg-type]


def test_public_functions_accept_every_form(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    store = Store(tmp_path / "s")
    make_run(store, experiment="mlp")
    for form in (store, tmp_path / "s", str(tmp_path / "s"), _Where(tmp_path / "s")):
        assert len(load_runs(experiment="mlp", store=form)) == 1
    with pytest.raises(UsageError, match="got int 7"):
        load_runs(experiment="mlp", store=7)  # type: ignore[arg-type]
