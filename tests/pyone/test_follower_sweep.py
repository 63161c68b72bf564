"""pyone: the methods of the older families that no other file calls, each through a follower
(which passes writes to the leader) with its success and its main refusals, as OpenNebula
answers them."""

import uuid

import pyone
import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def follower(zone):
    return zone.server(zone.followers()[0])


def test_clusters_and_hosts_are_renamed_updated_and_given_datastores(zone):
    one = follower(zone)
    cid = one.cluster.allocate(uniq("c"))
    taken = uniq("taken")
    one.cluster.allocate(taken)
    new = uniq("renamed")
    one.cluster.rename(cid, new)
    eventually(lambda: assert_equal(one.cluster.info(cid).NAME, new))
    with pytest.raises(pyone.OneActionException, match="because it collides with cluster"):
        one.cluster.rename(cid, taken)
    with pytest.raises(pyone.OneNoExistsException):
        one.cluster.rename(99999, uniq("x"))
    one.cluster.update(cid, 'RESERVED_CPU = "10"', 1)
    eventually(lambda: assert_equal(one.cluster.info(cid).TEMPLATE["RESERVED_CPU"], "10"))
    one.cluster.adddatastore(cid, 1)
    eventually(lambda: assert_in(1, ids(one.cluster.info(cid).DATASTORES)))
    one.cluster.deldatastore(cid, 1)
    eventually(lambda: assert_not_in(1, ids(one.cluster.info(cid).DATASTORES)))
    with pytest.raises(pyone.OneNoExistsException):
        one.cluster.adddatastore(cid, 99999)

    hid = one.host.allocate(uniq("node"), "dummy", "dummy", -1)
    host = uniq("host")
    one.host.rename(hid, host)
    eventually(lambda: assert_equal(one.host.info(hid).NAME, host))
    one.host.update(hid, 'LABEL = "rack1"', 1)
    eventually(lambda: assert_equal(one.host.info(hid).TEMPLATE["LABEL"], "rack1"))
    with pytest.raises(pyone.OneNoExistsException):
        one.host.update(99999, "A = 1", 1)
    plain = zone.server(zone.followers()[0], session=f"{make_user(one)}:pw")
    with pytest.raises(pyone.OneAuthorizationException):
        plain.host.rename(hid, uniq("mine"))


def test_groups_are_updated_given_admins_and_quotas_with_their_defaults(zone):
    one = follower(zone)
    gid = one.group.allocate(uniq("g"))
    one.group.update(gid, 'LABEL = "team"', 1)
    eventually(lambda: assert_equal(one.group.info(gid).TEMPLATE["LABEL"], "team"))
    name = uniq("u")
    uid = one.user.allocate(name, "pw", "", [gid])
    eventually(lambda: one.user.info(uid))
    one.group.addadmin(gid, uid)
    eventually(lambda: assert_in(uid, ids(one.group.info(gid).ADMINS)))
    one.group.deladmin(gid, uid)
    eventually(lambda: assert_not_in(uid, ids(one.group.info(gid).ADMINS)))
    with pytest.raises(pyone.OneNoExistsException):
        one.group.deladmin(gid, 99999)

    one.group.quota(gid, "VM = [ VMS = 3, CPU = 2, MEMORY = 1024 ]")
    eventually(lambda: assert_equal(one.group.info(gid).VM_QUOTA.VM[0].VMS, "3"))
    with pytest.raises(pyone.OneActionException, match="Negative limits or bad format"):
        one.group.quota(gid, "VM = [ VMS = -7 ]")
    plain = zone.server(zone.followers()[0], session=f"{name}:pw")
    with pytest.raises(pyone.OneAuthorizationException):
        plain.group.quota(gid, "VM = [ VMS = 100 ]")

    # pyone has no binding for the bare DEFAULT_*_QUOTAS answer of *quota.info/update: the
    # call is made, and the defaults are read from a user's and a group's body.
    assert one.groupquota.info() is not None
    assert one.userquota.info() is not None
    one.groupquota.update("VM = [ VMS = 40 ]")
    eventually(
        lambda: assert_equal(one.group.info(gid).DEFAULT_GROUP_QUOTAS.VM_QUOTA.VM.VMS, 40)
    )
    one.userquota.update("VM = [ VMS = 50 ]")
    eventually(
        lambda: assert_equal(one.user.info(uid).DEFAULT_USER_QUOTAS.VM_QUOTA.VM.VMS, "50")
    )
    with pytest.raises(pyone.OneAuthorizationException):
        plain.userquota.update("VM = [ VMS = 1000 ]")
    # Unlimited again, so that other tests' users are not held back.
    one.groupquota.update("VM = [ VMS = -2 ]")
    one.userquota.update("VM = [ VMS = -2 ]")


