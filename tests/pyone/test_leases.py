"""pyone address ranges and leases against a 3-server OneHA zone: one.vn.add_ar, rm_ar,
free_ar, update_ar, hold, release, reserve and recover, and NICs that lease addresses, each
called through a follower (forwarded to the leader) and read back on the leader."""

import uuid

import pyone
import pytest

from conftest import eventually


def until(check, timeout=10.0):
    """Waits until `check` holds (the leader's driver moves networks on asynchronously)."""

    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


def _ready_network(one, leader, ar):
    name = f"net-{uuid.uuid4().hex[:6]}"
    vn = one.vn.allocate(f'NAME = "{name}"\nVN_MAD = "dummy"\nBRIDGE = br0\nAR = [ {ar} ]', -1)
    until(lambda: leader.vn.info(vn).STATE == 1)
    return vn, name


def _leases(one, vn):
    out = []
    for ar in one.vn.info(vn).AR_POOL.AR:
        if ar.LEASES is not None and ar.LEASES.LEASE:
            out.extend(ar.LEASES.LEASE)
    return out


@pytest.fixture
def sides(zone):
    return zone.server(zone.followers()[0]), zone.server(zone.leader())


def test_ranges_are_added_updated_and_removed(sides):
    follower, leader = sides
    vn, _ = _ready_network(follower, leader, "TYPE = IP4, IP = 192.168.7.10, SIZE = 4")
    ars = leader.vn.info(vn).AR_POOL.AR
    assert [(str(a.AR_ID), a.IP, a.IP_END, a.MAC) for a in ars] == [
        ("0", "192.168.7.10", "192.168.7.13", "02:00:c0:a8:07:0a")
    ]

    assert follower.vn.add_ar(vn, 'AR = [ TYPE = "ETHER", SIZE = 2 ]') == vn
    assert [str(a.AR_ID) for a in leader.vn.info(vn).AR_POOL.AR] == ["0", "1"]
    with pytest.raises(pyone.OneInternalException, match="Wrong or empty IP attribute"):
        follower.vn.add_ar(vn, 'AR = [ TYPE = "IP4", SIZE = 2 ]')

    follower.vn.update_ar(vn, "AR = [ AR_ID = 1, SIZE = 6 ]")
    assert str(leader.vn.info(vn).AR_POOL.AR[1].SIZE) == "6"
    with pytest.raises(pyone.OneInternalException, match="Address Range with ID 7 was not found"):
        follower.vn.update_ar(vn, "AR = [ AR_ID = 7, SIZE = 6 ]")

    follower.vn.rm_ar(vn, 1)
    assert [str(a.AR_ID) for a in leader.vn.info(vn).AR_POOL.AR] == ["0"]
    with pytest.raises(pyone.OneInternalException, match="Address Range does not exist"):
        follower.vn.rm_ar(vn, 1)


def test_hold_release_and_a_nic_lease(sides):
    follower, leader = sides
    vn, name = _ready_network(follower, leader, "TYPE = IP4, IP = 10.9.0.1, SIZE = 2")
    follower.vn.hold(vn, "LEASES = [ IP = 10.9.0.1 ]")
    assert [(l.IP, str(l.VM)) for l in _leases(leader, vn)] == [("10.9.0.1", "-1")]
    with pytest.raises(pyone.OneInternalException, match="not part of the address range or in use"):
        follower.vn.hold(vn, "LEASES = [ IP = 10.9.0.1 ]")
    with pytest.raises(pyone.OneInternalException, match="Missing MAC, IP or IP6"):
        follower.vn.hold(vn, "LEASES = [ AR_ID = 0 ]")

    # On hold: other tests' hosts must not deploy it meanwhile.
    vm = follower.vm.allocate(f'CPU = 1\nMEMORY = 32\nNIC = [ NETWORK = "{name}" ]', True)
    nic = leader.vm.info(vm).TEMPLATE["NIC"]
    assert (nic["IP"], nic["NETWORK_ID"], nic["TARGET"]) == ("10.9.0.2", str(vn), f"one-{vm}-0")
    with pytest.raises(pyone.OneInternalException, match="Cannot get IP/MAC lease"):
        follower.vm.allocate(f"CPU = 1\nMEMORY = 32\nNIC = [ NETWORK_ID = {vn} ]")
    with pytest.raises(pyone.OneInternalException, match="leases in use"):
        follower.vn.rm_ar(vn, 0)
    with pytest.raises(pyone.OneActionException, match="leases in use"):
        follower.vn.delete(vn)

    follower.vn.release(vn, "LEASES = [ IP = 10.9.0.1 ]")
    follower.vm.action("terminate-hard", vm)
    until(lambda: _leases(leader, vn) == [])
    assert leader.vn.info(vn).USED_LEASES == 0


def test_reservations_take_addresses_from_their_parent(sides):
    follower, leader = sides
    vn, _ = _ready_network(follower, leader, "TYPE = IP4, IP = 10.8.0.1, SIZE = 8")
    res = follower.vn.reserve(vn, f'SIZE = 3\nNAME = "res-{uuid.uuid4().hex[:6]}"')
    body = leader.vn.info(res)
    assert str(body.PARENT_NETWORK_ID) == str(vn)
    assert (body.AR_POOL.AR[0].IP, str(body.AR_POOL.AR[0].SIZE)) == ("10.8.0.1", "3")
    assert sorted(str(l.VNET) for l in _leases(leader, vn)) == [str(res)] * 3

    # More addresses into the same reservation, from a given IP.
    follower.vn.reserve(vn, f"SIZE = 2\nNETWORK_ID = {res}\nAR_ID = 0\nIP = 10.8.0.6")
    assert [a.IP for a in leader.vn.info(res).AR_POOL.AR] == ["10.8.0.1", "10.8.0.6"]
    with pytest.raises(pyone.OneActionException, match="SIZE must be a greater than 0"):
        follower.vn.reserve(vn, 'SIZE = 0\nNAME = "x"')
    with pytest.raises(pyone.OneActionException, match="NAME for reservation has to be set"):
        follower.vn.reserve(vn, "SIZE = 1")
    with pytest.raises(pyone.OneActionException, match="AR_ID must be specified"):
        follower.vn.reserve(vn, 'SIZE = 1\nNAME = "y"\nIP = 10.8.0.8')

    until(lambda: leader.vn.info(res).STATE == 1)
    follower.vn.free_ar(res, 1)
    assert len(_leases(leader, vn)) == 3
    follower.vn.delete(res)
    until(lambda: _leases(leader, vn) == [])


def test_recover_moves_only_from_the_states_opennebula_allows(sides):
    follower, leader = sides
    vn, _ = _ready_network(follower, leader, "TYPE = ETHER, SIZE = 1")
    with pytest.raises(pyone.OneInternalException, match="wrong state READY"):
        follower.vn.recover(vn, 0)
    with pytest.raises(pyone.OneActionException, match="Wrong recovery operation code"):
        follower.vn.recover(vn, 9)
