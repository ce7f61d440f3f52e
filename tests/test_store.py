"""The history database: numbered migrations upgrade an older file in place."""

from __future__ import annotations

import sqlite3

from ai_assistant import store as store_module
from ai_assistant.store import Store


def test_an_older_database_is_migrated_in_place_keeping_its_data(tmp_path, monkeypatch):
    path = tmp_path / "history.db"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    old = Store(path)
    old.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO conversations VALUES ('c1', 'kept', 'echo', NULL, 't', 't')")
    db.commit()
    db.close()
    monkeypatch.undo()

    upgraded = Store(path)
    assert upgraded.schema_version() == len(store_module.MIGRATIONS) == 2
    conv = upgraded.conversation("c1")
    assert conv["title"] == "kept" and conv["owner"] is None
    conversation_id, reply_id = upgraded.start_exchange(None, "echo", ["hi"], owner="alice")
    assert [c["id"] for c in upgraded.conversations(owner="alice")] == [conversation_id]
    assert {c["id"] for c in upgraded.conversations()} == {"c1", conversation_id}
    applied = (
        sqlite3.connect(path)
        .execute("SELECT version FROM schema_migrations ORDER BY version")
        .fetchall()
    )
    assert applied == [(1,), (2,)]
