"""pyone and VM bodies as OpenNebula 7.0.2 writes them: TEMPLATE / USER_TEMPLATE split at
allocate, short bodies from one.vmpool.info, full ones from infoextended and one.vm.info, the
state check and KEY=VALUE query of the pool calls, through the leader and a follower."""

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


@pytest.mark.parametrize("via", ["leader", "follower"])
def test_split_short_and_extended_bodies(zone, via):
    leader = zone.server(zone.leader())
    one = leader if via == "leader" else zone.server(zone.followers()[0])
    name = uniq("body")
    vid = one.vm.allocate(
        f"NAME = {name}\nCPU = 1\nMEMORY = 32\nVCPU = 2\nLABELS = web\nDESCRIPTION = d\n"
        "GRAPHICS = [ TYPE = VNC ]\nSCHED_REQUIREMENTS = \"ID = 0\""
    )
    vm = leader.vm.info(vid)
    assert vm.NAME == name
    assert vm.TEMPLATE["CPU"] == "1"
    assert vm.TEMPLATE["VCPU"] == "2"
    assert vm.TEMPLATE["GRAPHICS"]["TYPE"] == "VNC"
    assert "UUID" in vm.TEMPLATE["OS"]
    assert "LABELS" not in vm.TEMPLATE
    assert vm.USER_TEMPLATE["LABELS"] == "web"
    assert vm.USER_TEMPLATE["DESCRIPTION"] == "d"
    assert vm.USER_TEMPLATE["SCHED_REQUIREMENTS"] == "ID = 0"

    # update replaces USER_TEMPLATE and leaves TEMPLATE alone.
    one.vm.update(vid, "LABELS = db", 0)
    vm = leader.vm.info(vid)
    assert dict(vm.USER_TEMPLATE) == {"LABELS": "db"}
    assert vm.TEMPLATE["MEMORY"] == "32"

    short = eventually(
        lambda: [v for v in one.vmpool.info(-2, -1, -1, -1).VM if v.ID == vid][0]
    )
    assert short.TEMPLATE["CPU"] == "1"
    assert short.TEMPLATE["VCPU"] == "2"
    # to_xml_short: capacity, disks, NICs and GRAPHICS only.
    assert "OS" not in short.TEMPLATE
    assert short.TEMPLATE["GRAPHICS"]["TYPE"] == "VNC"
    full = [v for v in one.vmpool.infoextended(-2, -1, -1, -1).VM if v.ID == vid][0]
    assert "UUID" in full.TEMPLATE["OS"]
    assert full.TEMPLATE["MEMORY"] == "32"


def test_state_check_and_query(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    tag = uniq("q")
    ids = [
        leader.vm.allocate(f"NAME = {tag}-{i}\nCPU = 1\nMEMORY = 8\nLABELS = l{i % 2}")
        for i in range(3)
    ]
    assert error_of(
        follower.vmpool.info, pyone.OneApiException, -2, -1, -1, 12
    ) == "[one.vmpool.info] Incorrect filter_flag, state"

    def found(one, query, method="info"):
        pool = getattr(one.vmpool, method)(-2, -1, -1, -1, query)
        # Newest first, as API_LIST_ORDER defaults.
        return [v.ID for v in pool.VM][::-1]

    for method in ["info", "infoextended"]:
        assert found(leader, f"VM.NAME={tag}", method) == ids
        assert found(leader, f"VM.NAME={tag}&VM.USER_TEMPLATE.LABELS=l0", method) == [
            ids[0],
            ids[2],
        ]
    def follower_has_them():
        assert found(follower, f"VM.NAME={tag}") == ids

    eventually(follower_has_them)
    assert found(follower, "VM.NAME=nothing-like-this") == []
