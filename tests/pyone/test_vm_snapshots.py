"""pyone VM snapshots and disk operations against a 3-server OneHA zone, through a follower:
snapshotcreate/revert/delete, disksnapshotcreate/revert/delete/rename, diskresize and
disksaveas, each with OpenNebula's main refusals."""

import uuid

import pyone
import pytest

from conftest import eventually


def until(check, timeout=15.0):
    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


def _in(one, vm, state, lcm):
    body = one.vm.info(vm)
    return body.STATE == state and body.LCM_STATE == lcm


def _running(one, vm):
    return _in(one, vm, 3, 3)


def _off(one, vm):
    return _in(one, vm, 8, 0)


def _as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


@pytest.fixture(scope="module")
def sides(zone):
    follower, leader = zone.server(zone.followers()[0]), zone.server(zone.leader())
    leader.host.allocate(f"h-{uuid.uuid4().hex[:6]}", "dummy", "dummy", -1)
    return follower, leader


def _vm_with_disk(follower, leader, persistent=False, fmt="raw"):
    name = f"img-{uuid.uuid4().hex[:6]}"
    image = follower.image.allocate(
        f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 16\nFORMAT = {fmt}\n'
        f'PERSISTENT = {"YES" if persistent else "NO"}',
        1,
    )
    until(lambda: leader.image.info(image).STATE == 1)
    vm = follower.vm.allocate(
        f'CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]\nDISK = [ TYPE = fs, SIZE = 4 ]'
    )
    until(lambda: _running(leader, vm))
    return vm, image


def test_system_snapshots(sides):
    follower, leader = sides
    vm = follower.vm.allocate("CPU = 0.1\nMEMORY = 32")
    until(lambda: _running(leader, vm))

    assert follower.vm.snapshotcreate(vm, "one") == 0
    until(lambda: _running(leader, vm))
    snap = _as_list(leader.vm.info(vm).TEMPLATE.get("SNAPSHOT"))
    assert [(s["SNAPSHOT_ID"], s["NAME"], s["HYPERVISOR_ID"]) for s in snap] == [
        ("0", "one", "dummy-snap")
    ]
    assert "ACTIVE" not in snap[0]
    assert follower.vm.snapshotcreate(vm, "") == 1
    until(lambda: _running(leader, vm))

    # OpenNebula 7.0.2 answers -1 (its untouched resp_id) for revert and delete.
    assert follower.vm.snapshotrevert(vm, 0) == -1
    until(lambda: _running(leader, vm))
    with pytest.raises(pyone.OneActionException, match=f"revert VM {vm} to snapshot 7, it does not exist"):
        follower.vm.snapshotrevert(vm, 7)

    assert follower.vm.snapshotdelete(vm, 1) == -1
    until(
        lambda: _running(leader, vm)
        and len(_as_list(leader.vm.info(vm).TEMPLATE.get("SNAPSHOT"))) == 1
    )
    with pytest.raises(pyone.OneActionException, match=f"delete snapshot 5 for VM {vm}, it does not exist"):
        follower.vm.snapshotdelete(vm, 5)

    held = follower.vm.allocate("CPU = 0.1\nMEMORY = 32", True)
    with pytest.raises(pyone.OneActionException, match="wrong state HOLD"):
        follower.vm.snapshotcreate(held, "x")


