"""pyone VM day-2 calls against a 3-server OneHA zone, through a follower: attachnic and
detachnic (the address follows the NIC), resize (live on a running VM), and disks that take
their images."""

import uuid

import pyone
import pytest

from conftest import eventually


def until(check, timeout=15.0):
    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


def _running(one, vm):
    body = one.vm.info(vm)
    return body.STATE == 3 and body.LCM_STATE == 3


@pytest.fixture(scope="module")
def sides(zone):
    follower, leader = zone.server(zone.followers()[0]), zone.server(zone.leader())
    # kvm: a VM driver with LIVE_RESIZE, so running VMs resize live.
    leader.host.allocate(f"h-{uuid.uuid4().hex[:6]}", "dummy", "kvm", -1)
    return follower, leader


def _nics(one, vm):
    nic = one.vm.info(vm).TEMPLATE.get("NIC")
    if nic is None:
        return []
    return nic if isinstance(nic, list) else [nic]


def test_a_running_vm_plugs_and_unplugs_nics_with_their_addresses(sides):
    follower, leader = sides
    name = f"lan-{uuid.uuid4().hex[:6]}"
    vn = follower.vn.allocate(
        f'NAME = "{name}"\nVN_MAD = "dummy"\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.77.0.1, SIZE = 4 ]', -1
    )
    vm = follower.vm.allocate("CPU = 0.1\nMEMORY = 32")
    until(lambda: _running(leader, vm))

    assert follower.vm.attachnic(vm, f"NIC = [ NETWORK_ID = {vn} ]") == vm
    until(lambda: _running(leader, vm))
    nics = _nics(leader, vm)
    assert [(n["NIC_ID"], n["IP"]) for n in nics] == [("0", "10.77.0.1")]

    with pytest.raises(pyone.OneActionException, match="NIC_ID 5, it does not exist"):
        follower.vm.detachnic(vm, 5)
    follower.vm.detachnic(vm, 0)
    until(lambda: _running(leader, vm) and _nics(leader, vm) == [])
    assert leader.vn.info(vn).USED_LEASES == 0

    held = follower.vm.allocate("CPU = 0.1\nMEMORY = 32", True)
    with pytest.raises(pyone.OneActionException, match="wrong state HOLD"):
        follower.vm.attachnic(held, f"NIC = [ NETWORK_ID = {vn} ]")


def test_resize_is_live_on_a_running_vm_and_refused_beyond_the_host(sides):
    follower, leader = sides
    # On the kvm host: the dummy VM driver has no LIVE_RESIZE.
    vm = follower.vm.allocate('CPU = 0.1\nMEMORY = 32\nSCHED_REQUIREMENTS = "VM_MAD = \\"kvm\\""')
    until(lambda: _running(leader, vm))
    assert follower.vm.resize(vm, "CPU = 0.2\nMEMORY = 48", True) == vm
    until(lambda: _running(leader, vm))
    body = leader.vm.info(vm)
    assert (body.TEMPLATE["CPU"], body.TEMPLATE["MEMORY"]) == ("0.2", "48")
    with pytest.raises(pyone.OneActionException, match="Not enough memory"):
        follower.vm.resize(vm, "MEMORY = 999999999", True)
    with pytest.raises(pyone.OneInternalException, match="CPU must be a positive"):
        follower.vm.resize(vm, "CPU = -1", True)


def test_a_disk_takes_its_image_until_the_vm_ends(sides):
    follower, leader = sides
    name = f"img-{uuid.uuid4().hex[:6]}"
    image = follower.image.allocate(f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 8', 1)
    until(lambda: leader.image.info(image).STATE == 1)
    vm = follower.vm.allocate(f'CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE = "{name}" ]')
    body = leader.image.info(image)
    assert (body.STATE, body.RUNNING_VMS) == (2, 1)
    with pytest.raises(pyone.OneActionException, match="VMs using it"):
        follower.image.delete(image)
    follower.vm.action("terminate-hard", vm)
    until(lambda: leader.image.info(image).STATE == 1)
    follower.image.delete(image)


def test_disks_and_security_groups_are_hot_plugged(sides):
    follower, leader = sides
    name = f"d-{uuid.uuid4().hex[:6]}"
    image = follower.image.allocate(f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 8', 1)
    until(lambda: leader.image.info(image).STATE == 1)
    vn = follower.vn.allocate(
        f'NAME = "n-{name}"\nVN_MAD = "dummy"\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 2 ]', -1
    )
    sg = follower.secgroup.allocate(
        f'NAME = "sg-{name}"\nRULE = [ PROTOCOL = TCP, RULE_TYPE = inbound ]'
    )
    vm = follower.vm.allocate(f"CPU = 0.1\nMEMORY = 32\nNIC = [ NETWORK_ID = {vn} ]")
    until(lambda: _running(leader, vm))

    assert follower.vm.attach(vm, f"DISK = [ IMAGE_ID = {image} ]") == vm
    until(lambda: _running(leader, vm))
    assert leader.image.info(image).RUNNING_VMS == 1
    with pytest.raises(pyone.OneActionException, match="DISK_ID 9, it does not exist"):
        follower.vm.detach(vm, 9)
    follower.vm.detach(vm, 0)
    until(lambda: _running(leader, vm) and leader.image.info(image).STATE == 1)

    assert follower.vm.attachsg(vm, 0, sg) == vm
    assert _nics(leader, vm)[0]["SECURITY_GROUPS"] == f"0,{sg}"
    with pytest.raises(pyone.OneActionException, match="already in NIC 0"):
        follower.vm.attachsg(vm, 0, sg)
    follower.vm.detachsg(vm, 0, sg)
    assert _nics(leader, vm)[0]["SECURITY_GROUPS"] == "0"

    assert follower.vm.updatenic(vm, 0, "NIC = [ INBOUND_AVG_BW = 100 ]", 1) == vm
    until(lambda: _running(leader, vm) and _nics(leader, vm)[0].get("INBOUND_AVG_BW") == "100")
    with pytest.raises(pyone.OneActionException, match="NIC 4 does not exists"):
        follower.vm.updatenic(vm, 4, "NIC = [ INBOUND_AVG_BW = 1 ]", 0)
