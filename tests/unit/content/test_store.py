"""The content store on a temp directory: ingest, verify, commit, resume, labels, gc, leases."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dockyard.content.gc import GC_REF_CONTENT_PREFIX, GC_ROOT_LABEL
from dockyard.content.store import ContentStore
from dockyard.errdefs import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.spec.digest import Digest

DATA = bytes(range(256)) * 1024  # 256 KiB
DATA_DIGEST = Digest.from_bytes(DATA)


@pytest.fixture
def store(tmp_path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def blob_files(store: ContentStore) -> list[Path]:
    return sorted(p for p in (store.root / "blobs").rglob("*") if p.is_file())


def test_ingest_bytes_then_read_info_walk_delete(store):
    d = store.ingest_bytes(b"hello")
    assert d == Digest.from_bytes(b"hello")
    assert store.root.joinpath("blobs", "sha256", d.hex).read_bytes() == b"hello"
    assert store.exists(d) and store.read(d) == b"hello"
    with store.open(d) as f:
        assert f.read() == b"hello"
    info = store.info(d)
    assert (info.digest, info.size, info.labels) == (d, 5, {})
    assert info.created <= info.updated <= time.time()
    assert list(store.walk()) == [d]
    store.delete(d)
    assert not store.exists(d) and list(store.walk()) == []
    with pytest.raises(NotFound):
        store.delete(d)


def test_blob_is_read_only_and_ingest_dir_is_gone(store):
    store.ingest_bytes(b"x")
    (path,) = blob_files(store)
    assert path.stat().st_mode & 0o777 == 0o444
    assert list((store.root / "ingest").iterdir()) == []


def test_missing_and_invalid_digests(store):
    missing = Digest.from_bytes(b"nope")
    for call in (store.info, store.open, store.read):
        with pytest.raises(NotFound):
            call(missing)
    with pytest.raises(InvalidArgument):
        store.info("sha256:short")


def test_read_has_a_size_guard(store):
    d = store.ingest_bytes(b"0123456789")
    with pytest.raises(InvalidArgument, match="exceeds"):
        store.read(d, max_size=9)
    assert store.read(d, max_size=10) == b"0123456789"


def test_writer_in_chunks_with_status(store):
    with store.writer("pull-1", DATA_DIGEST, len(DATA)) as w:
        w.write(DATA[:1000])
        w.write(memoryview(DATA)[1000:5000])
        st = store.status("pull-1")
        assert (st.ref, st.offset, st.total, st.expected) == ("pull-1", 5000, len(DATA), DATA_DIGEST)
        assert [s.ref for s in store.list_ingests()] == ["pull-1"]
        w.write(DATA[5000:])
        assert w.commit() == DATA_DIGEST
    assert store.read(DATA_DIGEST) == DATA
    assert store.list_ingests() == []
    with pytest.raises(NotFound):
        store.status("pull-1")


@pytest.mark.parametrize("expected, size, message", [
    (Digest.from_bytes(b"other"), None, "digest mismatch"),
    (None, len(DATA) + 1, "size mismatch"),
])
def test_mismatch_leaves_nothing(store, expected, size, message):
    w = store.writer("bad")
    w.write(DATA)
    with pytest.raises(InvalidArgument, match=message):
        w.commit(expected, size)
    assert blob_files(store) == []
    assert list((store.root / "ingest").iterdir()) == []
    with pytest.raises(Conflict):  # the writer is finished
        w.write(b"more")


def test_mismatch_against_digest_given_at_start(store):
    w = store.writer("bad", Digest.from_bytes(b"something else"))
    w.write(b"data")
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        w.commit()
    assert blob_files(store) == []


def test_ingest_bytes_checks_expected(store):
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.ingest_bytes(b"abc", Digest.from_bytes(b"abd"))
    assert blob_files(store) == []


def test_sha512_blobs(store):
    d = Digest.from_bytes(b"abc", "sha512")
    assert store.ingest_bytes(b"abc", d) == d
    assert store.root.joinpath("blobs", "sha512", d.hex).exists()
    assert store.read(d) == b"abc" and d in list(store.walk())


def test_commit_of_existing_blob_is_harmless(store):
    d = store.ingest_bytes(DATA)
    w = store.writer("again")  # no expected digest: the store cannot know in advance
    w.write(DATA)
    assert w.commit(d, len(DATA)) == d
    assert store.read(d) == DATA and store.list_ingests() == []


def test_writer_for_existing_digest_says_already_exists(store):
    d = store.ingest_bytes(b"abc")
    with pytest.raises(AlreadyExists):
        store.writer("r", d)
    assert store.ingest_bytes(b"abc", d) == d  # the convenience functions treat it as success


def test_second_writer_on_same_ref_conflicts(store):
    w = store.writer("ref")
    with pytest.raises(Conflict):
        store.writer("ref")
    with pytest.raises(Conflict):  # a second store object (another thread or process) too
        ContentStore(store.root).writer("ref")
    w.close()
    w2 = store.writer("ref")  # free again once closed
    w2.abort()


def test_concurrent_writers_from_threads(store):
    """Four threads race for one ref: one writes and commits, the other three get Conflict."""
    outcomes: list[str] = []
    tried = threading.Semaphore(0)
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            w = store.writer("shared")
        except Conflict:
            outcomes.append("conflict")
            tried.release()
            return
        for _ in range(3):  # hold the ref until every other thread has tried
            assert tried.acquire(timeout=10)
        w.write(b"payload")
        w.commit()
        outcomes.append("committed")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["committed", "conflict", "conflict", "conflict"]
    assert store.read(Digest.from_bytes(b"payload")) == b"payload"


def test_resume_after_dropping_the_writer(store):
    half = len(DATA) // 2
    w = store.writer("resume-me", DATA_DIGEST, len(DATA))
    w.write(DATA[:half])
    del w  # as if the process died: no close, no commit

    reopened = ContentStore(store.root)
    assert reopened.status("resume-me").offset == half
    w = reopened.writer("resume-me", DATA_DIGEST, len(DATA))
    assert w.offset == half
    w.write(DATA[w.offset:])
    assert w.commit() == DATA_DIGEST  # the digest covers the bytes from before the "crash"
    assert reopened.read(DATA_DIGEST) == DATA


def test_resume_after_a_real_crash(store):
    """A child process writes part of a blob and dies without cleaning up."""
    half = 100_000
    script = (
        "import os, sys\n"
        "from dockyard.content.store import ContentStore\n"
        "w = ContentStore(sys.argv[1]).writer('crashy', size=int(sys.argv[2]))\n"
        f"w.write((bytes(range(256)) * 1024)[:{half}])\n"
        "os._exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(store.root), str(len(DATA))],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3, proc.stderr
    store = ContentStore(store.root)
    (status,) = store.list_ingests()
    assert (status.ref, status.offset, status.total) == ("crashy", half, len(DATA))
    w = store.writer("crashy")
    w.write(DATA[w.offset:])
    assert w.commit(DATA_DIGEST) == DATA_DIGEST


def test_resume_with_different_size_is_refused(store):
    store.writer("r", size=10).close()
    with pytest.raises(InvalidArgument):
        store.writer("r", size=11)


def test_ingest_file_resumes_a_seekable_source(store, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(DATA)
    w = store.writer(f"ingest-{DATA_DIGEST}", DATA_DIGEST)
    w.write(DATA[:1234])
    w.close()
    with open(src, "rb") as f:
        assert store.ingest_file(f, DATA_DIGEST, len(DATA)) == DATA_DIGEST
    assert store.read(DATA_DIGEST) == DATA


def test_truncate_restarts(store):
    w = store.writer("t")
    w.write(b"garbage")
    w.truncate()
    w.write(b"good")
    assert w.commit() == Digest.from_bytes(b"good")


def test_abort_and_stale_ingests(store):
    w = store.writer("active")
    w.write(b"a")
    store.writer("idle").close()
    store.writer("old").close()
    old_data = store._ingest_path("old") / "data"
    os.utime(old_data, (time.time() - 7200, time.time() - 7200))
    with pytest.raises(Conflict):
        store.abort("active")
    assert store.abort_stale_ingests(3600) == ["old"]
    store.abort("idle")
    with pytest.raises(NotFound):
        store.abort("idle")
    assert [s.ref for s in store.list_ingests()] == ["active"]
    w.abort()
    assert store.list_ingests() == []


def test_labels_round_trip(store):
    d = store.ingest_bytes(b"m")
    info = store.set_labels(d, {"a": "1", "b": "2"})
    assert info.labels == {"a": "1", "b": "2"}
    assert ContentStore(store.root).info(d).labels == {"a": "1", "b": "2"}
    assert list(store.walk()) == [d]  # the sidecar is not a blob
    assert store.set_labels(d, {}).labels == {}
    with pytest.raises(InvalidArgument):
        store.set_labels(d, {"a": 1})
    with pytest.raises(NotFound):
        store.set_labels(Digest.from_bytes(b"missing"), {"a": "1"})


def test_commit_with_labels(store):
    w = store.writer("l")
    w.write(b"z")
    d = w.commit(labels={"k": "v"})
    assert store.info(d).labels == {"k": "v"}


def test_open_repairs_leftovers(store):
    d = store.ingest_bytes(b"keep")
    stray = store.root / "blobs" / "sha256" / ".tmp-half-written"
    stray.write_bytes(b"half")
    broken_ingest = store.root / "ingest" / ("0" * 64)
    broken_ingest.mkdir()
    (broken_ingest / "data").write_bytes(b"no meta")
    store.writer("resumable").close()

    reopened = ContentStore(store.root)
    assert not stray.exists() and not broken_ingest.exists()
    assert list(reopened.walk()) == [d]
    assert [s.ref for s in reopened.list_ingests()] == ["resumable"]


# -- garbage collection ---------------------------------------------------------------------


def graph(store: ContentStore) -> dict[str, Digest]:
    """index -> manifest -> (config, layer); plus an orphan."""
    names = {n: store.ingest_bytes(n.encode()) for n in ("config", "layer", "orphan")}
    names["manifest"] = store.ingest_bytes(f"manifest {names['config']} {names['layer']}".encode())
    names["index"] = store.ingest_bytes(f"index {names['manifest']}".encode())
    return names


def refs_of(store: ContentStore):
    def refs(d: Digest) -> list[str]:
        kind, *targets = store.read(d).decode().split()
        return targets if kind in ("manifest", "index") else []
    return refs


def test_gc_follows_references(store):
    g = graph(store)
    assert store.gc({g["index"]}, refs_of(store)) == [g["orphan"]]
    assert set(store.walk()) == {g[n] for n in ("index", "manifest", "config", "layer")}
    removed = store.gc(set(), refs_of(store))
    assert set(removed) == {g[n] for n in ("index", "manifest", "config", "layer")}
    assert list(store.walk()) == []


def test_gc_roots_may_be_missing(store):
    g = graph(store)
    assert g["orphan"] in store.gc({Digest.from_bytes(b"not here"), g["index"]}, refs_of(store))


def test_gc_labels_are_roots_and_references(store):
    g = graph(store)
    store.set_labels(g["config"], {GC_ROOT_LABEL: "2024-01-01T00:00:00Z",
                                   f"{GC_REF_CONTENT_PREFIX}.l.0": g["layer"]})
    removed = store.gc(set())  # no refs callable: labels only
    assert set(removed) == {g["index"], g["manifest"], g["orphan"]}
    assert set(store.walk()) == {g["config"], g["layer"]}
    assert not (store.root / "labels" / "sha256" / f"{g['orphan'].hex}.json").exists()


def test_lease_protects_added_and_committed_blobs(store):
    g = graph(store)
    with store.lease() as lease:
        lease.add(g["orphan"])
        committed = store.ingest_bytes(b"pulled inside the lease")  # added implicitly
        assert lease.digests() == {g["orphan"], committed}
        assert store.gc({g["index"]}, refs_of(store)) == []
    assert set(store.gc({g["index"]}, refs_of(store))) == {g["orphan"], committed}
    assert list((store.root / "leases").iterdir()) == []


def test_existing_blob_joins_the_lease(store):
    d = store.ingest_bytes(b"already here")
    with store.lease() as lease:
        assert store.ingest_bytes(b"already here") == d
        assert lease.digests() == {d}


def test_lease_of_a_dead_process_is_ignored(store):
    d = store.ingest_bytes(b"leased by the dead")
    (store.root / "leases" / "deadbeef").write_text(f"{d}\n")  # nobody holds its lock
    assert store.gc(set()) == [d]
    assert list((store.root / "leases").iterdir()) == []


def test_lease_in_another_process_is_honoured(store):
    d = store.ingest_bytes(b"leased elsewhere")
    script = (
        "import sys\n"
        "from dockyard.content.store import ContentStore\n"
        "s = ContentStore(sys.argv[1])\n"
        "with s.lease() as lease:\n"
        "    lease.add(sys.argv[2])\n"
        "    print('ready', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(store.root), d],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert store.gc(set()) == []
    finally:
        proc.communicate("go\n", timeout=30)
    assert store.gc(set()) == [d]
