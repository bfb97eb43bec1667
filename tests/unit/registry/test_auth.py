"""Auth pieces without a network: WWW-Authenticate parsing, Basic credentials, htpasswd,
the token service's tokens, X-Registry-Auth, which registries are insecure."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from hypothesis import given, strategies as st

from dockyard.registry.auth import (Challenge, Htpasswd, TokenAuth, basic_header, bcrypt_entry,
                                    parse_basic, parse_challenges)
from dockyard.registry.client import AuthConfig, RegistryOptions
from dockyard.registry.errors import RegistryError


def test_bearer_challenge_as_docker_hub_sends_it():
    value = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
             'scope="repository:library/busybox:pull"')
    assert parse_challenges(value) == [Challenge("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull"})]


def test_several_challenges_escapes_and_bare_tokens():
    value = 'Basic realm="a, b", Bearer realm="x\\"y", error=insufficient_scope'
    assert parse_challenges(value) == [
        Challenge("basic", {"realm": "a, b"}),
        Challenge("bearer", {"realm": 'x"y', "error": "insufficient_scope"})]
    assert parse_challenges("") == []
    assert parse_challenges("Basic") == [Challenge("basic", {})]


@given(st.dictionaries(st.sampled_from(["realm", "service", "scope", "error"]),
                       st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
                       min_size=1))
def test_quoted_params_round_trip(params):
    quoted = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                      for k, v in params.items())
    assert parse_challenges(f"Bearer {quoted}") == [Challenge("bearer", params)]


def test_basic_credentials():
    assert parse_basic(basic_header("u", "p:w")) == ("u", "p:w")
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Bearer x") is None
    assert parse_basic(None) is None


def test_htpasswd_bcrypt_and_sha(tmp_path):
    sha = base64.b64encode(hashlib.sha1(b"pw2").digest()).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"{bcrypt_entry('alice', 'pw1')}\n# comment\nbob:{{SHA}}{sha}\nmallory:plain\n")
    h = Htpasswd(path)
    assert h.check("alice", "pw1") and not h.check("alice", "pw2")
    assert h.check("bob", "pw2") and not h.check("bob", "pw1")
    assert not h.check("mallory", "plain")  # plain text entries are never accepted
    assert not h.check("nobody", "pw1")


def test_token_service_grants_scopes_and_the_registry_checks_them(tmp_path):
    path = tmp_path / "htpasswd"
    path.write_text(bcrypt_entry("alice", "pw") + "\n")
    auth = TokenAuth(Htpasswd(path), "http://r/token")
    creds = {"authorization": basic_header("alice", "pw")}
    token = auth.issue(creds, ["repository:a/b:pull,push"], "dockyard-registry")["token"]
    auth.authorize({"authorization": f"Bearer {token}"}, "a/b", "pull,push")
    with pytest.raises(RegistryError) as err:
        auth.authorize({"authorization": f"Bearer {token}"}, "other", "pull")
    assert err.value.status == 401 and 'error="insufficient_scope"' in err.value.headers[0][1]
    with pytest.raises(RegistryError):
        auth.authorize({"authorization": f"Bearer {token[:-2]}xx"}, "a/b", "pull")
    with pytest.raises(RegistryError) as err:
        auth.issue({"authorization": basic_header("alice", "bad")}, [], None)
    assert err.value.status == 401
    with pytest.raises(RegistryError):  # anonymous users get nothing without anonymous_pull
        auth.issue({}, ["repository:a/b:pull"], None)
    expired = auth.sign({"aud": auth.service, "nbf": 0, "exp": time.time() - 1,
                         "access": [{"type": "repository", "name": "a/b", "actions": ["pull"]}]})
    assert auth.verify(expired) is None


def test_anonymous_pull_only_pulls():
    auth = TokenAuth(None, "http://r/token", anonymous_pull=True)
    token = auth.issue({}, ["repository:a/b:pull,push"], None)["token"]
    auth.authorize({"authorization": f"Bearer {token}"}, "a/b", "pull")
    with pytest.raises(RegistryError):
        auth.authorize({"authorization": f"Bearer {token}"}, "a/b", "pull,push")


def test_x_registry_auth_header():
    doc = {"username": "u", "password": "p", "serveraddress": "127.0.0.1:5000"}
    value = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    auth = AuthConfig.from_header(value)
    assert (auth.username, auth.password, auth.server_address) == ("u", "p", "127.0.0.1:5000")
    assert AuthConfig.from_header("not base64 json!") is None
    assert AuthConfig.from_header("e30").empty  # "{}"


def test_insecure_registries_as_dockerd_decides():
    opts = RegistryOptions(insecure=["myreg:5000", "10.1.0.0/16"])
    assert opts.is_insecure("127.0.0.1:5000") and opts.is_insecure("localhost:1")
    assert opts.is_insecure("myreg:5000") and opts.is_insecure("10.1.2.3:443")
    assert not opts.is_insecure("registry-1.docker.io") and not opts.is_insecure("10.2.0.1")
