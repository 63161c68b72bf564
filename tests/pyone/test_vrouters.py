"""pyone virtual routers against a 3-server OneHA zone: every one.vrouter call and the pool,
through a follower and the leader, with OpenNebula's refusals word for word."""

import uuid

import pyone
import pytest

from conftest import eventually


def until(check, timeout=20.0):
    """Waits for `check` to hold (`eventually` retries only on an exception)."""

    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(call, exception, *args):
    with pytest.raises(exception) as e:
        call(*args)
    return str(e.value)


def network(one, name):
    return one.vn.allocate(
        f'NAME = "{name}"\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.9.0.1, SIZE = 32 ]'
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
        until(lambda: leader.vm.info(v).STATE == 6)
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


def nics_of(template):
    nics = template.get("NIC", [])
    return nics if isinstance(nics, list) else [nics]


def routers_in(one, vn):
    return sorted(one.vn.info(vn).VROUTERS.ID or [])


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_router_and_vm_nics_networks_and_disks_as_opennebula(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    lan = uniq("lan")
    vn = one.vn.allocate(
        f'NAME = "{lan}"\nVN_MAD = dummy\nBRIDGE = br0\n'
        "AR = [ TYPE = IP4, IP = 10.8.0.1, SIZE = 16, BRIDGE = br7 ]"
    )
    vr = one.vrouter.allocate(
        f'NAME = "{uniq("vr")}"\n'
        f"NIC = [ NETWORK_ID = {vn}, FLOATING_IP = YES, MODEL = virtio, FILTER = clean ]\n"
        f"NIC = [ NETWORK_ID = {vn}, INBOUND_AVG_BW = 10 ]"
    )
    floating, plain = nics_of(eventually(lambda: leader.vrouter.info(vr)).TEMPLATE)
    # The floating NIC keeps what OpenNebula's keeps: no restricted attribute (BRIDGE, FILTER).
    assert dict(floating) == {
        "AR_ID": "0",
        "FLOATING_IP": "YES",
        "MODEL": "virtio",
        "NETWORK": lan,
        "NETWORK_ID": str(vn),
        "NIC_ID": "0",
        "VROUTER_IP": "10.8.0.1",
        "VROUTER_MAC": "02:00:0a:08:00:01",
    }
    assert dict(plain) == {
        "INBOUND_AVG_BW": "10",
        "NETWORK": lan,
        "NETWORK_ID": str(vn),
        "NIC_ID": "1",
    }
    # Every router with a NIC in the network is in its list, floating or not.
    quiet = one.vrouter.allocate(f'NAME = "{uniq("q")}"\nNIC = [ NETWORK_ID = {vn} ]')
    assert routers_in(leader, vn) == sorted([vr, quiet])
    one.vrouter.delete(quiet)
    assert routers_in(leader, vn) == [vr]

    vrt = one.template.allocate(
        f'NAME = "{uniq("vrt")}"\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES'
    )
    one.vrouter.instantiate(vr, 1, vrt, "", True, "")
    vm = leader.vrouter.info(vr).VMS.ID[0]
    first = nics_of(leader.vm.info(vm).TEMPLATE)[0]
    assert sorted(first) == [
        "AR_ID", "BRIDGE", "BRIDGE_TYPE", "CLUSTER_ID", "FLOATING_IP", "IP", "MAC", "MODEL",
        "NAME", "NETWORK", "NETWORK_ID", "NIC_ID", "SECURITY_GROUPS",
        "TARGET", "VN_MAD", "VROUTER_IP", "VROUTER_MAC",
    ]
    assert (first["VROUTER_IP"], first["IP"], first["BRIDGE"]) == ("10.8.0.1", "10.8.0.2", "br7")

    # Disks of a router's VM are refused: on hold it has no host yet.
    disk = "DISK = [ IMAGE_ID = 0 ]"
    assert error_of(one.vm.attach, pyone.OneActionException, vm, disk) == (
        "[one.vm.attach] VM is not running in any host"
    )
    leader.host.allocate(uniq("node"), "dummy", "dummy", -1)
    leader.vm.action("release", vm)
    until(lambda: leader.vm.info(vm).LCM_STATE == 3)
    assert error_of(one.vm.attach, pyone.OneActionException, vm, disk) == (
        "[one.vm.attach] Action is not supported for virtual router VMs"
    )
    assert error_of(one.vm.detach, pyone.OneActionException, vm, 0) == (
        "[one.vm.detach] Action is not supported for virtual router VMs"
    )
    one.vrouter.delete(vr)
    assert routers_in(leader, vn) == []


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_instantiate_undoes_its_vms_when_one_fails_and_caps_a_call(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    vn = one.vn.allocate(
        f'NAME = "{uniq("small")}"\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.7.0.1, SIZE = 2 ]'
    )
    vr = one.vrouter.allocate(f'NAME = "{uniq("vr")}"\nNIC = [ NETWORK_ID = {vn} ]')
    vrt = one.template.allocate(
        f'NAME = "{uniq("vrt")}"\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES'
    )
    before = {v.ID for v in leader.vmpool.info(-2, -1, -1, -1).VM}
    # The third VM finds no address: the error is its own, the two before it are deleted.
    assert error_of(
        one.vrouter.instantiate, pyone.OneException, vr, 3, vrt, "", False, ""
    ) == (
        "[one.vrouter.instantiate] Error allocating a new virtual router. "
        f"Cannot get IP/MAC lease from virtual network {vn}."
    )
    until(lambda: {v.ID for v in leader.vmpool.info(-2, -1, -1, -1).VM} <= before)
    r = leader.vrouter.info(vr)
    assert not r.VMS.ID
    assert "TEMPLATE_ID" not in r.TEMPLATE
    until(lambda: leader.vn.info(vn).USED_LEASES == 0)
    assert error_of(
        one.vrouter.instantiate, pyone.OneActionException, vr, 257, vrt, "", False, ""
    ) == "[one.vrouter.instantiate] Cannot create more than 256 VMs in one call"
    assert {v.ID for v in leader.vmpool.info(-2, -1, -1, -1).VM} <= before
    one.vrouter.delete(vr)


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_a_user_sees_only_routers_it_may_use_and_no_restricted_extra(zone, via):
    leader = zone.server(zone.leader())
    index = zone.leader() if via == "leader" else zone.followers()[0]
    name = uniq("u")
    uid = leader.user.allocate(name, "pw", "", [])
    user = zone.server(index, session=f"{name}:pw")
    vn = network(leader, uniq("lan"))
    leader.vn.chmod(vn, -1, -1, -1, -1, -1, -1, 1, -1, -1)
    theirs = leader.vrouter.allocate(f'NAME = "{uniq("t")}"\nNIC = [ NETWORK_ID = {vn} ]')
    mine = leader.vrouter.allocate(f'NAME = "{uniq("m")}"\nNIC = [ NETWORK_ID = {vn} ]')
    leader.vrouter.chown(mine, uid, -1)
    assert routers_in(leader, vn) == sorted([theirs, mine])
    # Without MANAGE on the network, only the routers it may use.
    until(lambda: routers_in(user, vn) == [mine])

    vrt = leader.template.allocate(
        f'NAME = "{uniq("vrt")}"\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES'
    )
    assert error_of(
        user.vrouter.instantiate,
        pyone.OneAuthorizationException,
        mine, 1, vrt, "", True, "CPU_COST = 1",
    ) == (
        f"[one.vrouter.instantiate] User [{uid}] : "
        "User Template includes a restricted attribute CPU_COST."
    )
    for vr in (theirs, mine):
        leader.vrouter.delete(vr)
