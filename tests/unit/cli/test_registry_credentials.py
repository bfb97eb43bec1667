"""Logins in the docker CLI's config.json: plain ``auths`` entries and credential helpers
(``docker-credential-<name>`` get/store/erase over stdin/stdout, as the docker CLI runs them)."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys

import pytest

from dockyard.cli.client import CLIConfig
from dockyard.cli.command import Ctx
from dockyard.cli.registry import (INDEX_SERVER, erase_credentials, get_credentials,
                                   registry_auth_header, server_key, store_credentials)

HELPER = r'''#!PYTHON
import json, os, sys
path = os.environ["HELPER_STORE"]
data = json.load(open(path)) if os.path.exists(path) else {}
action, text = sys.argv[1], sys.stdin.read()
if action == "store":
    doc = json.loads(text)
    data[doc["ServerURL"]] = doc
elif action == "get":
    if text.strip() not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(data[text.strip()]))
elif action == "erase":
    data.pop(text.strip(), None)
json.dump(data, open(path, "w"))
'''


def _ctx(tmp_path) -> Ctx:
    return Ctx(daemon=None, config=CLIConfig(tmp_path / "cfg" / "config.json"))


def test_plain_auths_round_trip(tmp_path):
    ctx = _ctx(tmp_path)
    store_credentials(ctx, "127.0.0.1:5000", "alice", "pw:with:colons", "")
    doc = json.loads(ctx.config.path.read_text())
    assert base64.b64decode(doc["auths"]["127.0.0.1:5000"]["auth"]) == b"alice:pw:with:colons"
    assert stat.S_IMODE(os.stat(ctx.config.path).st_mode) == 0o600
    assert get_credentials(ctx, "127.0.0.1:5000") == {
        "serveraddress": "127.0.0.1:5000", "username": "alice", "password": "pw:with:colons"}
    header = json.loads(base64.urlsafe_b64decode(registry_auth_header(
        get_credentials(ctx, "127.0.0.1:5000"))))
    assert header["username"] == "alice"
    assert erase_credentials(ctx, "127.0.0.1:5000")
    assert get_credentials(ctx, "127.0.0.1:5000") == {}
    assert not erase_credentials(ctx, "127.0.0.1:5000")
    assert server_key("docker.io") == INDEX_SERVER


def test_credential_helper(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-testhelper"
    helper.write_text(HELPER.replace("PYTHON", sys.executable))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("HELPER_STORE", str(tmp_path / "store.json"))
    ctx = _ctx(tmp_path)
    ctx.config.path.parent.mkdir(parents=True)
    ctx.config.path.write_text(json.dumps({"credsStore": "testhelper"}))
    assert get_credentials(ctx, "reg.example") == {}
    store_credentials(ctx, "reg.example", "bob", "secret", "")
    stored = json.loads((tmp_path / "store.json").read_text())
    assert stored["reg.example"] == {"ServerURL": "reg.example", "Username": "bob",
                                     "Secret": "secret"}
    config = json.loads(ctx.config.path.read_text())
    assert config["auths"] == {"reg.example": {}}  # no secret in the file itself
    assert get_credentials(ctx, "reg.example")["password"] == "secret"
    assert erase_credentials(ctx, "reg.example")
    assert json.loads((tmp_path / "store.json").read_text()) == {}
    ctx.config.path.write_text(json.dumps({"credsStore": "missing"}))
    with pytest.raises(Exception, match="docker-credential-missing"):
        get_credentials(ctx, "reg.example")
