"""pyone: chmod, chown, rename and update on owned objects."""

import uuid

import pyone
import pytest


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_vm_rename_update_chmod_and_chown(zone):
    one = zone.server(zone.leader())
    vid = one.vm.allocate("MEMORY = 32\nCPU = 0.1", True)
    one.vm.rename(vid, "renamed")
    assert one.vm.info(vid).NAME == "renamed"
    one.vm.update(vid, 'LABEL = "blue"', 1)
    assert one.vm.info(vid).USER_TEMPLATE["LABEL"] == "blue"
    one.vm.chmod(vid, -1, -1, -1, 1, -1, -1, 1, -1, -1)
    p = one.vm.info(vid).PERMISSIONS
    assert (p.GROUP_U, p.OTHER_U, p.OWNER_U) == (1, 1, 1)
    name = uniq("newowner")
    uid = one.user.allocate(name, "pw", "", [])
    one.vm.chown(vid, uid, 1)
    vm = one.vm.info(vid)
    assert (vm.UID, vm.GID, vm.UNAME) == (uid, 1, name)
    assert zone.server(zone.leader(), session=f"{name}:pw").vm.info(vid).ID == vid
    with pytest.raises(pyone.OneNoExistsException):
        one.vm.chown(vid, 99999, -1)
    with pytest.raises(pyone.OneApiException):
        one.vm.update(vid, "A = 1", 5)
    # Readable by everyone now: end it so other tests' pools stay theirs.
    one.vm.action("terminate", vid)


def test_template_and_image_rename_and_network_update(zone):
    one = zone.server(zone.leader())
    tid = one.template.allocate(f'NAME = "{uniq("t")}"\nCPU = 1\nMEMORY = 64')
    new = uniq("renamed")
    one.template.rename(tid, new)
    assert one.template.info(tid).NAME == new
    iid = one.image.allocate(f'NAME = "{uniq("i")}"\nTYPE = DATABLOCK\nSIZE = 1', 1)
    one.image.rename(iid, new)
    assert one.image.info(iid).NAME == new
    nid = one.vn.allocate(f'NAME = "{uniq("n")}"\nVN_MAD = dummy\nBRIDGE = br0', -1)
    one.vn.update(nid, 'DESCRIPTION = "lab"', 1)
    assert one.vn.info(nid).TEMPLATE["DESCRIPTION"] == "lab"


def test_issue_11_locks_parse_in_pyone_and_hold_back_changes(zone):
    one = zone.server(zone.leader())
    tid = one.template.allocate(f'NAME = "{uniq("locked")}"\nCPU = 1\nMEMORY = 64')
    vid = one.vm.allocate("MEMORY = 32\nCPU = 0.1", True)
    one.template.lock(tid, 2)
    one.vm.lock(vid, 1, False)
    t = one.template.info(tid)
    assert (t.LOCK.LOCKED, t.LOCK.OWNER) == (2, 0)
    assert one.vm.info(vid).LOCK.LOCKED == 1
    # Locked for oneadmin too, and the pools still parse.
    with pytest.raises(pyone.OneAuthorizationException):
        one.template.rename(tid, uniq("no"))
    assert any(x.ID == tid for x in one.templatepool.info(-2, -1, -1).VMTEMPLATE)
    assert any(v.ID == vid for v in one.vmpool.info(-2, -1, -1, -2).VM)
    with pytest.raises(pyone.OneActionException):
        one.vm.lock(vid, 9)
    one.template.unlock(tid)
    one.vm.unlock(vid)
    assert one.template.info(tid).LOCK is None
    one.template.rename(tid, uniq("free"))
    one.vm.action("terminate", vid)
