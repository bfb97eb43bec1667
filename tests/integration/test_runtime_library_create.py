"""The runtime library's create as the monitor's start helper calls it: with config.json as the
helper has already read it (`create(config=...)`, not read and decoded again), in a process that
warmed up ahead (`container.warm_up`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dockyard.engine.monitor import runtimes as R
from dockyard.errdefs import AlreadyExists, InvalidArgument
from dockyard.runtime import state as st
from dockyard.runtime.container import Runtime

pytestmark = pytest.mark.requires("busybox")


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(str(tmp_path / "state"))
    made: list[str] = []
    yield rt, made
    for cid in made:
        rt.delete(cid, force=True)


def _run(rt: Runtime, cid: str, bundle, config) -> int:
    """create (with ``config``), start, wait: the exit status."""
    pid = rt.create(cid, str(bundle), config=config)
    assert pid > 1
    rt.start(cid)
    _, status = os.waitpid(pid, 0)  # create made us the subreaper: the init is our child
    return os.waitstatus_to_exitcode(status)


def test_create_takes_the_config_the_caller_read(runtime, bundle_factory):
    rt, made = runtime
    b = bundle_factory(["sh", "-c", "exit 7"])
    config, text = R.read_config_text(str(b))
    (b / "config.json").write_text("{ not json")  # not read again
    made.append("lib1")
    assert _run(rt, "lib1", b, (config, text)) == 7
    with open(os.path.join(rt.root, "lib1", st.STATE_FILE)) as f:
        saved = json.load(f)
    assert saved["spec"] == config  # the text as read is the state's spec
    assert rt.state("lib1")["status"] == "stopped"


def test_a_config_the_caller_read_is_validated_as_config_json_is(runtime, bundle_factory):
    rt, _ = runtime
    b = bundle_factory(["true"])
    config, text = R.read_config_text(str(b))
    config["process"]["cwd"] = "relative"
    with pytest.raises(InvalidArgument, match="process.cwd"):
        rt.create("lib2", str(b), config=(config, json.dumps(config)))
    assert not os.path.exists(os.path.join(rt.root, "lib2"))
    (b / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidArgument, match="process.cwd"):  # the same error as from the file
        rt.create("lib2", str(b))


def test_read_config_text_errors_name_the_file(tmp_path):
    with pytest.raises(InvalidArgument, match=f"config.json: {tmp_path}/config.json: .*No such file"):
        R.read_config_text(str(tmp_path))
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(InvalidArgument, match="not a JSON object"):
        R.read_config_text(str(tmp_path))
    (tmp_path / "config.json").write_bytes(b'\xef\xbb\xbf{"ociVersion": "1.2.0"}')  # a BOM
    assert R.read_config_text(str(tmp_path)) == ({"ociVersion": "1.2.0"}, '{"ociVersion": "1.2.0"}')
    assert R.read_config(str(tmp_path)) == {"ociVersion": "1.2.0"}


def test_the_state_directory_is_made_with_its_root(tmp_path):
    root = tmp_path / "a" / "b"
    cdir = st.ContainerDir(str(root), "c1")
    cdir.make()  # the root is made too (the runtime's first container)
    assert (root / "c1").is_dir() and oct(root.stat().st_mode & 0o777) == "0o711"
    with pytest.raises(AlreadyExists, match="container with id exists: c1"):
        cdir.make()
    st.ContainerDir(str(root), "c2").make()
    assert sorted(p.name for p in root.iterdir()) == ["c1", "c2"]


def test_warm_up_compiles_the_spec_decoders_ahead():
    code = ("from dockyard.spec import codec\n"
            "from dockyard.spec.runtime import Spec\n"
            "from dockyard.runtime.container import warm_up\n"
            "assert Spec not in codec._decoders\n"
            "warm_up()\n"
            "assert Spec in codec._decoders\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
