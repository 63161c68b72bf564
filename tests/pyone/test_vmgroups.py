"""pyone VM groups against a 3-server OneHA zone: every one.vmgroup call and the pool,
through a follower and the leader, with OpenNebula's refusals word for word."""

import uuid

import pyone
import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def group(name):
    return (
        f'NAME = "{name}"\n'
        "ROLE = [ NAME = db, POLICY = AFFINED ]\n"
        "ROLE = [ NAME = app, POLICY = ANTI_AFFINED ]\n"
        'ANTI_AFFINED = "db, app"'
    )


def error_of(call, exception, *args):
    with pytest.raises(exception) as e:
        call(*args)
    return str(e.value)


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_allocate_roles_update_and_refusals(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    name = uniq("vg")
    gid = one.vmgroup.allocate(group(name))
    g = eventually(lambda: one.vmgroup.info(gid))
    assert g.NAME == name
    assert [r.NAME for r in g.ROLES.ROLE] == ["db", "app"]
    assert "ROLE" not in g.TEMPLATE
    ids = eventually(lambda: [x.ID for x in one.vmgrouppool.info(-2, -1, -1).VM_GROUP])
    assert gid in ids
    assert error_of(one.vmgroup.allocate, pyone.OneInternalException, group(name)) == (
        f"[one.vmgroup.allocate] NAME is already taken by VMGroup {gid}."
    )

    one.vmgroup.roleadd(gid, "ROLE = [ NAME = lb ]")
    assert [r.NAME for r in leader.vmgroup.info(gid).ROLES.ROLE] == ["db", "app", "lb"]
    assert error_of(one.vmgroup.roleadd, pyone.OneActionException, gid, "A = 1") == (
        "[one.vmgroup.roleadd] No ROLE attribute in template"
    )
    assert error_of(one.vmgroup.roledelete, pyone.OneActionException, gid, 0) == (
        "[one.vmgroup.roledelete] Some roles used in ANTI_AFFINED attribute (db, app) "
        "are not defined"
    )
    one.vmgroup.roleupdate(gid, 2, "ROLE = [ NAME = cache ]")
    assert leader.vmgroup.info(gid).ROLES.ROLE[2].NAME == "cache"
    assert error_of(
        one.vmgroup.roleupdate, pyone.OneActionException, gid, 2, "ROLE = [ NAME = db ]"
    ) == (
        f"[one.vmgroup.roleupdate] VMGroup {gid} Role 2 can not update name, "
        "role with name db already exists"
    )
    one.vmgroup.roledelete(gid, 2)
    assert len(leader.vmgroup.info(gid).ROLES.ROLE) == 2

    assert error_of(one.vmgroup.update, pyone.OneInternalException, gid, 'AFFINED = "db"', 1) == (
        "[one.vmgroup.update] Cannot update template. "
        "Roles defined in AFFINED and ANTI_AFFINED rules: db"
    )
    one.vmgroup.update(gid, 'DESCRIPTION = "blue"', 1)
    assert leader.vmgroup.info(gid).TEMPLATE["DESCRIPTION"] == "blue"


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_rename_chmod_chown_lock_delete(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    name = uniq("vg")
    gid = one.vmgroup.allocate(f'NAME = "{name}"')
    eventually(lambda: one.vmgroup.info(gid))
    one.vmgroup.rename(gid, f"{name}-2")
    assert leader.vmgroup.info(gid).NAME == f"{name}-2"
    one.vmgroup.chmod(gid, -1, -1, -1, 1, -1, -1, -1, -1, -1)
    assert leader.vmgroup.info(gid).PERMISSIONS.GROUP_U == 1
    uid = leader.user.allocate(uniq("u"), "pw", "", [])
    one.vmgroup.chown(gid, uid, 1)
    g = leader.vmgroup.info(gid)
    assert (g.UID, g.GID) == (uid, 1)
    one.vmgroup.lock(gid, 2)
    assert leader.vmgroup.info(gid).LOCK.LOCKED == 2
    assert "is locked" in error_of(
        one.vmgroup.roleadd, pyone.OneAuthorizationException, gid, "ROLE = [ NAME = x ]"
    )
    one.vmgroup.unlock(gid)
    one.vmgroup.delete(gid)
    with pytest.raises(pyone.OneNoExistsException):
        leader.vmgroup.info(gid)
    assert error_of(one.vmgroup.delete, pyone.OneNoExistsException, gid) == (
        f"[one.vmgroup.delete] Error getting vm group [{gid}]."
    )
