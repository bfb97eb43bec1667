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


def _synchronous(db) -> int:
    with db.read() as conn:
        return conn.execute("PRAGMA synchronous").fetchone()[0]


def test_a_write_that_need_not_be_durable_commits_and_leaves_the_level_as_it_was(db, tmp_path):
    assert _synchronous(db) == 2  # FULL
    with db.write(durable=False) as conn:
        assert _synchronous(db) == 1  # NORMAL, for this commit only
        conn.execute("INSERT INTO t VALUES ('a', '1')")
    assert _synchronous(db) == 2
    with pytest.raises(RuntimeError):
        with db.write(durable=False) as conn:
            conn.execute("INSERT INTO t VALUES ('b', '2')")
            raise RuntimeError("half-way")
    assert _synchronous(db) == 2 and rows(db) == [("a", "1")]
    other = MetaDB(tmp_path / "sub" / "dockyard.db")  # another connection sees it committed
    try:
        with other.read() as conn:
            assert conn.execute("SELECT v FROM t WHERE k = 'a'").fetchone() == ("1",)
    finally:
        other.close()


def test_a_store_at_normal_stays_at_normal(tmp_path):
    db = MetaDB(tmp_path / "n.db", SCHEMA, synchronous="NORMAL")
    try:
        with db.write(durable=False) as conn:
            conn.execute("INSERT INTO t VALUES ('a', '1')")
        assert _synchronous(db) == 1
    finally:
        db.close()