def test_a_vdc_is_renamed_updated_and_given_every_kind_of_resource(zone):
    one = follower(zone)
    vid = one.vdc.allocate(f'NAME = "{uniq("vdc")}"')
    new = uniq("vdc")
    one.vdc.rename(vid, new)
    eventually(lambda: assert_equal(one.vdc.info(vid).NAME, new))
    one.vdc.update(vid, 'LABEL = "lab"', 1)
    eventually(lambda: assert_equal(one.vdc.info(vid).TEMPLATE["LABEL"], "lab"))
    hid = one.host.allocate(uniq("h"), "dummy", "dummy", -1)
    nid = one.vn.allocate(f'NAME = "{uniq("n")}"\nVN_MAD = dummy\nBRIDGE = br0', -1)
    members = {
        "CLUSTERS": lambda v: [(c.ZONE_ID, c.CLUSTER_ID) for c in v.CLUSTERS.CLUSTER],
        "HOSTS": lambda v: [(h.ZONE_ID, h.HOST_ID) for h in v.HOSTS.HOST],
        "VNETS": lambda v: [(n.ZONE_ID, n.VNET_ID) for n in v.VNETS.VNET],
    }
    for add, rem, element, oid in [
        (one.vdc.addcluster, one.vdc.delcluster, "CLUSTERS", 0),
        (one.vdc.addhost, one.vdc.delhost, "HOSTS", hid),
        (one.vdc.addvnet, one.vdc.delvnet, "VNETS", nid),
    ]:
        add(vid, 0, oid)
        eventually(lambda: assert_in((0, oid), members[element](one.vdc.info(vid))))
        with pytest.raises(pyone.OneInternalException, match="is already assigned to the VDC"):
            add(vid, 0, oid)
        rem(vid, 0, oid)
        eventually(lambda: assert_not_in((0, oid), members[element](one.vdc.info(vid))))
        with pytest.raises(pyone.OneInternalException, match="is not assigned to the VDC"):
            rem(vid, 0, oid)
    gid = one.group.allocate(uniq("vg"))
    one.vdc.addgroup(vid, gid)
    one.vdc.delgroup(vid, gid)
    with pytest.raises(pyone.OneInternalException, match="is not assigned to the VDC"):
        one.vdc.delgroup(vid, gid)
    one.vdc.adddatastore(vid, 0, 1)
    one.vdc.deldatastore(vid, 0, 1)
    with pytest.raises(pyone.OneNoExistsException):
        one.vdc.addhost(vid, 0, 99999)
    one.vdc.delete(vid)


def test_the_zone_is_renamed_updated_disabled_and_enabled(zone):
    one = follower(zone)
    name = one.zone.info(0).NAME
    one.zone.rename(0, "renamed-zone")
    eventually(lambda: assert_equal(one.zone.info(0).NAME, "renamed-zone"))
    one.zone.rename(0, name)
    one.zone.update(0, 'LABEL = "site-a"', 1)
    eventually(lambda: assert_equal(one.zone.info(0).TEMPLATE["LABEL"], "site-a"))
    one.zone.enable(0, False)
    eventually(lambda: assert_equal(one.zone.info(0).STATE, 1))
    with pytest.raises(pyone.OneException):
        one.user.allocate(uniq("refused"), "pw", "", [])
    one.zone.enable(0, True)
    eventually(lambda: assert_equal(one.zone.info(0).STATE, 0))
    one.user.allocate(uniq("welcome"), "pw", "", [])
    with pytest.raises(pyone.OneException):
        one.zone.allocate('NAME = "second"\nENDPOINT = "http://127.0.0.1:1/RPC2"')
    with pytest.raises(pyone.OneException):
        one.zone.delete(0)
    with pytest.raises(pyone.OneException):
        one.zone.delserver(0, 99)
    # `RaftManager::reset_index` does nothing for a server it does not follow: no refusal.
    assert one.zone.resetserver(0, 99) == 0


def make_user(one):
    """A user in group users, once `one` (a follower) has applied it: it authenticates there."""
    name = uniq("plain")
    uid = one.user.allocate(name, "pw", "", [])
    eventually(lambda: one.user.info(uid))
    return name


def ids(element):
    if element is None:
        return []
    value = getattr(element, "ID", None)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def assert_equal(a, b):
    assert a == b, (a, b)


def assert_in(a, b):
    assert a in b, (a, b)


def assert_not_in(a, b):
    assert a not in b, (a, b)


def test_resched_moves_a_running_vm_to_another_host_for_administrators_only(zone):
    one = follower(zone)
    one.host.allocate(uniq("rh"), "dummy", "dummy", -1)
    one.host.allocate(uniq("rh"), "dummy", "dummy", -1)
    held = one.vm.allocate("NAME = held\nCPU = 0.1\nMEMORY = 16", True)
    vid = one.vm.allocate("NAME = moving\nCPU = 0.1\nMEMORY = 16", False)
    leader = zone.server(zone.leader())
    eventually(lambda: assert_equal(leader.vm.info(vid).LCM_STATE, 3), timeout=30)
    first = leader.vm.info(vid).HISTORY_RECORDS.HISTORY[-1].HID
    with pytest.raises(pyone.OneActionException, match="This action is not available for state HOLD"):
        one.vm.action("resched", held)
    name = make_user(one)
    one.vm.chown(vid, -1, 1)
    one.vm.chmod(vid, -1, -1, -1, 1, 1, 0, -1, -1, -1)
    plain = zone.server(zone.followers()[0], session=f"{name}:pw")
    with pytest.raises(pyone.OneAuthorizationException):
        plain.vm.action("resched", vid)
    with pytest.raises(pyone.OneActionException, match='Action "fly" is not supported'):
        one.vm.action("fly", vid)
    one.vm.action("unresched", vid)
    assert leader.vm.info(vid).RESCHED == 0

    # The scheduler moves it to another host (a cold migration) and clears the flag.
    one.vm.action("resched", vid)

    def moved():
        vm = leader.vm.info(vid)
        assert (vm.STATE, vm.LCM_STATE, vm.RESCHED) == (3, 3, 0)
        assert vm.HISTORY_RECORDS.HISTORY[-1].HID != first

    eventually(moved, timeout=30)
    one.vm.action("terminate-hard", vid)
    one.vm.action("terminate-hard", held)
