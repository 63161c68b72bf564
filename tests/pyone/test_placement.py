"""pyone placement against a 3-server OneHA zone, written through a follower: VMs joining VM
group roles and the scheduler keeping the group's rules, cluster optimization plans, and PCI
devices attached to powered-off VMs; each with OpenNebula's refusals."""

import uuid

import pyone
import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def until(check, timeout=30.0):
    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


def state(one, vm):
    body = one.vm.info(vm)
    return (body.STATE, body.LCM_STATE)


def host_of(one, vm):
    return one.vm.info(vm).HISTORY_RECORDS.HISTORY[-1].HID


def monitored_hosts(leader, n, cluster=-1):
    hosts = [leader.host.allocate(uniq("pl"), "dummy", "dummy", cluster) for _ in range(n)]
    until(lambda: all(leader.host.info(h).STATE == 2 for h in hosts))
    return hosts


@pytest.fixture(scope="module")
def sides(zone):
    return zone.server(zone.followers()[0]), zone.server(zone.leader())


def test_vm_group_rules_place_vms_and_vms_leave_at_done(sides):
    follower, leader = sides
    a, b = monitored_hosts(leader, 2)
    name = uniq("shop")
    gid = follower.vmgroup.allocate(
        f'NAME = "{name}"\n'
        f'ROLE = [ NAME = web, POLICY = AFFINED, HOST_AFFINED = "{a},{b}" ]\n'
        f'ROLE = [ NAME = db, POLICY = ANTI_AFFINED, HOST_AFFINED = "{a},{b}" ]'
    )

    def vm(role):
        return follower.vm.allocate(
            f"CPU = 0.1\nMEMORY = 16\nVMGROUP = [ VMGROUP_ID = {gid}, ROLE = {role} ]"
        )

    web = [vm("web"), vm("web")]
    until(lambda: all(state(leader, v) == (3, 3) for v in web))
    assert host_of(leader, web[0]) == host_of(leader, web[1])
    assert leader.vm.info(web[0]).TEMPLATE["VMGROUP"]["VMGROUP_ID"] == str(gid)

    db = [vm("db"), vm("db"), vm("db")]
    until(lambda: all(state(leader, v) == (3, 3) for v in db[:2]))
    assert {host_of(leader, v) for v in db[:2]} == {a, b}
    until(lambda: "SCHED_MESSAGE" in leader.vm.info(db[2]).USER_TEMPLATE)
    message = leader.vm.info(db[2]).USER_TEMPLATE["SCHED_MESSAGE"]
    assert "Cannot allocate VM. Affinity constraints cannot be met in hosts" in message
    assert state(leader, db[2])[0] == 1

    roles = {r.NAME: r for r in leader.vmgroup.info(gid).ROLES.ROLE}
    assert roles["db"].VMS == ",".join(str(v) for v in db)
    follower.vm.action("terminate-hard", db[0])
    until(lambda: state(leader, db[2]) == (3, 3))
    roles = {r.NAME: r for r in leader.vmgroup.info(gid).ROLES.ROLE}
    assert roles["db"].VMS == f"{db[1]},{db[2]}"

    with pytest.raises(pyone.OneInternalException) as e:
        follower.vm.allocate("CPU = 1\nMEMORY = 8\nVMGROUP = [ VMGROUP_ID = 99999, ROLE = x ]")
    assert str(e.value) == "[one.vm.allocate] Cannot find VM Group to associate the VM"
    with pytest.raises(pyone.OneInternalException) as e:
        follower.vm.allocate(f"CPU = 1\nMEMORY = 8\nVMGROUP = [ VMGROUP_ID = {gid}, ROLE = x ]")
    assert str(e.value).endswith("Role does not exist in VM Group")


