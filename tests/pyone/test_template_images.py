"""pyone: a template's images in one.template.chmod/delete with `recursive` and
one.template.instantiate with `persistent`; one.vm.allocate with DEPLOY_ID (an imported VM); the
right VM rename/update take from VM_*_OPERATIONS."""

import uuid

import pyone
import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ready_image(leader, one, name):
    iid = one.image.allocate(f'NAME = "{name}"\nPATH = /tmp/{name}.qcow2', 1)

    def is_ready():
        assert leader.image.info(iid).STATE == 1
        return iid

    return eventually(is_ready)


def disks(t):
    d = t.TEMPLATE.get("DISK", [])
    return d if isinstance(d, list) else [d]


def test_recursive_chmod_persistent_instantiate_and_recursive_delete(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    a = ready_image(leader, follower, uniq("a"))
    b_name = uniq("b")
    b = ready_image(leader, follower, b_name)
    name = uniq("tpl")
    tid = follower.template.allocate(
        f'NAME = "{name}"\nCPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {a} ]\n'
        f'DISK = [ IMAGE = "{b_name}" ]'
    )

    follower.template.chmod(tid, 1, 1, 0, 1, 1, 0, 1, 0, 0, True)
    for iid in (a, b):
        p = leader.image.info(iid).PERMISSIONS
        assert (p.GROUP_M, p.OTHER_U) == (1, 1)
    assert leader.template.info(tid).PERMISSIONS.GROUP_M == 1

    vid = follower.template.instantiate(tid, "", True, "", True)
    vm = leader.vm.info(vid)
    copy = int(vm.TEMPLATE["TEMPLATE_ID"])
    assert copy != tid
    assert vm.TEMPLATE["CLONING_TEMPLATE_ID"] == str(tid)
    t = leader.template.info(copy)
    assert t.NAME == name + "-copy"
    copies = [int(d["IMAGE_ID"]) for d in disks(t)]
    assert len(copies) == 2 and not set(copies) & {a, b}
    for n, iid in enumerate(copies):
        image = leader.image.info(iid)
        assert image.NAME == f"{name}-copy-disk-{n}"
        assert image.PERSISTENT == 1

    def sources_ready():
        assert all(leader.image.info(i).STATE == 1 for i in (a, b))

    eventually(sources_ready)
    assert follower.template.delete(tid, True) == tid
    for iid in (a, b):
        with pytest.raises(pyone.OneNoExistsException):
            leader.image.info(iid)
    with pytest.raises(pyone.OneNoExistsException):
        leader.template.info(tid)
    with pytest.raises(pyone.OneNoExistsException):
        follower.template.chmod(tid, 1, 1, 0, 0, 0, 0, 0, 0, 0, True)


def test_an_allocated_vm_with_a_deploy_id_is_imported(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    vid = follower.vm.allocate('CPU = 0.1\nMEMORY = 32\nDEPLOY_ID = "from-elsewhere"', True)
    vm = leader.vm.info(vid)
    assert vm.DEPLOY_ID == "from-elsewhere"
    assert vm.TEMPLATE["IMPORTED"] == "YES"
    assert "DEPLOY_ID" not in vm.USER_TEMPLATE
    with pytest.raises(pyone.OneInternalException) as e:
        follower.vm.allocate("CPU = 0.1\nMEMORY = 32\nDEPLOY_ID = one-7")
    assert "Trying to import an OpenNebula VM: 'one-*'." in str(e.value)


def test_vm_rename_takes_its_right_from_the_users_lists(zone):
    leader = zone.server(zone.leader())
    user = uniq("ops")
    uid = leader.user.allocate(user, "pw", "", [])
    mine = zone.server(zone.leader(), session=f"{user}:pw")
    vid = mine.vm.allocate("CPU = 0.1\nMEMORY = 32", True)
    mine.vm.rename(vid, "first")
    leader.user.update(uid, 'VM_ADMIN_OPERATIONS = "rename"', 1)
    with pytest.raises(pyone.OneAuthorizationException):
        mine.vm.rename(vid, "second")
    mine.vm.update(vid, "NOTE = still-mine", 1)
    assert leader.vm.info(vid).NAME == "first"
