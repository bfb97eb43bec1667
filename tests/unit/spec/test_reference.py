"""Image references: the grammar and normalisation of github.com/distribution/reference.

The tables follow that package's own test cases (reference_test.go, normalize_test.go), so a
divergence from Docker shows up as a failing row.
"""

import time

import pytest
from hypothesis import assume, example, given, strategies as hs

from dockyard.errdefs import InvalidArgument
from dockyard.spec.digest import Digest
from dockyard.spec.reference import (
    Reference, is_image_id, parse_any_reference, parse_docker_ref, parse_named,
    parse_normalized_named, parse_reference, parse_tag,
)

F64 = "f" * 64
SHA = f"sha256:{F64}"
SHA512 = "sha512:" + "f" * 128
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"


# -- parse_reference (distribution's Parse) --------------------------------------------------

@pytest.mark.parametrize("text, domain, path, tag, digest", [
    ("test_com", "", "test_com", None, None),
    ("test.com:tag", "", "test.com", "tag", None),
    ("test.com:5000", "", "test.com", "5000", None),
    ("test.com/repo:tag", "test.com", "repo", "tag", None),
    ("test:5000/repo", "test:5000", "repo", None, None),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
    (f"test:5000/repo@{SHA}", "test:5000", "repo", None, SHA),
    (f"test:5000/repo:tag@{SHA}", "test:5000", "repo", "tag", SHA),
    ("lowercase:Uppercase", "", "lowercase", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a", "a/" * 126 + "a", "tag-puts-this-over-max", None),
    ("a/" * 128 + "a:tag", "a", "a/" * 127 + "a", "tag", None),  # the limit is on the path alone
    ("example.com/" + "a" * 255 + ":tag", "example.com", "a" * 255, "tag", None),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app", "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}", "xn--7o8h.com", "myimage", "xn--7o8h.com", SHA512),
    ("foo_bar.com:8080", "", "foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "foo", "foo_bar.com", "8080", None),
    ("192.168.1.1", "", "192.168.1.1", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", None, None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", None),
    (f"[2001:db8::1]:5000/repo:tag@{SHA}", "[2001:db8::1]:5000", "repo", "tag", SHA),
    ("[::1]:5000/repo", "[::1]:5000", "repo", None, None),
    ("library/busybox", "library", "busybox", None, None),  # Parse alone knows no Docker Hub
    ("a__b/c---d/e.f_g", "", "a__b/c---d/e.f_g", None, None),
])
def test_parse_reference(text, domain, path, tag, digest):
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert str(ref) == text
    assert isinstance(ref.digest, (Digest, type(None)))


@pytest.mark.parametrize("text, message", [
    ("", "repository name must have at least one component"),
    (":justtag", "invalid reference format"),
    (f"@{SHA}", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    (f"validname@invaliddigest:{F64}", "unsupported digest algorithm"),
    ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("domain/" + "a" * 256 + ":tag", "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("[2001:db8::1]", "invalid reference format"),
    ("[2001:db8::1]:5000", "invalid reference format"),
    ("[fe80::1%eth0]:5000/repo", "invalid reference format"),
    ("repo:" + "t" * 129, "invalid reference format"),
    ("repo:-tag", "invalid reference format"),
    ("busybox\n", "invalid reference format"),  # Go's $ never matches before a newline
    ("busybox:tag\u00e9", "invalid reference format"),  # \w is ASCII, as in Go
    ("bus\u0443box", "invalid reference format"),
])
def test_parse_reference_errors(text, message):
    with pytest.raises(InvalidArgument) as exc:
        parse_reference(text)
    assert str(exc.value) == message


def test_name_length_counts_the_path_only():
    # distribution/reference >= v0.6 checks the path (the name without its domain), not the name
    path = "a" * 255
    assert parse_reference(f"registry.example.com/{path}").path == path
    with pytest.raises(InvalidArgument, match="255 characters"):
        parse_reference(f"registry.example.com/{path}a")


# -- parse_normalized_named ------------------------------------------------------------------

@pytest.mark.parametrize("text, full, familiar_name, domain, path", [
    ("busybox", "docker.io/library/busybox", "busybox", "docker.io", "library/busybox"),
    ("library/ubuntu", "docker.io/library/ubuntu", "ubuntu", "docker.io", "library/ubuntu"),
    ("docker.io/busybox", "docker.io/library/busybox", "busybox", "docker.io", "library/busybox"),
    ("index.docker.io/library/debian", "docker.io/library/debian", "debian", "docker.io", "library/debian"),
    ("index.docker.io/debian", "docker.io/library/debian", "debian", "docker.io", "library/debian"),
    ("user/repo", "docker.io/user/repo", "user/repo", "docker.io", "user/repo"),
    ("fooo/bar", "docker.io/fooo/bar", "fooo/bar", "docker.io", "fooo/bar"),
    ("other/library", "docker.io/other/library", "other/library", "docker.io", "other/library"),
    ("library/foo/bar", "docker.io/library/foo/bar", "library/foo/bar", "docker.io", "library/foo/bar"),
    ("store/foo/bar", "docker.io/store/foo/bar", "store/foo/bar", "docker.io", "store/foo/bar"),
    ("test_com/foo", "docker.io/test_com/foo", "test_com/foo", "docker.io", "test_com/foo"),
    ("localhost/x", "localhost/x", "localhost/x", "localhost", "x"),
    ("localhost:5000/x", "localhost:5000/x", "localhost:5000/x", "localhost:5000", "x"),
    ("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase",
     "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase"),
    ("example.com/privatebase", "example.com/privatebase", "example.com/privatebase", "example.com", "privatebase"),
    ("test-com:8080/foo", "test-com:8080/foo", "test-com:8080/foo", "test-com:8080", "foo"),
    ("[fc00::1]:5000/docker/docker", "[fc00::1]:5000/docker/docker", "[fc00::1]:5000/docker/docker",
     "[fc00::1]:5000", "docker/docker"),
    ("Foo/bar", "Foo/bar", "Foo/bar", "Foo", "bar"),  # an uppercase first part is a host
    ("DOCKER/docker", "DOCKER/docker", "DOCKER/docker", "DOCKER", "docker"),
    ("192.168.0.1", "docker.io/library/192.168.0.1", "192.168.0.1", "docker.io", "library/192.168.0.1"),
    (f"docker.io/{HEX64}", f"docker.io/library/{HEX64}", HEX64, "docker.io", f"library/{HEX64}"),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io",
     "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
])
def test_parse_normalized_named(text, full, familiar_name, domain, path):
    ref = parse_normalized_named(text)
    assert str(ref) == full
    assert ref.name == full
    assert ref.familiar_name == familiar_name
    assert (ref.domain, ref.path) == (domain, path)
    assert ref.tag is None and ref.digest is None  # no default tag here


def test_tags_and_digests_survive_normalization():
    text = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = parse_normalized_named(text)
    assert str(ref) == "docker.io/library/" + text
    assert ref.familiar() == text
    assert ref.tag == "latest" and ref.digest.algorithm == "sha256"
    assert parse_normalized_named("localhost:5000/x:1.0").familiar() == "localhost:5000/x:1.0"
    assert parse_normalized_named("host:5000/repo:tag").tag == "tag"


@pytest.mark.parametrize("text, message", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("docker/Docker", "invalid reference format: repository name (docker/Docker) must be lowercase"),
    ("docker.io/docker/Docker", "invalid reference format: repository name (docker/Docker) must be lowercase"),
    ("Uppercase@sha256:" + F64, "invalid reference format: repository name (library/Uppercase@sha256) must be lowercase"),
    (HEX64, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
    ("https://github.com/docker/docker", "invalid reference format"),
    ("-docker", "invalid reference format"),
    ("-docker/docker", "invalid reference format"),
    ("docker-/docker", "invalid reference format"),
    ("docker///docker", "invalid reference format"),
    ("____/____", "invalid reference format"),
    ("dock..er/docker", "invalid reference format"),
    ("dock_.er/docker", "invalid reference format"),
    ("docker/", "invalid reference format"),
    ("[fc00::1]", "invalid reference format"),
    ("fc00::1:5000/debian", "invalid reference format"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format"),
    ("", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("n" * 250 + "/docker", "repository name must not be more than 255 characters"),
])
def test_parse_normalized_named_errors(text, message):
    with pytest.raises(InvalidArgument) as exc:
        parse_normalized_named(text)
    assert str(exc.value) == message


# -- helpers on Reference --------------------------------------------------------------------

def test_default_tag_only_without_tag_or_digest():
    assert str(parse_normalized_named("busybox").with_default_tag()) == "docker.io/library/busybox:latest"
    assert parse_normalized_named("busybox:1.36").with_default_tag().tag == "1.36"
    digested = parse_normalized_named(f"busybox@{SHA}")
    assert digested.with_default_tag() == digested


def test_with_tag_and_digest_keep_the_other_part():
    ref = parse_normalized_named(f"test.com:8000/foo@{SHA}")
    assert str(ref.with_tag("TAG5")) == f"test.com:8000/foo:TAG5@{SHA}"
    tagged = parse_normalized_named("test.com/foo:tag")
    assert str(tagged.with_digest(SHA)) == f"test.com/foo:tag@{SHA}"
    assert str(tagged.trimmed()) == "test.com/foo"
    with pytest.raises(InvalidArgument, match="invalid tag format"):
        ref.with_tag("-foo")
    with pytest.raises(InvalidArgument, match="digest"):
        ref.with_digest("foo")


def test_reference_is_frozen_and_hashable():
    a, b = parse_normalized_named("busybox:1"), parse_normalized_named("docker.io/library/busybox:1")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.tag = "2"


def test_parse_docker_ref():
    assert str(parse_docker_ref("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse_docker_ref("busybox:1")) == "docker.io/library/busybox:1"
    both = parse_docker_ref(f"busybox:latest@{SHA}")
    assert str(both) == f"docker.io/library/busybox@{SHA}" and both.tag is None


def test_parse_named_wants_canonical_form():
    assert str(parse_named("docker.io/library/busybox:1")) == "docker.io/library/busybox:1"
    with pytest.raises(InvalidArgument, match="repository name must be canonical"):
        parse_named("busybox:1")


def test_parse_any_reference():
    assert parse_any_reference(HEX64) == Digest(f"sha256:{HEX64}")
    assert parse_any_reference(f"sha256:{HEX64}") == Digest(f"sha256:{HEX64}")
    assert str(parse_any_reference(HEX64[:-1])) == f"docker.io/library/{HEX64[:-1]}"
    assert str(parse_any_reference("dbcc1")) == "docker.io/library/dbcc1"
    assert str(parse_any_reference("redis:latest")) == "docker.io/library/redis:latest"


def test_image_ids_and_tags():
    assert is_image_id(HEX64)
    assert not is_image_id(HEX64.upper()) and not is_image_id(HEX64[:-1]) and not is_image_id(f"sha256:{HEX64}")
    assert not is_image_id(HEX64 + "\n")
    assert parse_tag("v1.0_rc-2") == "v1.0_rc-2"
    for bad in ("", ".x", "-x", "t" * 129, "a b", "é"):
        with pytest.raises(InvalidArgument, match="invalid tag format"):
            parse_tag(bad)


def test_pathological_input_is_fast():
    for text in ("a" * 20000 + "!", "a-" * 10000 + "!", "a." * 10000 + "/", "a/" * 10000 + ":",
                 "[" + ":" * 10000, "a" * 5000 + ":" + "b" * 5000 + "@"):
        # CPU time, not wall time: a loaded machine's waits for a CPU are not the parser's
        start = time.process_time()
        with pytest.raises(InvalidArgument):
            parse_normalized_named(text)
        assert time.process_time() - start < 0.5, text[:20]


# -- properties ------------------------------------------------------------------------------

_alnum = hs.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
_sep = hs.sampled_from([".", "_", "__", "-", "---"])
_component = hs.builds(lambda first, rest: first + "".join(s + a for s, a in rest),
                       _alnum, hs.lists(hs.tuples(_sep, _alnum), max_size=2))
_path = hs.lists(_component, min_size=1, max_size=3).map("/".join)
_host_label = hs.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?", fullmatch=True)
_port = hs.integers(1, 65535).map(lambda p: f":{p}")
_dotted = hs.lists(_host_label, min_size=2, max_size=3).map(".".join)
# Hosts that Docker's normalisation also recognises as hosts (a dot, a port, or localhost).
_domain = hs.one_of(
    hs.builds(lambda h, p: h + p, _dotted, hs.just("") | _port),
    hs.builds(lambda h, p: h + p, _host_label, _port),
    hs.sampled_from(["localhost", "localhost:5000", "[::1]:5000", "[2001:db8::1]"]),
)
_tag = hs.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = hs.binary(max_size=8).map(Digest.from_bytes)


@hs.composite
def references(draw, domain=_domain):
    return Reference(draw(domain), draw(_path), draw(hs.none() | _tag), draw(hs.none() | _digest))


@given(references())
def test_generated_references_round_trip(ref):
    assume(len(ref.path) <= 255)
    assert parse_reference(str(ref)) == ref
    assert parse_normalized_named(str(ref)) == ref
    assert parse_normalized_named(ref.familiar()) == ref


@given(references(domain=hs.just("docker.io")))
def test_docker_hub_references_round_trip_through_familiar_form(ref):
    if "/" not in ref.path:
        ref = Reference(ref.domain, "library/" + ref.path, ref.tag, ref.digest)
    first = ref.familiar_name.split("/")[0]
    # A familiar name whose first part looks like a host is read as one: Docker's ambiguity.
    assume("/" not in ref.familiar_name or ("." not in first and first != "localhost"))
    assume(len(ref.path) <= 255 and not is_image_id(ref.familiar_name))
    assert parse_normalized_named(ref.familiar()) == ref
    assert parse_normalized_named(str(ref)) == ref
    assert not ref.familiar().startswith("docker.io/")


_PARSERS = (parse_reference, parse_normalized_named, parse_docker_ref, parse_any_reference, parse_named)


@given(hs.text(max_size=60) | hs.text(alphabet="abAB09:/@._-[]%sha256f ", max_size=90))
@example("localhost:5000/" + "a" * 300)
@example("ab:12/cd:ef@sha256:" + F64)
def test_arbitrary_text_only_raises_invalid_argument(text):
    for parse in _PARSERS:
        try:
            result = parse(text)
        except InvalidArgument:
            continue
        if parse is parse_reference:
            assert str(result) == text  # whatever parses prints back identically
