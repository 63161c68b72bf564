"""pyone virtual routers against a 3-server OneHA zone: every one.vrouter call and the pool,
through a follower and the leader, with OpenNebula's refusals word for word."""

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


def network(one, name):
    return one.vn.allocate(
        f'NAME = "{name}"\nVN_MAD = dummy\nAR = [ TYPE = IP4, IP = 10.9.0.1, SIZE = 32 ]'
    )


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_allocate_instantiate_nics_and_delete(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    vn = network(one, uniq("lan"))
    name = uniq("vr")
    vr = one.vrouter.allocate(
        f'NAME = "{name}"\nNIC = [ NETWORK_ID = {vn}, FLOATING_IP = YES ]'
    )
    r = eventually(lambda: one.vrouter.info(vr))
    assert r.NAME == name
    assert r.TEMPLATE["NIC"]["VROUTER_IP"] == "10.9.0.1"
    ids = eventually(lambda: [x.ID for x in one.vrouterpool.info(-2, -1, -1).VROUTER])
    assert vr in ids

    vrt = one.template.allocate(
        f'NAME = "{uniq("vrt")}"\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES'
    )
    assert error_of(
        one.vrouter.instantiate, pyone.OneActionException, vr, 1, -1, "", False, ""
    ) == (
        "[one.vrouter.instantiate] A template ID was not provided, "
        "and the virtual router does not have a default one"
    )
    assert one.vrouter.instantiate(vr, 2, vrt, "", True, "") == vr
    vms = [v for v in leader.vrouter.info(vr).VMS.ID]
    assert len(vms) == 2
    vm = leader.vm.info(vms[0])
    assert vm.NAME == f"vr-{name}-0"
    assert vm.TEMPLATE["VROUTER_ID"] == str(vr)
    assert vm.STATE == 2  # on hold

    # The router takes the NIC; its VMs on hold cannot, as in OpenNebula.
    assert error_of(
        one.vrouter.attachnic, pyone.OneActionException, vr, f"NIC = [ NETWORK_ID = {vn} ]"
    ) == (f"[one.vrouter.attachnic] Could not add a new NIC to VM {vms[0]}, wrong state HOLD.")
    assert [n["NIC_ID"] for n in leader.vrouter.info(vr).TEMPLATE["NIC"]] == ["0", "1"]
    bare = one.vrouter.allocate(f'NAME = "{uniq("bare")}"')
    assert one.vrouter.attachnic(bare, f"NIC = [ NETWORK_ID = {vn}, FLOATING_IP = YES ]") == bare
    # After the router's own address and one for each of its VMs.
    assert leader.vrouter.info(bare).TEMPLATE["NIC"]["VROUTER_IP"] == "10.9.0.4"
    assert one.vrouter.detachnic(bare, 0) == bare
    assert "NIC" not in leader.vrouter.info(bare).TEMPLATE
    one.vrouter.delete(bare)
    assert error_of(one.vrouter.detachnic, pyone.OneActionException, vr, 7) == (
        "[one.vrouter.detachnic] NIC with NIC_ID 7 does not exist."
    )
    assert error_of(
        one.vrouter.attachnic, pyone.OneActionException, vr, "DESCRIPTION = x"
    ) == "[one.vrouter.attachnic] The template must contain one NIC attribute"

    one.vrouter.delete(vr)
    with pytest.raises(pyone.OneNoExistsException):
        leader.vrouter.info(vr)
    for v in vms:
        assert eventually(lambda: leader.vm.info(v).STATE == 6 or None)
    assert error_of(one.vrouter.delete, pyone.OneNoExistsException, vr) == (
        f"[one.vrouter.delete] Error getting virtual router [{vr}]."
    )


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_update_rename_chmod_chown_lock(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    vn = network(one, uniq("lan"))
    name = uniq("vr")
    vr = one.vrouter.allocate(f'NAME = "{name}"\nNIC = [ NETWORK_ID = {vn} ]')
    eventually(lambda: one.vrouter.info(vr))
    one.vrouter.update(vr, 'DESCRIPTION = "blue"\nNIC = [ NETWORK_ID = 99 ]', 0)
    r = leader.vrouter.info(vr)
    assert r.TEMPLATE["DESCRIPTION"] == "blue"
    assert r.TEMPLATE["NIC"]["NETWORK_ID"] == str(vn)
    one.vrouter.rename(vr, f"{name}-2")
    assert leader.vrouter.info(vr).NAME == f"{name}-2"
    one.vrouter.chmod(vr, -1, -1, -1, 1, -1, -1, -1, -1, -1)
    assert leader.vrouter.info(vr).PERMISSIONS.GROUP_U == 1
    uid = leader.user.allocate(uniq("u"), "pw", "", [])
    one.vrouter.chown(vr, uid, 1)
    r = leader.vrouter.info(vr)
    assert (r.UID, r.GID) == (uid, 1)
    one.vrouter.lock(vr, 2)
    assert leader.vrouter.info(vr).LOCK.LOCKED == 2
    assert "is locked" in error_of(
        one.vrouter.rename, pyone.OneAuthorizationException, vr, "x"
    )
    one.vrouter.unlock(vr)
    one.vrouter.delete(vr)
    with pytest.raises(pyone.OneNoExistsException):
        leader.vrouter.info(vr)
