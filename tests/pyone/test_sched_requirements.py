"""pyone and the scheduler's placement terms against a 3-server OneHA zone, written through a
follower: AUTOMATIC_REQUIREMENTS in a new VM's TEMPLATE, SCHED_REQUIREMENTS choosing its host,
and a VM no host meets left PENDING with OpenNebula's SCHED_MESSAGE."""

import uuid

import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def until(check, timeout=30.0):
    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


@pytest.fixture(scope="module")
def sides(zone):
    return zone.server(zone.followers()[0]), zone.server(zone.leader())


def test_requirements_choose_the_host_and_automatic_ones_are_in_the_body(sides):
    follower, leader = sides
    name = uniq("req")
    hosts = [leader.host.allocate(f"{name}-{i}", "dummy", "dummy", -1) for i in range(2)]
    until(lambda: all(leader.host.info(h).STATE == 2 for h in hosts))

    vm = follower.vm.allocate(
        f'CPU = 0.1\nMEMORY = 16\nSCHED_REQUIREMENTS = "NAME = \\"{name}-1\\""'
    )
    until(lambda: leader.vm.info(vm).STATE == 3 and leader.vm.info(vm).LCM_STATE == 3)
    body = leader.vm.info(vm)
    assert body.HISTORY_RECORDS.HISTORY[-1].HID == hosts[1]
    assert body.TEMPLATE["AUTOMATIC_REQUIREMENTS"] == "!(PIN_POLICY = PINNED)"
    assert body.USER_TEMPLATE["SCHED_REQUIREMENTS"] == f'NAME = "{name}-1"'

    stuck = follower.vm.allocate(
        f'CPU = 0.1\nMEMORY = 16\nSCHED_REQUIREMENTS = "NAME = \\"{name}-9\\""'
    )
    until(lambda: "SCHED_MESSAGE" in leader.vm.info(stuck).USER_TEMPLATE)
    body = leader.vm.info(stuck)
    assert body.STATE == 1
    assert body.USER_TEMPLATE["SCHED_MESSAGE"].endswith(
        "Cannot dispatch VM: No host meets SCHED_REQUIREMENTS"
    )
