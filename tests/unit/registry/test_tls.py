"""Our registry over TLS (`--tls-cert`), and the client's certificate checks: a CA from
certs.d/<host>/ca.crt is trusted, an unknown one refused; insecure registries skip the check."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dockyard.registry.client import Client, RegistryOptions, RegistryUnavailable
from dockyard.testing.registry import DockyardRegistry

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="requires openssl")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d


def test_tls_registry_verified_with_certs_d_and_insecure_without(cert, tmp_path):
    with DockyardRegistry(args=["--tls-cert", str(cert / "cert.pem"),
                                "--tls-key", str(cert / "key.pem")]) as reg:
        certs = tmp_path / "certs.d"
        (certs / reg.addr).mkdir(parents=True)
        shutil.copy(cert / "cert.pem", certs / reg.addr / "ca.crt")
        strict = RegistryOptions(certs_dirs=(str(certs),), loopback_insecure=False)
        for options in (strict, RegistryOptions(certs_dirs=())):  # trusted CA; insecure host
            client = Client(options)
            try:
                session = client.session(reg.addr)
                session.ping()
                assert session.base_url == f"https://{reg.addr}"
            finally:
                client.close()
        client = Client(RegistryOptions(certs_dirs=(), loopback_insecure=False))
        try:
            with pytest.raises(RegistryUnavailable, match="CERTIFICATE_VERIFY_FAILED|certificate"):
                client.session(reg.addr).ping()
        finally:
            client.close()