def test_a_cluster_plan_is_made_applied_and_deleted(sides):
    follower, leader = sides
    cid = leader.cluster.allocate(uniq("drs"))
    # A VM is deployed only where the host's cluster holds a system datastore.
    leader.cluster.adddatastore(cid, 0)
    a, b = monitored_hosts(leader, 2, cid)
    vms = []
    # Two VMs, one move: cluster.xsd gives PLAN one ACTION, so pyone reads only one.
    for _ in range(2):
        vm = follower.vm.allocate("CPU = 1\nMEMORY = 64", True)
        follower.vm.deploy(vm, a)
        vms.append(vm)
    until(lambda: all(state(leader, v) == (3, 3) for v in vms))

    with pytest.raises(pyone.OneActionException) as e:
        follower.cluster.planexecute(cid)
    assert str(e.value) == "[one.cluster.planexecute] Plan is not ready"
    assert follower.cluster.optimize(cid) == cid
    plan = leader.cluster.info(cid).PLAN
    assert (plan.ID, plan.STATE) == (cid, 0)
    x = plan.ACTION
    assert (x.ID, x.VM_ID, x.STATE, x.OPERATION, x.HOST_ID) == (0, vms[0], 0, "migrate", b)
    assert follower.cluster.plandelete(cid) == cid
    assert leader.cluster.info(cid).PLAN is None
    with pytest.raises(pyone.OneActionException) as e:
        follower.cluster.plandelete(cid)
    assert str(e.value) == f"[one.cluster.plandelete] Plan for cluster {cid} does not exist"

    follower.cluster.optimize(cid)
    follower.cluster.planexecute(cid)
    until(lambda: leader.cluster.info(cid).PLAN.STATE == 2)
    until(lambda: [host_of(leader, v) for v in vms] == [b, a])
    assert leader.cluster.info(cid).PLAN.ACTION.STATE == 2
    with pytest.raises(pyone.OneNoExistsException):
        follower.cluster.optimize(99999)


DEVICES = (
    'PCI = [ SHORT_ADDRESS = "00:03.0", ADDRESS = "0000:00:03:0", VENDOR = "10de", '
    'DEVICE = "1db4", CLASS = "0302" ]'
)


def test_pci_devices_attach_to_powered_off_vms(sides):
    follower, leader = sides
    (h,) = monitored_hosts(leader, 1)
    follower.host.update(h, DEVICES, 1)
    vms = []
    for _ in range(2):
        vm = follower.vm.allocate("CPU = 0.1\nMEMORY = 16", True)
        follower.vm.deploy(vm, h)
        vms.append(vm)
    until(lambda: all(state(leader, v) == (3, 3) for v in vms))
    with pytest.raises(pyone.OneActionException) as e:
        follower.vm.attachpci(vms[0], "PCI = [ VENDOR = 10de ]")
    assert str(e.value) == "[one.vm.attachpci] VM in wrong state, it has to be in poweroff"
    for vm in vms:
        follower.vm.action("poweroff", vm)
    until(lambda: all(state(leader, v) == (8, 0) for v in vms))

    assert follower.vm.attachpci(vms[0], "PCI = [ VENDOR = 10de ]") == vms[0]
    pci = leader.vm.info(vms[0]).TEMPLATE["PCI"]
    assert (pci["PCI_ID"], pci["SHORT_ADDRESS"]) == ("0", "00:03.0")
    with pytest.raises(pyone.OneActionException) as e:
        follower.vm.attachpci(vms[1], 'PCI = [ SHORT_ADDRESS = "00:03.0" ]')
    assert str(e.value) == (
        "[one.vm.attachpci] Cannot assign PCI device in host. Check address and free devices"
    )
    with pytest.raises(pyone.OneActionException) as e:
        follower.vm.detachpci(vms[0], 5)
    assert str(e.value) == "[one.vm.detachpci] PCI device not found"
    assert follower.vm.detachpci(vms[0], 0) == vms[0]
    assert follower.vm.attachpci(vms[1], 'PCI = [ SHORT_ADDRESS = "00:03.0" ]') == vms[1]
