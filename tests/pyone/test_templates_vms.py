"""pyone: VM templates, VMs with the dummy driver, the scheduler, pool filters, permissions."""

import time
import uuid

import pyone
import pytest

from conftest import eventually

VM_TEMPLATE = 'NAME = "{name}"\nCPU = 0.5\nMEMORY = 128\n'


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_state(one, vid, state, lcm=None, timeout=15):
    def check():
        vm = one.vm.info(vid)
        assert vm.STATE == state, (vm.STATE, vm.LCM_STATE)
        if lcm is not None:
            assert vm.LCM_STATE == lcm, (vm.STATE, vm.LCM_STATE)
        return vm

    return eventually(check, timeout)


@pytest.fixture(scope="module")
def host(zone):
    one = zone.server(zone.leader())
    hid = one.host.allocate(uniq("vmhost"), "dummy", "dummy", -1)
    eventually(lambda: _monitored(one.host.info(hid)))
    return hid


def _monitored(h):
    assert h.STATE == 2
    return h


def test_templates_allocate_update_clone_and_delete(zone):
    one = zone.server(zone.leader())
    name = uniq("tpl")
    tid = one.template.allocate(VM_TEMPLATE.format(name=name))
    t = one.template.info(tid)
    assert t.NAME == name and t.UID == 0 and t.PERMISSIONS.OWNER_U == 1
    assert t.TEMPLATE["MEMORY"] == "128"
    one.template.update(tid, 'DESCRIPTION = "web"', 1)
    assert one.template.info(tid).TEMPLATE["DESCRIPTION"] == "web"
    assert one.template.info(tid).TEMPLATE["CPU"] == "0.5"
    copy = one.template.clone(tid, name + "-copy")
    assert one.template.info(copy).NAME == name + "-copy"
    ids = [t.ID for t in one.templatepool.info(-2, -1, -1).VMTEMPLATE]
    assert tid in ids and copy in ids
    one.template.delete(copy)
    with pytest.raises(pyone.OneNoExistsException):
        one.template.info(copy)
    with pytest.raises(pyone.OneInternalException):
        one.template.allocate("CPU = 1")
    with pytest.raises(pyone.OneApiException):
        one.template.update(tid, "A = 1", 7)


def test_a_vm_needs_memory_and_cpu_and_starts_pending_or_on_hold(zone):
    one = zone.server(zone.followers()[0])
    with pytest.raises(pyone.OneInternalException):
        one.vm.allocate("CPU = 1")
    with pytest.raises(pyone.OneInternalException):
        one.vm.allocate("MEMORY = 64")
    vid = one.vm.allocate('MEMORY = 64\nCPU = 0.1\nNAME = "held"', True)
    vm = eventually(lambda: one.vm.info(vid))
    assert vm.STATE == 2 and vm.NAME == "held"
    assert vm.STIME > 0 and vm.ETIME == 0
    with pytest.raises(pyone.OneActionException):
        one.vm.action("poweroff", vid)
    one.vm.action("terminate", vid)
    assert wait_state(one, vid, 6).ETIME > 0


def test_the_scheduler_deploys_and_the_driver_runs_the_lifecycle(zone, host):
    one = zone.server(zone.leader())
    tid = one.template.allocate(VM_TEMPLATE.format(name=uniq("life")))
    vid = one.template.instantiate(tid, "", False, "", False)
    vm = wait_state(one, vid, 3, 3)
    assert vm.HISTORY_RECORDS.HISTORY[-1].HID >= 0
    assert vm.HISTORY_RECORDS.HISTORY[-1].HOSTNAME
    # The dummy driver's deploy names it `<host>:<name>:dummy` (one_vmm_dummy.rb).
    host_name = vm.HISTORY_RECORDS.HISTORY[-1].HOSTNAME
    assert vm.DEPLOY_ID == f"{host_name}:{vm.NAME}:dummy"
    hid = vm.HISTORY_RECORDS.HISTORY[-1].HID
    assert one.host.info(hid).HOST_SHARE.CPU_USAGE >= 50

    one.vm.action("poweroff", vid)
    wait_state(one, vid, 8)
    one.vm.action("resume", vid)
    wait_state(one, vid, 3, 3)
    one.vm.action("suspend", vid)
    wait_state(one, vid, 5)
    one.vm.action("resume", vid)
    wait_state(one, vid, 3, 3)
    one.vm.action("reboot", vid)
    one.vm.action("stop", vid)
    wait_state(one, vid, 4)
    one.vm.action("resume", vid)
    vm = wait_state(one, vid, 3, 3)
    # A resume on the host closes the record and copies it (LifeCycleManager's restore and
    # restart); each record names the action that ended it, the copies RESUME (11).
    actions = [h.ACTION for h in vm.HISTORY_RECORDS.HISTORY]
    assert actions == [19, 10, 9, 0], actions
    one.vm.action("undeploy", vid)
    wait_state(one, vid, 9)
    one.vm.action("terminate", vid)
    wait_state(one, vid, 6)
    with pytest.raises(pyone.OneActionException):
        one.vm.action("resume", vid)


