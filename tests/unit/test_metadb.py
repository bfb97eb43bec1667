"""The shared SQLite wrapper: schema, transactions that roll back, nesting."""

import pytest

from dockyard.metadb import MetaDB

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT); CREATE INDEX IF NOT EXISTS tv ON t (v)"


@pytest.fixture
def db(tmp_path):
    db = MetaDB(tmp_path / "sub" / "dockyard.db", SCHEMA)
    yield db
    db.close()


def rows(db):
    with db.read() as conn:
        return conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()


def test_a_failed_transaction_changes_nothing(db):
    with db.write() as conn:
        conn.execute("INSERT INTO t VALUES ('a', '1')")
    with pytest.raises(RuntimeError):
        with db.write() as conn:
            conn.execute("INSERT INTO t VALUES ('b', '2')")
            raise RuntimeError("half-way")
    assert rows(db) == [("a", "1")]


def test_a_nested_write_is_part_of_the_outer_transaction(db):
    with pytest.raises(RuntimeError):
        with db.write() as outer:
            with db.write() as inner:
                inner.execute("INSERT INTO t VALUES ('b', '2')")
            outer.execute("INSERT INTO t VALUES ('c', '3')")
            raise RuntimeError("the outer one fails")
    assert rows(db) == []


def test_wal_and_foreign_keys_are_on_and_the_schema_is_idempotent(db, tmp_path):
    with db.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    again = MetaDB(tmp_path / "sub" / "dockyard.db", SCHEMA)  # a second store on the same file
    again.close()


def test_a_bad_schema_closes_the_connection(tmp_path):
    with pytest.raises(Exception, match="syntax"):
        MetaDB(tmp_path / "x.db", "CREATE TABLEX nonsense")