def test_disk_snapshots(sides):
    follower, leader = sides
    # qcow2: the local TM's ALLOW_ORPHANS = FORMAT keeps a chain (a raw disk's are orphans).
    vm, _ = _vm_with_disk(follower, leader, fmt="qcow2")

    assert follower.vm.disksnapshotcreate(vm, 0, "a") == 0
    until(lambda: _running(leader, vm))
    assert follower.vm.disksnapshotcreate(vm, 0, "b") == 1
    until(lambda: _running(leader, vm))
    body = leader.vm.info(vm)
    snaps = body.SNAPSHOTS[0]
    assert (snaps.DISK_ID, snaps.NEXT_SNAPSHOT, snaps.ALLOW_ORPHANS) == (0, 2, "NO")
    assert [(s.ID, s.NAME, s.PARENT, s.ACTIVE) for s in snaps.SNAPSHOT] == [
        (0, "a", -1, None),
        (1, "b", 0, "YES"),
    ]

    assert follower.vm.disksnapshotrename(vm, 0, 1, "bee") == vm
    assert leader.vm.info(vm).SNAPSHOTS[0].SNAPSHOT[1].NAME == "bee"
    with pytest.raises(pyone.OneActionException, match="Snapshot does not exist"):
        follower.vm.disksnapshotrename(vm, 0, 9, "x")
    with pytest.raises(pyone.OneActionException, match="volatile disks"):
        follower.vm.disksnapshotcreate(vm, 1, "v")
    with pytest.raises(pyone.OneActionException, match="VM disk does not exist"):
        follower.vm.disksnapshotcreate(vm, 5, "v")
    with pytest.raises(pyone.OneActionException, match="wrong state RUNNING"):
        follower.vm.disksnapshotrevert(vm, 0, 0)

    follower.vm.action("poweroff", vm)
    until(lambda: _off(leader, vm))
    assert follower.vm.disksnapshotrevert(vm, 0, 0) == vm
    until(lambda: _off(leader, vm))
    with pytest.raises(pyone.OneActionException, match="active snapshot with children"):
        follower.vm.disksnapshotdelete(vm, 0, 0)
    assert follower.vm.disksnapshotdelete(vm, 0, 1) == vm
    until(lambda: _off(leader, vm) and len(leader.vm.info(vm).SNAPSHOTS[0].SNAPSHOT) == 1)
    # Taken while powered off too.
    assert follower.vm.disksnapshotcreate(vm, 0, "off") == 2
    until(lambda: _off(leader, vm))


def test_disk_resize_and_quota(sides, zone):
    follower, leader = sides
    vm, _ = _vm_with_disk(follower, leader)
    assert follower.vm.diskresize(vm, 0, "24") == 0
    until(lambda: _running(leader, vm))
    disks = _as_list(leader.vm.info(vm).TEMPLATE["DISK"])
    assert disks[0]["SIZE"] == "24" and "SIZE_PREV" not in disks[0]
    with pytest.raises(pyone.OneActionException, match="greater than current one"):
        follower.vm.diskresize(vm, 0, "10")
    with pytest.raises(pyone.OneActionException, match="not a valid integer"):
        follower.vm.diskresize(vm, 0, "ten")

    # A persistent disk's image takes the new size once the driver is done.
    pvm, pimage = _vm_with_disk(follower, leader, persistent=True)
    assert follower.vm.diskresize(pvm, 0, "20") == 0
    until(lambda: _running(leader, pvm) and leader.image.info(pimage).SIZE == 20)

    # A persistent disk grows within its owner's DATASTORE quota.
    name = f"q-{uuid.uuid4().hex[:6]}"
    uid = leader.user.allocate(name, "pw", "core", [])
    leader.user.quota(uid, "DATASTORE = [ ID = 1, SIZE = 20 ]")
    mine = zone.server(zone.followers()[0], session=f"{name}:pw")
    image = mine.image.allocate(f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 16\nPERSISTENT = YES', 1)
    until(lambda: leader.image.info(image).STATE == 1)
    own = mine.vm.allocate(f"CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]")
    until(lambda: _running(leader, own))
    with pytest.raises(pyone.OneAuthorizationException, match="limit of 20 reached for SIZE quota in DATASTORE with ID: 1"):
        mine.vm.diskresize(own, 0, "32")
    with pytest.raises(pyone.OneAuthorizationException, match="limit of 20 reached for SIZE quota in DATASTORE"):
        mine.vm.disksnapshotcreate(own, 0, "s")


def test_disk_saveas(sides):
    follower, leader = sides
    vm, _ = _vm_with_disk(follower, leader)
    name = f"saved-{uuid.uuid4().hex[:6]}"
    image = follower.vm.disksaveas(vm, 0, name, "", -1)
    until(lambda: leader.image.info(image).STATE == 1)
    until(lambda: _running(leader, vm))
    body = leader.image.info(image)
    assert (body.NAME, body.SIZE, body.TEMPLATE["SAVED_VM_ID"]) == (name, 16, str(vm))
    with pytest.raises(pyone.OneInternalException, match="DISK does not exist"):
        follower.vm.disksaveas(vm, 7, "x", "", -1)
    with pytest.raises(pyone.OneInternalException, match="Snapshot does not exist"):
        follower.vm.disksaveas(vm, 0, "x", "", 3)
    held = follower.vm.allocate("CPU = 0.1\nMEMORY = 32", True)
    with pytest.raises(pyone.OneInternalException, match="RUNNING, POWEROFF or SUSPENDED"):
        follower.vm.disksaveas(held, 0, "x", "", -1)
