"""A pyone session on a login token (one.user.login) outlives its leader: the token, issued
through one server, keeps working through another and, once the leader is killed, through the
survivors. The zone is this module's own, since the test kills one of its servers."""

import os
import signal
import time
import uuid

import pyone
import pytest

from conftest import eventually, start_zone


@pytest.fixture(scope="module")
def own_zone():
    yield from start_zone()


def _kill(zone, i):
    with open(os.path.join(zone.directory, f"server-{i}", "oned.pid")) as f:
        pid = int(f.read().strip())
    os.kill(pid, signal.SIGKILL)


def _new_leader(zone, survivors, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for i in survivors:
            try:
                if zone.server(i).zone.raftstatus().STATE == 3:
                    return i
            except Exception:
                pass
        time.sleep(0.1)
    raise AssertionError("no new leader among the survivors")


def test_a_token_session_keeps_working_after_the_leader_is_killed(own_zone):
    zone = own_zone
    leader = zone.leader()
    follower, other = [i for i in range(3) if i != leader]
    name = f"tok-{uuid.uuid4().hex[:8]}"
    uid = zone.server(leader).user.allocate(name, "pw", "", [])
    # Logged in through a follower (forwarded to the leader, replicated to all).
    token = eventually(lambda: zone.server(follower, session=f"{name}:pw").user.login(name, "", 3600, -1))
    session = f"{name}:{token}"
    me = eventually(lambda: zone.server(other, session=session).user.info(-1))
    assert me.ID == uid

    _kill(zone, leader)
    survivors = [follower, other]
    new = _new_leader(zone, survivors)
    assert new != leader
    for i in survivors:
        me = eventually(lambda: zone.server(i, session=session).user.info(-1), timeout=30)
        assert me.NAME == name
    # Writes on the token go through too: a template of the user's own.
    tid = eventually(
        lambda: zone.server(survivors[0], session=session).template.allocate(f'NAME = "t-{name}"\nCPU = 1\nMEMORY = 64'),
        timeout=30,
    )
    owner = eventually(lambda: zone.server(new, session=session).template.info(tid).UID)
    assert owner == uid
    # A wrong token is still refused after the failover.
    with pytest.raises(pyone.OneAuthenticationException):
        zone.server(new, session=f"{name}:{'0' * 64}").user.info(-1)
