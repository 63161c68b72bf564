"""pyone: groups and memberships, ACL rules, hosts with the dummy drivers."""

import uuid

import pyone
import pytest
from pyone.acl import OneAcl

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_default_groups_and_a_new_one_with_members(zone):
    one = zone.server(zone.leader())
    groups = {g.ID: g.NAME for g in one.grouppool.info().GROUP}
    assert groups[0] == "oneadmin" and groups[1] == "users"
    gid = one.group.allocate(uniq("grp"))
    assert gid >= 100
    uid = one.user.allocate(uniq("member"), "pw", "", [])
    assert 1 in one.user.info(uid).GROUPS.ID
    one.user.addgroup(uid, gid)
    one.group.addadmin(gid, uid)
    follower = zone.server(zone.followers()[0])
    g = eventually(lambda: _with_user(follower.group.info(gid), uid))
    assert uid in g.USERS.ID and uid in g.ADMINS.ID
    one.user.chgrp(uid, gid)
    user = one.user.info(uid)
    assert user.GID == gid and sorted(user.GROUPS.ID) == sorted([1, gid])
    with pytest.raises(pyone.OneActionException):
        one.group.delete(gid)
    with pytest.raises(pyone.OneActionException):
        one.user.delgroup(uid, gid)
    one.user.chgrp(uid, 1)
    one.user.delgroup(uid, gid)
    one.group.delete(gid)
    with pytest.raises(pyone.OneNoExistsException):
        one.group.info(gid)
    with pytest.raises(pyone.OneActionException):
        one.group.delete(1)


def _with_user(group, uid):
    assert uid in group.USERS.ID
    return group


def test_a_disabled_user_cannot_log_in(zone):
    one = zone.server(zone.leader())
    name = uniq("off")
    uid = one.user.allocate(name, "pw", "", [])
    as_user = zone.server(zone.leader(), session=f"{name}:pw")
    assert as_user.user.info(-1).ID == uid
    one.user.enable(uid, False)
    with pytest.raises(pyone.OneAuthenticationException):
        as_user.user.info(-1)
    one.user.enable(uid, True)
    assert as_user.user.info(-1).ENABLED == 1


def test_acl_rules_default_add_and_delete(zone):
    one = zone.server(zone.leader())
    rules = one.acl.info().ACL
    strings = [r.STRING for r in rules]
    assert "* ZONE/* USE *" in strings
    assert "@1 VM+IMAGE+TEMPLATE+DOCUMENT+SECGROUP+VMGROUP+BACKUPJOB/* CREATE *" in strings
    user, resource, rights = OneAcl().parse_rule("#5 HOST/* MANAGE")[:3]
    rid = one.acl.addrule(user, resource, rights)
    rule = [r for r in one.acl.info().ACL if r.ID == rid][0]
    assert rule.STRING == "#5 HOST/* MANAGE #0"
    with pytest.raises(pyone.OneInternalException):
        one.acl.addrule(user, resource, rights)
    one.acl.delrule(rid)
    with pytest.raises(pyone.OneInternalException):
        one.acl.delrule(rid)
    with pytest.raises(pyone.OneInternalException):
        one.acl.addrule("0x5", resource, rights)


def test_hosts_with_dummy_drivers_are_monitored_and_change_status(zone):
    one = zone.server(zone.leader())
    name = uniq("h")
    hid = one.host.allocate(name, "dummy", "dummy", -1)
    host = eventually(lambda: _monitored(zone.server(zone.followers()[0]).host.info(hid)))
    assert host.NAME == name and host.CLUSTER_ID == 0
    assert host.HOST_SHARE.TOTAL_CPU == 800 and host.HOST_SHARE.TOTAL_MEM > 0
    # The dummy probe's NUMA topology, as pyone's bindings read HostShareNUMA's XML.
    nodes = host.HOST_SHARE.NUMA_NODES.NODE
    assert [n.NODE_ID for n in nodes] == [0, 1]
    assert [c.ID for c in nodes[0].CORE] == list(range(8))
    assert nodes[0].CORE[1].CPUS == "1:-1,17:-1,33:-1,49:-1" and nodes[0].CORE[1].FREE == 4
    assert [(p.SIZE, p.PAGES, p.USAGE) for p in nodes[0].HUGEPAGE] == [(2048, 1024, 0), (1048576, 1024, 0)]
    assert nodes[0].MEMORY.TOTAL == host.HOST_SHARE.TOTAL_MEM // 2 and nodes[0].MEMORY.DISTANCE == "0 1"
    # And its PCI devices, free.
    pcis = host.HOST_SHARE.PCI_DEVICES.PCI
    assert [(p.SHORT_ADDRESS, p.VENDOR, p.VMID) for p in pcis] == [
        ("02:00.0", "10de", -1), ("00:06.0", "1b21", -1), ("00:06.1", "1022", -1)]
    assert hid in [h.ID for h in one.hostpool.info().HOST]
    one.host.status(hid, 1)
    assert one.host.info(hid).STATE == 4
    one.host.status(hid, 2)
    assert one.host.info(hid).STATE == 8
    one.host.status(hid, 0)
    eventually(lambda: _monitored(one.host.info(hid)))
    with pytest.raises(pyone.OneInternalException):
        one.host.allocate(name, "dummy", "dummy", -1)
    with pytest.raises(pyone.OneNoExistsException):
        one.host.allocate(uniq("h"), "dummy", "dummy", 999)
    one.host.delete(hid)
    with pytest.raises(pyone.OneNoExistsException):
        one.host.info(hid)


def _monitored(host):
    assert host.STATE == 2, host.STATE
    return host


def test_a_regular_user_cannot_manage_hosts_groups_or_acls(zone):
    one = zone.server(zone.leader())
    name = uniq("plain")
    one.user.allocate(name, "pw", "", [])
    plain = zone.server(zone.leader(), session=f"{name}:pw")
    for call in (
        lambda: plain.host.allocate(uniq("h"), "dummy", "dummy", -1),
        lambda: plain.group.allocate(uniq("g")),
        lambda: plain.acl.info(),
    ):
        with pytest.raises(pyone.OneAuthorizationException):
            call()
    assert plain.hostpool.info().HOST == []
