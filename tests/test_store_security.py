"""The history database is private: the store creates its file 0600 and every folder it creates
0700, whatever the umask, and SQLite's side files (-wal, -shm) follow the file's mode. Folders
that already existed (the user's project, their data directory) keep their permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ai_assistant.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    """The common default umask, under which a plain create gives 0644 files, 0755 folders."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_default_history_database_and_the_folders_it_needs_are_private(
    project, tmp_path, monkeypatch, permissive_umask
):
    data_home = tmp_path / "home" / "data"  # neither folder exists yet
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    tmp_path.chmod(0o755)
    result = project.run("chat", "-m", "echo", "hello")
    assert result.exit_code == 0, result.output
    database = data_home / "ai-assistant" / "history.db"
    assert database.exists()
    assert _mode(database) == 0o600
    for folder in (data_home / "ai-assistant", data_home, tmp_path / "home"):
        assert _mode(folder) == 0o700, folder
    assert _mode(tmp_path) == 0o755  # the user's own folder is left alone


def test_storage_path_in_a_new_subfolder_is_private_and_the_project_folder_untouched(
    project, permissive_umask
):
    project.root.chmod(0o755)
    project.settings('[default.storage]\npath = "state/history.db"\n')
    result = project.run("chat", "-m", "echo", "hello")
    assert result.exit_code == 0, result.output
    assert _mode(project.root / "state" / "history.db") == 0o600
    assert _mode(project.root / "state") == 0o700
    assert _mode(project.root) == 0o755
    listed = project.run("conversations", "list", "--json")
    assert listed.exit_code == 0 and '"hello"' in listed.stdout


def test_an_existing_folder_keeps_its_mode(project, permissive_umask):
    project.root.chmod(0o755)
    project.settings('[default.storage]\npath = "history.db"\n')
    assert project.run("chat", "-m", "echo", "hello").exit_code == 0
    assert _mode(project.root / "history.db") == 0o600
    assert _mode(project.root) == 0o755


def test_side_files_of_an_open_database_are_private(tmp_path, permissive_umask):
    path = tmp_path / "new" / "history.db"
    store = Store(path)
    try:
        store.start_exchange(None, "echo", ["hello"])  # a write: the WAL and its index exist
        created = [p for p in path.parent.rglob("*")]
        names = {p.name for p in created}
        assert {"history.db", "history.db-wal", "history.db-shm"} <= names
        for item in created:
            expected = 0o700 if item.is_dir() else 0o600
            assert _mode(item) == expected, item
    finally:
        store.close()
