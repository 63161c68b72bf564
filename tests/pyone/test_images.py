"""pyone: the image methods beyond the owned-object calls, and one.datastore.enable, through a
follower and the leader, with OpenNebula's refusals."""

import uuid

import pyone
import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(call, exception, *args):
    with pytest.raises(exception) as e:
        call(*args)
    return str(e.value)


def ready_image(zone, one, extra=""):
    leader = zone.server(zone.leader())
    iid = one.image.allocate(f'NAME = "{uniq("img")}"\nPATH = /tmp/a.qcow2\nFORMAT = qcow2{extra}', 1)

    def is_ready():
        assert leader.image.info(iid).STATE == 1
        return iid

    return eventually(is_ready)


def state(zone, iid, value):
    def check():
        image = zone.server(zone.leader()).image.info(iid)
        assert image.STATE == value
        return image

    return eventually(check)


@pytest.fixture(params=["leader", "follower"])
def one(zone, request):
    return zone.server(zone.leader() if request.param == "leader" else zone.followers()[0])


def test_clone(zone, one):
    iid = ready_image(zone, one)
    copy = one.image.clone(iid, uniq("copy"))
    image = state(zone, copy, 1)
    assert image.PATH == f"/var/lib/one//datastores/1/{iid}"
    assert image.CLONING_ID == -1 and image.FORMAT == "qcow2"
    assert state(zone, iid, 1).CLONING_OPS == 0
    assert error_of(one.image.clone, pyone.OneException, iid, "x", 0) == (
        "[one.image.clone] Clone only supported for IMAGE_DS Datastores"
    )
    assert error_of(one.image.clone, pyone.OneNoExistsException, 999999, "x") == (
        "[one.image.clone] Error getting image [999999]."
    )


def test_persistent(zone, one):
    iid = ready_image(zone, one)
    assert one.image.persistent(iid, True) == iid
    eventually(lambda: _assert(zone.server(zone.leader()).image.info(iid).PERSISTENT == 1))
    one.image.persistent(iid, False)
    eventually(lambda: _assert(zone.server(zone.leader()).image.info(iid).PERSISTENT == 0))


def test_enable(zone, one):
    iid = ready_image(zone, one)
    one.image.enable(iid, False)
    state(zone, iid, 3)
    assert error_of(one.image.snapshotdelete, pyone.OneActionException, iid, 0) == (
        "[one.image.snapshotdelete] Cannot delete snapshot in state DISABLED"
    )
    one.image.enable(iid, True)
    state(zone, iid, 1)


def test_chtype(zone, one):
    iid = ready_image(zone, one)
    one.image.chtype(iid, "DATABLOCK")
    eventually(lambda: _assert(zone.server(zone.leader()).image.info(iid).TYPE == 2))
    assert error_of(one.image.chtype, pyone.OneActionException, iid, "KERNEL") == (
        "[one.image.chtype] Cannot change image type to an incompatible type for the current datastore."
    )


def test_snapshots_and_restore(zone, one):
    iid = ready_image(zone, one)
    for method in ("snapshotdelete", "snapshotrevert", "snapshotflatten"):
        call = getattr(one.image, method)
        assert error_of(call, pyone.OneActionException, iid, 0) == (
            f"[one.image.{method}] Snapshot does not exist"
        )
    assert error_of(one.image.restore, pyone.OneActionException, iid, 1, "") == (
        "[one.image.restore] Can only restore images of type BACKUP"
    )


def test_datastore_enable(zone, one):
    assert error_of(one.datastore.enable, pyone.OneInternalException, 1, False) == (
        "[one.datastore.enable] Only SYSTEM_DS can be disabled or enabled"
    )
    one.datastore.enable(0, False)
    eventually(lambda: _assert(zone.server(zone.leader()).datastore.info(0).STATE == 1))
    one.datastore.enable(0, True)
    eventually(lambda: _assert(zone.server(zone.leader()).datastore.info(0).STATE == 0))


def _assert(cond):
    assert cond


def _snapshot_list(image):
    snaps = image.SNAPSHOTS.SNAPSHOT
    return snaps if isinstance(snaps, list) else ([snaps] if snaps is not None else [])


def test_a_persistent_image_keeps_its_vm_disk_snapshots_through_a_follower(zone):
    follower, leader = zone.server(zone.followers()[0]), zone.server(zone.leader())
    leader.host.allocate(uniq("h"), "dummy", "dummy", -1)
    # qcow2: its disk snapshots chain (ALLOW_ORPHANS NO), and the image keeps that mode.
    image = follower.image.allocate(
        f'NAME = "{uniq("pimg")}"\nTYPE = DATABLOCK\nSIZE = 16\nFORMAT = qcow2\nPERSISTENT = YES', 1
    )
    state(zone, image, 1)
    vm = follower.vm.allocate(f"CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]")

    def running():
        body = leader.vm.info(vm)
        assert (body.STATE, body.LCM_STATE) == (3, 3)

    eventually(running, 20.0)
    assert follower.vm.disksnapshotcreate(vm, 0, "first") == 0
    eventually(running, 20.0)
    assert follower.vm.disksnapshotcreate(vm, 0, "second") == 1
    eventually(running, 20.0)
    follower.vm.action("terminate-hard", vm)

    def handed_back():
        body = follower.image.info(image)
        assert body.STATE == 1 and body.RUNNING_VMS == 0
        assert [s.NAME for s in _snapshot_list(body)] == ["first", "second"]
        return body

    body = eventually(handed_back, 20.0)
    assert body.SNAPSHOTS.NEXT_SNAPSHOT == "2" or body.SNAPSHOTS.NEXT_SNAPSHOT == 2
    assert error_of(follower.image.snapshotdelete, pyone.OneActionException, image, 1) == (
        "[one.image.snapshotdelete] Cannot delete the active snapshot"
    )
    assert follower.image.snapshotrevert(image, 0) == 0
    state(zone, image, 1)
    assert follower.image.snapshotdelete(image, 1) == 1

    def one_left():
        assert [s.ID for s in _snapshot_list(follower.image.info(image))] == [0]

    eventually(one_left, 20.0)
    assert follower.image.snapshotflatten(image, 0) == 0

    def none_left():
        assert _snapshot_list(follower.image.info(image)) == []

    eventually(none_left, 20.0)
