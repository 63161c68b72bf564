"""pyone against a 3-server OneHA zone: zones, raft status, users, errors, HA routing."""

import uuid

import pyone
import pytest

from conftest import eventually


def test_system_version_and_config(zone):
    one = zone.server(0)
    assert one.system.version()
    assert one.system.config() is not None


def test_zone_shows_three_servers_and_one_leader(zone):
    one = zone.server(0)
    z = one.zone.info(0)
    assert z.ID == 0 and z.NAME == "OpenNebula"
    servers = z.SERVER_POOL.SERVER
    assert [s.ID for s in servers] == [0, 1, 2]
    states = [zone.server(i).zone.raftstatus().STATE for i in range(3)]
    assert sorted(states) == [2, 2, 3]
    pool = one.zonepool.info()
    assert [z.ID for z in pool.ZONE] == [0]


def test_user_created_on_a_follower_is_read_on_every_server(zone):
    follower = zone.followers()[0]
    name = f"py-{uuid.uuid4().hex[:8]}"
    uid = zone.server(follower).user.allocate(name, "secret", "", [])
    assert isinstance(uid, int) and uid > 1
    for i in range(3):
        user = eventually(lambda: zone.server(i).user.info(uid))
        assert user.NAME == name
        assert user.GID == 1
    names = [u.NAME for u in zone.server(0).userpool.info().USER]
    assert "oneadmin" in names and name in eventually(
        lambda: [u.NAME for u in zone.server(follower).userpool.info().USER]
    )


def test_user_template_update_merges_through_pyone_dicts(zone):
    one = zone.server(zone.leader())
    uid = one.user.allocate(f"tpl-{uuid.uuid4().hex[:8]}", "pw", "", [])
    one.user.update(uid, {"TEMPLATE": {"COLOR": "blue", "REG": "1"}}, 1)
    one.user.update(uid, {"TEMPLATE": {"REG": "2"}}, 1)
    template = one.user.info(uid).TEMPLATE
    assert template["COLOR"] == "blue"
    assert template["REG"] == "2"


def test_errors_map_to_pyone_exceptions(zone):
    one = zone.server(0)
    with pytest.raises(pyone.OneNoExistsException):
        one.user.info(99999)
    with pytest.raises(pyone.OneAuthenticationException):
        zone.server(0, session="oneadmin:wrong").user.info(0)
    name = f"plain-{uuid.uuid4().hex[:8]}"
    uid = zone.server(zone.leader()).user.allocate(name, "pw", "", [])
    eventually(lambda: zone.server(1).user.info(uid))
    plain = zone.server(1, session=f"{name}:pw")
    assert plain.user.info(uid).NAME == name
    with pytest.raises(pyone.OneAuthorizationException):
        plain.user.allocate("not-allowed", "pw", "", [])
    with pytest.raises(pyone.OneAuthorizationException):
        plain.user.info(0)


def test_password_change_and_delete(zone):
    one = zone.server(zone.leader())
    name = f"del-{uuid.uuid4().hex[:8]}"
    uid = one.user.allocate(name, "pw", "", [])
    one.user.passwd(uid, "newpw")
    assert eventually(lambda: zone.server(2, session=f"{name}:newpw").user.info(uid)).NAME == name
    one.user.delete(uid)
    with pytest.raises(pyone.OneNoExistsException):
        one.user.info(uid)
