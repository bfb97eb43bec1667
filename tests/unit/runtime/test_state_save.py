"""The state file keeps config.json's text for "spec" as read, and reads back as if encoded."""

import json

from dockyard.runtime import state as st
from dockyard.spec.runtime import read_spec


def test_spec_text_is_spliced_in(tmp_path):
    text = '\n { "ociVersion" : "1.2.0", "root": {"path": "r\u00e9"}, "linux": null,\n "x": [1, 2.5, true]}\n'
    cdir = st.ContainerDir(str(tmp_path), "c1")
    cdir.make()
    state = {"id": "c1", "pid": 0, "status": "creating", "spec": json.loads(text)}
    cdir.save(state, text)
    assert cdir.load() == state
    cdir.save({"spec": json.loads(text)}, text)
    assert cdir.load() == {"spec": json.loads(text)}
    cdir.save(state)  # without text: encoded as before
    assert cdir.load() == state


def test_read_spec_returns_what_it_read(tmp_path):
    cfg = tmp_path / "config.json"
    doc = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "hostname": None}
    cfg.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())  # a BOM, as before
    spec, data, text = read_spec(str(cfg))
    assert data == doc and json.loads(text) == doc and spec.root.path == "rootfs"
