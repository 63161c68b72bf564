"""A real 3-server OneHA zone for the pyone compatibility suite.

The zone is bootstrapped by scripts/demo-zone.sh exactly as the HA guide says, in a temporary
directory, from the binaries in $ONEHA_BIN_DIR (default target/debug, built by .ci/run).
With ONEHA_TEST_BACKEND=mysql it runs on MySQL (demo-zone.sh start --mysql): a database per server
on the server of ONEHA_TEST_MYSQL, else on a mariadbd of its own.
"""

import os
import socket
import subprocess
import tempfile
import time

import pyone
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "demo-zone.sh")


def _free_ports(n, taken=()):
    # Below Linux's ephemeral range, so nothing else takes them while the zone starts.
    found = []
    start = 24000 + (os.getpid() % 500) * 13
    for port in list(range(start, 32000)) + list(range(24000, start)):
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == n:
            return found
    raise RuntimeError("no free ports")


class Zone:
    def __init__(self, directory, ports, tls_dir=None):
        self.directory = directory
        scheme = "https" if tls_dir else "http"
        self.endpoints = [f"{scheme}://127.0.0.1:{p}/RPC2" for p in ports]
        # The zone's CA certificate, with TLS on.
        self.ca_file = os.path.join(tls_dir, "ca.crt") if tls_dir else None
        with open(os.path.join(directory, "server-0", "var", ".one", "one_auth")) as f:
            self.session = f.readline().strip()

    def server(self, i, session=None):
        return pyone.OneServer(self.endpoints[i], session=session or self.session, timeout=30)

    def leader(self):
        """The index of the server reporting raftstatus STATE 3."""
        deadline = time.time() + 30
        while time.time() < deadline:
            for i in range(3):
                try:
                    if self.server(i).zone.raftstatus().STATE == 3:
                        return i
                except Exception:
                    pass
            time.sleep(0.1)
        raise AssertionError("no leader within 30 s")

    def followers(self):
        leader = self.leader()
        return [i for i in range(3) if i != leader]


def start_zone(tls_dir=None):
    """Starts a zone with scripts/demo-zone.sh; with `tls_dir`, over TLS with the demo CA made
    there (see ONEHA_TLS_DIR). Yields the Zone, then removes it."""
    top = tempfile.mkdtemp(prefix="oneha-pyone-")
    directory = os.path.join(top, "zone")
    env = dict(os.environ)
    env.update(
        ONEHA_DEMO_DIR=directory,
        ONEHA_NO_BUILD="1",
        ONEHA_BIN_DIR=os.environ.get("ONEHA_BIN_DIR", os.path.join(ROOT, "target", "debug")),
    )
    if tls_dir:
        env["ONEHA_TLS_DIR"] = tls_dir
    ports = _free_ports(3)
    for n, p in enumerate(ports):
        env[f"ONEHA_PORT{n}"] = str(p)
    start = [SCRIPT, "start"]
    if os.environ.get("ONEHA_TEST_BACKEND", "").lower() == "mysql":
        start.append("--mysql")
        if not os.environ.get("ONEHA_TEST_MYSQL"):
            # The zone's own mariadbd, on a port none of its servers takes.
            env["ONEHA_MYSQL_PORT"] = str(_free_ports(1, taken=ports)[0])
    try:
        # Inside the try: a failed start still stops what it started (mariadbd too).
        subprocess.run(start, env=env, check=True, stdout=subprocess.DEVNULL)
        yield Zone(directory, ports, tls_dir)
    finally:
        subprocess.run([SCRIPT, "clean"], env=env, check=False, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def zone():
    yield from start_zone()


def eventually(check, timeout=10.0):
    """Retries `check` until it returns without raising (followers apply asynchronously)."""
    deadline = time.time() + timeout
    while True:
        try:
            return check()
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
