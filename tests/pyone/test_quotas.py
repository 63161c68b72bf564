"""pyone quotas against a 3-server OneHA zone: limits per user and the defaults, refusals as
OpenNebula words them (AUTHORIZATION at creation, ACTION at resume), usage in user.info."""

import uuid

import pyone
import pytest

from conftest import eventually
from test_templates_vms import _monitored, wait_state


def _user(zone):
    one = zone.server(zone.leader())
    name = f"q-{uuid.uuid4().hex[:6]}"
    uid = one.user.allocate(name, "pw", "", [])
    return one, uid, zone.server(zone.leader(), session=f"{name}:pw")


def test_vm_quota_refuses_and_shows_what_is_used(zone):
    one, uid, user = _user(zone)
    assert one.user.quota(uid, "VM = [ VMS = 1, MEMORY = 256 ]") == uid
    user.vm.allocate('NAME = "q1"\nCPU = 0.5\nMEMORY = 128', True)
    with pytest.raises(pyone.OneAuthorizationException, match="limit of 1 reached for VMS quota in VM"):
        user.vm.allocate('NAME = "q2"\nCPU = 0.5\nMEMORY = 128', True)
    follower = zone.server(zone.followers()[0])

    def used():
        vm = follower.user.info(uid).VM_QUOTA.VM[0]
        assert vm.VMS_USED == "1", vm.VMS_USED
        return vm

    vm = eventually(used)
    assert (vm.VMS, vm.MEMORY, vm.MEMORY_USED, vm.CPU_USED) == ("1", "256", "128", "0.50")


def test_default_quotas_are_set_by_oneadmin_and_shown_in_bodies(zone):
    one = zone.server(zone.leader())
    # pyone has no binding of its own for the answer of *quota.update/info (a bare
    # DEFAULT_*_QUOTAS document, as OpenNebula's): the defaults are read from a group's body.
    one.groupquota.update("DATASTORE = [ ID = 1, IMAGES = 100 ]")
    ds = one.group.info(1).DEFAULT_GROUP_QUOTAS.DATASTORE_QUOTA.DATASTORE[0]
    assert (ds.ID, ds.IMAGES, ds.SIZE) == ("1", "100", "-2")
    one.groupquota.update("DATASTORE = [ ID = 1, IMAGES = -2 ]")
    assert not one.group.info(1).DEFAULT_GROUP_QUOTAS.DATASTORE_QUOTA.DATASTORE


def test_resume_past_the_running_quota_is_an_action_error(zone):
    one, uid, user = _user(zone)
    hid = one.host.allocate(f"qh-{uuid.uuid4().hex[:6]}", "dummy", "dummy", -1)
    eventually(lambda: _monitored(one.host.info(hid)))
    one.user.quota(uid, "VM = [ RUNNING_VMS = 1 ]")
    first = user.vm.allocate('NAME = "r1"\nCPU = 0.1\nMEMORY = 64')
    wait_state(user, first, 3, 3)
    user.vm.action("poweroff", first)
    wait_state(user, first, 8)
    # Powered off, it runs no more: room for another.
    user.vm.allocate('NAME = "r2"\nCPU = 0.1\nMEMORY = 64', True)
    with pytest.raises(pyone.OneActionException, match="limit of 1 reached for RUNNING_VMS quota in VM"):
        user.vm.action("resume", first)


def test_system_disk_size_counts_volatile_disks(zone):
    one, uid, user = _user(zone)
    one.user.quota(uid, "VM = [ SYSTEM_DISK_SIZE = 100 ]")
    vid = user.vm.allocate('NAME = "sd1"\nCPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 60 ]', True)
    with pytest.raises(pyone.OneAuthorizationException, match="limit of 100 reached for SYSTEM_DISK_SIZE quota in VM"):
        user.vm.allocate('NAME = "sd2"\nCPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 50 ]', True)
    follower = zone.server(zone.followers()[0])

    def used(n):
        def check():
            vm = follower.user.info(uid).VM_QUOTA.VM[0]
            assert vm.SYSTEM_DISK_SIZE_USED == n, vm.SYSTEM_DISK_SIZE_USED
            return vm

        return check

    assert eventually(used("60")).SYSTEM_DISK_SIZE == "100"
    user.vm.action("terminate", vid)
    eventually(used("0"))


def test_a_reservation_counts_in_the_leases_quota_of_its_parent(zone):
    one, uid, user = _user(zone)
    vn = one.vn.allocate(
        f'NAME = "qn-{uuid.uuid4().hex[:6]}"\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.77.0.1, SIZE = 8 ]', -1
    )
    eventually(lambda: _ready(one.vn.info(vn)))
    one.vn.chmod(vn, -1, -1, -1, -1, -1, -1, 1, -1, -1)
    one.user.quota(uid, f"NETWORK = [ ID = {vn}, LEASES = 3 ]")
    user.vn.reserve(vn, f'SIZE = 2\nNAME = "r-{uuid.uuid4().hex[:6]}"')
    with pytest.raises(pyone.OneAuthorizationException, match="limit of 3 reached for LEASES quota in NETWORK"):
        user.vn.reserve(vn, f'SIZE = 2\nNAME = "r-{uuid.uuid4().hex[:6]}"')
    net = one.user.info(uid).NETWORK_QUOTA.NETWORK[0]
    assert (net.ID, net.LEASES, net.LEASES_USED) == (str(vn), "3", "2")


def _ready(vn):
    assert vn.STATE == 1
    return vn
