"""pyone VM migrate, recover, updateconf and scheduled actions against a 3-server OneHA zone,
through a follower: each call's success and its main refusals."""

import time
import uuid

import pyone
import pytest

from conftest import eventually


def until(check, timeout=20.0):
    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


def _state(one, vm):
    body = one.vm.info(vm)
    return (body.STATE, body.LCM_STATE)


def _hosts(one, vm):
    recs = one.vm.info(vm).HISTORY_RECORDS.HISTORY
    return [h.HID for h in recs]


@pytest.fixture(scope="module")
def sides(zone):
    follower, leader = zone.server(zone.followers()[0]), zone.server(zone.leader())
    a = leader.host.allocate(f"ma-{uuid.uuid4().hex[:6]}", "dummy", "dummy", -1)
    b = leader.host.allocate(f"mb-{uuid.uuid4().hex[:6]}", "dummy", "dummy", -1)
    until(lambda: all(leader.host.info(h).STATE == 2 for h in (a, b)))
    return follower, leader, a, b


def _running_vm(follower, leader, ctx=""):
    vm = follower.vm.allocate(f"CPU = 0.1\nMEMORY = 16\n{ctx}")
    until(lambda: _state(leader, vm) == (3, 3))
    return vm


def test_migrate_moves_a_vm_live_and_cold_and_refuses_what_opennebula_refuses(sides):
    follower, leader, a, b = sides
    vm = _running_vm(follower, leader)
    here = _hosts(leader, vm)[-1]
    there = b if here == a else a
    with pytest.raises(pyone.OneActionException, match="VM is already running on host"):
        follower.vm.migrate(vm, here, True, False, -1, 0)
    with pytest.raises(pyone.OneNoExistsException, match=r"Error getting host \[9999\]"):
        follower.vm.migrate(vm, 9999, True, False, -1, 0)

    assert follower.vm.migrate(vm, there, True, True, -1, 0) == vm
    until(lambda: _state(leader, vm) == (3, 3) and _hosts(leader, vm) == [here, there])
    assert follower.vm.migrate(vm, here, False, False, -1, 0) == vm
    until(lambda: _state(leader, vm) == (3, 3) and _hosts(leader, vm) == [here, there, here])

    held = follower.vm.allocate("CPU = 0.1\nMEMORY = 16", True)
    with pytest.raises(pyone.OneActionException, match="not available for state HOLD"):
        follower.vm.migrate(held, a, False, False, -1, 0)


def test_recover_deletes_recreates_and_refuses_wrong_states(sides):
    follower, leader, _, _ = sides
    vm = _running_vm(follower, leader)
    with pytest.raises(pyone.OneActionException, match="Wrong recovery operation code"):
        follower.vm.recover(vm, 7)
    assert follower.vm.recover(vm, 1) == vm
    held = follower.vm.allocate("CPU = 0.1\nMEMORY = 16", True)
    with pytest.raises(pyone.OneActionException, match="wrong state HOLD"):
        follower.vm.recover(held, 0)

    assert follower.vm.recover(vm, 4) == vm
    until(lambda: _state(leader, vm) == (3, 3) and len(_hosts(leader, vm)) == 2)
    assert follower.vm.recover(vm, 3) == vm
    until(lambda: _state(leader, vm) == (6, 0))
    with pytest.raises(pyone.OneActionException, match="already in DONE state"):
        follower.vm.recover(vm, 4)


def test_updateconf_changes_the_conf_sections_only(sides):
    follower, leader, _, _ = sides
    vm = _running_vm(follower, leader, 'CONTEXT = [ A = "1" ]')
    tmpl = 'OS = [ ARCH = "x86_64", NOPE = "1" ]\nMEMORY = "9999"\nCONTEXT = [ A = "2" ]'
    assert follower.vm.updateconf(vm, tmpl, 0) == vm
    # The context changed: updated live (HOTPLUG), then RUNNING again.
    until(lambda: _state(leader, vm) == (3, 3) and leader.vm.info(vm).TEMPLATE["OS"] == {"ARCH": "x86_64"})
    body = leader.vm.info(vm)
    assert body.TEMPLATE["MEMORY"] == "16"
    assert body.TEMPLATE["CONTEXT"]["A"] == "2"
    with pytest.raises(pyone.OneInternalException, match="update NIC to update network context"):
        follower.vm.updateconf(vm, 'CONTEXT = [ ETH0_IP = "1.2.3.4" ]', 1)
    with pytest.raises(pyone.OneException, match="Wrong update type"):
        follower.vm.updateconf(vm, "OS = [ ARCH = x ]", 3)
    plain = _running_vm(follower, leader)
    with pytest.raises(pyone.OneInternalException, match="does not have context"):
        follower.vm.updateconf(plain, 'CONTEXT = [ A = "1" ]', 0)


def test_scheduled_actions_are_managed_and_run_by_the_leader(sides):
    follower, leader, _, _ = sides
    vm = _running_vm(follower, leader)
    sid = follower.vm.schedadd(vm, 'SCHED_ACTION = [ ACTION = "poweroff", TIME = "+86400" ]')
    assert sid == 0
    with pytest.raises(pyone.OneActionException, match="No SCHED_ACTION attribute"):
        follower.vm.schedadd(vm, "A = 1")
    with pytest.raises(pyone.OneActionException, match="fly is not supported"):
        follower.vm.schedadd(vm, 'SCHED_ACTION = [ ACTION = "fly", TIME = "1" ]')
    with pytest.raises(pyone.OneInternalException, match="id = 5 doesn't exist"):
        follower.vm.schedupdate(vm, 5, 'SCHED_ACTION = [ TIME = "1" ]')
    with pytest.raises(pyone.OneNoExistsException):
        follower.vm.scheddelete(vm, 5)
    other = follower.vm.schedadd(vm, 'SCHED_ACTION = [ ACTION = "reboot", TIME = "+999999" ]')
    assert follower.vm.scheddelete(vm, other) == other

    at = int(time.time()) + 1
    assert follower.vm.schedupdate(vm, sid, f'SCHED_ACTION = [ TIME = "{at}" ]') == sid
    until(lambda: _state(leader, vm) == (8, 0))
    sa = leader.vm.info(vm).TEMPLATE["SCHED_ACTION"]
    assert int(sa["DONE"]) >= at and sa["ACTION"] == "poweroff"
