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
