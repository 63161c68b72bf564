"""pyone virtual network templates against a 3-server OneHA zone: every one.vntemplate call
and the pool, through a follower and the leader, with OpenNebula's refusals word for word;
networks instantiated from a template (named after it, with its id, in its clusters)."""

import uuid

import pyone
import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def template(name, extra=""):
    return f'NAME = "{name}"\nVN_MAD = bridge\nBRIDGE = br0\n{extra}'


def error_of(call, exception, *args):
    with pytest.raises(exception) as e:
        call(*args)
    return str(e.value)


def new_user(one):
    name = uniq("u")
    uid = one.user.allocate(name, "pw", "", [])
    return uid, name


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_allocate_info_pool_and_refusals(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    name = uniq("net")
    tid = one.vntemplate.allocate(template(name))
    t = eventually(lambda: one.vntemplate.info(tid))
    assert t.NAME == name
    assert t.TEMPLATE["VN_MAD"] == "bridge"
    assert "NAME" not in t.TEMPLATE
    ids = eventually(lambda: [x.ID for x in one.vntemplatepool.info(-2, -1, -1).VNTEMPLATE])
    assert tid in ids

    assert error_of(one.vntemplate.allocate, pyone.OneInternalException, template(name)) == (
        f"[one.vntemplate.allocate] NAME is already taken by VN TEMPLATE {tid}."
    )
    assert error_of(
        one.vntemplate.allocate, pyone.OneInternalException, f'NAME = "{uniq("x")}"'
    ) == "[one.vntemplate.allocate] Error inserting Template in DB. VN_MAD is mandatory"
    assert error_of(
        one.vntemplate.allocate, pyone.OneInternalException, f'NAME = "{uniq("x")}"\nVN_MAD = 802.1Q'
    ) == "[one.vntemplate.allocate] PHYDEV is mandatory for driver 802.1Q"
    assert error_of(one.vntemplate.info, pyone.OneNoExistsException, 9999) == (
        "[one.vntemplate.info] Error getting virtual network template [9999]."
    )


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_clone_update_rename_chmod_chown_lock_delete(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    name = uniq("net")
    tid = one.vntemplate.allocate(template(name))
    copy = one.vntemplate.clone(tid, f"{name}-copy")
    assert eventually(lambda: one.vntemplate.info(copy)).NAME == f"{name}-copy"
    assert error_of(one.vntemplate.clone, pyone.OneException, tid, f"{name}-copy") == (
        "[one.vntemplate.clone] Error allocating a new virtual network template. "
        f"NAME is already taken by VN TEMPLATE {copy}."
    )
    assert error_of(one.vntemplate.clone, pyone.OneNoExistsException, 9999, "x") == (
        "[one.vntemplate.clone] Error getting virtual network template [9999]."
    )

    one.vntemplate.update(tid, 'DESCRIPTION = "blue"', 1)
    assert leader.vntemplate.info(tid).TEMPLATE["DESCRIPTION"] == "blue"
    one.vntemplate.rename(tid, f"{name}-2")
    assert leader.vntemplate.info(tid).NAME == f"{name}-2"
    one.vntemplate.chmod(tid, -1, -1, -1, 1, -1, -1, -1, -1, -1)
    assert leader.vntemplate.info(tid).PERMISSIONS.GROUP_U == 1
    uid, _ = new_user(leader)
    one.vntemplate.chown(tid, uid, 1)
    t = leader.vntemplate.info(tid)
    assert (t.UID, t.GID) == (uid, 1)
    assert error_of(one.vntemplate.chown, pyone.OneNoExistsException, tid, 9999, -1) == (
        "[one.vntemplate.chown] Error getting user [9999]."
    )

    one.vntemplate.lock(tid, 2)
    assert leader.vntemplate.info(tid).LOCK.LOCKED == 2
    assert "is locked" in error_of(one.vntemplate.rename, pyone.OneAuthorizationException, tid, "x")
    one.vntemplate.unlock(tid)
    assert "LOCK" not in str(leader.vntemplate.info(tid).LOCK or "")

    one.vntemplate.delete(copy)
    with pytest.raises(pyone.OneNoExistsException):
        leader.vntemplate.info(copy)
    assert error_of(one.vntemplate.delete, pyone.OneNoExistsException, copy) == (
        f"[one.vntemplate.delete] Error getting virtual network template [{copy}]."
    )


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_instantiate_makes_a_network_as_opennebula(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    name = uniq("net")
    tid = one.vntemplate.allocate(template(name, "AR = [ TYPE = IP4, IP = 10.1.0.1, SIZE = 8 ]"))
    vid = one.vntemplate.instantiate(tid, "", "")
    vn = eventually(lambda: leader.vn.info(vid))
    assert vn.NAME == f"{name}-{vid}"
    assert vn.TEMPLATE["TEMPLATE_ID"] == str(tid)
    assert "TEMPLATE_NAME" not in vn.TEMPLATE
    assert vn.CLUSTERS.ID == [0]

    net = uniq("mine")
    vid = one.vntemplate.instantiate(tid, net, 'DESCRIPTION = "extra"')
    vn = leader.vn.info(vid)
    assert vn.NAME == net
    assert vn.TEMPLATE["DESCRIPTION"] == "extra"
    assert error_of(one.vntemplate.instantiate, pyone.OneException, tid, net, "") == (
        "[one.vntemplate.instantiate] Error allocating a new virtual network template. "
        f"NAME is already taken by NET {vid}."
    )

    # A user who may use the template may not change its restricted attributes.
    uid, uname = new_user(leader)
    leader.vntemplate.chmod(tid, -1, -1, -1, -1, -1, -1, 1, -1, -1)
    user = zone.server(zone.leader(), session=f"{uname}:pw")
    assert error_of(
        user.vntemplate.instantiate, pyone.OneAuthorizationException, tid, "", "VN_MAD = ovswitch"
    ) == (
        f"[one.vntemplate.instantiate] User [{uid}] : "
        "User Template includes a restricted attribute VN_MAD."
    )
    mine = user.vntemplate.instantiate(tid, "", 'DESCRIPTION = "ok"')
    assert leader.vn.info(mine).UID == uid
    leader.vntemplate.chmod(tid, -1, -1, -1, -1, -1, -1, 0, -1, -1)
    assert error_of(user.vntemplate.instantiate, pyone.OneAuthorizationException, tid, "", "") == (
        f"[one.vntemplate.instantiate] User [{uid}] : "
        f"Not authorized to perform USE VNTEMPLATE [{tid}]."
    )
    assert "CREATE VNTEMPLATE" in error_of(
        user.vntemplate.allocate, pyone.OneAuthorizationException, template(uniq("n"))
    )
