"""pyone against a zone with TLS on (oned.conf TLS = [ CERT_FILE, KEY_FILE, CA_FILE ]).

pyone sends its calls with `requests`, which trusts its own CA bundle (certifi) unless told
otherwise: REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) in the environment, or `https_verify=<CA file>`.
OpenSSL's SSL_CERT_FILE is not read by `requests`.
"""

import shutil
import tempfile

import pyone
import pytest
import requests

from conftest import start_zone

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the demo zone's certificates are made with openssl"
)


@pytest.fixture(scope="module")
def tls_zone():
    tls_dir = tempfile.mkdtemp(prefix="oneha-pyone-tls-")
    yield from start_zone(tls_dir)
    shutil.rmtree(tls_dir, ignore_errors=True)


def test_pyone_over_https_with_the_zones_ca_in_requests_ca_bundle(tls_zone, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_zone.ca_file)
    leader = tls_zone.leader()
    assert tls_zone.endpoints[leader].startswith("https://")
    one = tls_zone.server(leader)
    uid = one.user.allocate("tls-user", "tls-password", "")
    assert one.user.info(uid).NAME == "tls-user"
    assert one.zone.raftstatus().STATE == 3


def test_pyone_over_https_with_https_verify_set_to_the_ca_file(tls_zone, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_zone.ca_file)
    follower = tls_zone.followers()[0]
    one = pyone.OneServer(
        tls_zone.endpoints[follower],
        session=tls_zone.session,
        timeout=30,
        https_verify=tls_zone.ca_file,
    )
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    # A write through a follower: forwarded to the leader over TLS.
    uid = one.user.allocate("tls-forwarded", "tls-password", "")
    assert uid >= 0
    assert one.user.info(uid).NAME == "tls-forwarded"


def test_pyone_refuses_a_server_it_cannot_verify(tls_zone, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        tls_zone.server(0).zone.raftstatus()