def test_deploy_to_a_chosen_host_and_capacity_accounting(zone, host):
    one = zone.server(zone.leader())
    vid = one.vm.allocate("MEMORY = 256\nCPU = 1", True)
    one.vm.deploy(vid, host)
    vm = wait_state(one, vid, 3, 3)
    assert vm.HISTORY_RECORDS.HISTORY[-1].HID == host
    before = one.host.info(host).HOST_SHARE
    assert before.RUNNING_VMS >= 1 and before.MEM_USAGE >= 256 * 1024
    one.vm.action("terminate-hard", vid)
    wait_state(one, vid, 6)
    after = eventually(lambda: _usage_dropped(one.host.info(host).HOST_SHARE, before))
    assert after.RUNNING_VMS == before.RUNNING_VMS - 1


def _usage_dropped(share, before):
    assert share.MEM_USAGE == before.MEM_USAGE - 256 * 1024
    return share


def test_vm_pool_filters_ranges_and_permissions(zone, host):
    admin = zone.server(zone.leader())
    name = uniq("owner")
    uid = admin.user.allocate(name, "pw", "", [])
    user = zone.server(zone.leader(), session=f"{name}:pw")
    mine = [user.vm.allocate("MEMORY = 32\nCPU = 0.1", True) for _ in range(3)]
    theirs = admin.vm.allocate("MEMORY = 32\nCPU = 0.1", True)
    # Pools list newest first (oned.conf's API_LIST_ORDER defaults to DESC).
    newest = mine[::-1]
    seen = [v.ID for v in user.vmpool.info(-2, -1, -1, -1).VM]
    assert seen == newest
    assert [v.ID for v in user.vmpool.info(-3, -1, -1, -1).VM] == newest
    assert theirs in [v.ID for v in admin.vmpool.info(-2, -1, -1, -1).VM]
    assert [v.ID for v in admin.vmpool.info(uid, -1, -1, -1).VM] == newest
    assert [v.ID for v in admin.vmpool.info(uid, mine[1], -1, -1).VM] == newest[:2]
    assert [v.ID for v in admin.vmpool.info(uid, mine[0], mine[1], -1).VM] == newest[1:]
    # A page of 2 after the newest.
    assert [v.ID for v in admin.vmpool.info(uid, 1, -2, -1).VM] == newest[1:]
    assert [v.ID for v in admin.vmpool.info(uid, -1, -1, 2).VM] == newest
    assert admin.vmpool.info(uid, -1, -1, 3).VM == []
    assert [v.ID for v in admin.vmpool.infoextended(uid, -1, -1, -1).VM] == newest
    with pytest.raises(pyone.OneAuthorizationException):
        user.vm.info(theirs)
    with pytest.raises(pyone.OneAuthorizationException):
        user.vm.action("terminate", theirs)
    with pytest.raises(pyone.OneApiException):
        admin.vmpool.info(-5, -1, -1, -1)
    user.vm.action("terminate", mine[0])
    wait_state(user, mine[0], 6)
    assert [v.ID for v in user.vmpool.info(-3, -1, -1, -1).VM] == newest[:2]
    assert mine[0] in [v.ID for v in user.vmpool.info(-3, -1, -1, -2).VM]
