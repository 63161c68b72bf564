"""pyone VDCs against a 3-server OneHA zone: VDC 0 as OpenNebula bootstraps it, a VDC of
groups and clusters, and the ACL rules it grants."""

import uuid

import pyone
import pytest

from conftest import eventually


def test_the_default_vdc_holds_users_and_every_cluster(zone):
    one = zone.server(zone.followers()[0])
    vdc = one.vdc.info(0)
    assert vdc.NAME == "default"
    assert 1 in vdc.GROUPS.ID
    assert [(c.ZONE_ID, c.CLUSTER_ID) for c in vdc.CLUSTERS.CLUSTER] == [(0, -10)]
    assert [v.ID for v in one.vdcpool.info().VDC][0] == 0


def test_a_vdc_grants_its_groups_rules_that_go_with_it(zone):
    one = zone.server(zone.leader())
    gid = one.group.allocate(f"vg-{uuid.uuid4().hex[:6]}")
    vid = one.vdc.allocate(f'NAME = "v-{uuid.uuid4().hex[:6]}"')
    one.vdc.addgroup(vid, gid)
    one.vdc.adddatastore(vid, 0, 1)

    def granted():
        rules = [r for r in one.acl.info().ACL if r.USER == f"{0x200000000 | gid:x}"]
        assert any(r.RESOURCE == f"{0x1000_0000_0000 | 0x1_0000_0000 | 1:x}" for r in rules), rules
        return rules

    eventually(granted)
    with pytest.raises(pyone.OneInternalException, match="is already assigned to the VDC"):
        one.vdc.adddatastore(vid, 0, 1)
    one.vdc.delete(vid)
    assert not [
        r
        for r in one.acl.info().ACL
        if r.USER == f"{0x200000000 | gid:x}" and r.RESOURCE == f"{0x1000_0000_0000 | 0x1_0000_0000 | 1:x}"
    ]
    with pytest.raises(pyone.OneActionException, match="System VDCs"):
        one.vdc.delete(0)
