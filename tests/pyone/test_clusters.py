"""pyone clusters against a 3-server OneHA zone: the default cluster, hosts, datastores and
networks moved between clusters, and OpenNebula's refusals."""

import uuid

import pyone
import pytest

from conftest import eventually


def test_the_default_cluster_holds_the_first_datastores(zone):
    pool = zone.server(0).clusterpool.info()
    default = [c for c in pool.CLUSTER if c.ID == 0][0]
    assert default.NAME == "default"
    assert default.DATASTORES.ID[:3] == [0, 1, 2]


def test_a_cluster_gathers_a_host_a_datastore_and_a_network(zone):
    one = zone.server(zone.leader())
    name = f"cl-{uuid.uuid4().hex[:6]}"
    cid = one.cluster.allocate(name)
    assert cid >= 100
    hid = one.host.allocate(f"h-{name}", "dummy", "dummy", cid)
    assert one.host.info(hid).CLUSTER_ID == cid
    dsid = one.datastore.allocate(f'NAME = "ds-{name}"\nDS_MAD = "fs"\nTM_MAD = "ssh"', cid)
    vnid = one.vn.allocate(f'NAME = "vn-{name}"\nVN_MAD = "bridge"', -1)
    one.cluster.addvnet(cid, vnid)
    one.cluster.update(cid, {"TEMPLATE": {"RESERVED_MEM": "1024"}}, 1)
    follower = zone.server(zone.followers()[0])

    def applied():
        found = follower.cluster.info(cid)
        assert found.VNETS.ID, "the follower has not applied addvnet yet"
        # The update came after addvnet: the follower may have applied one and not the other.
        assert found.TEMPLATE.get("RESERVED_MEM"), "the follower has not applied the update yet"
        return found

    cluster = eventually(applied)
    assert cluster.NAME == name
    assert cluster.HOSTS.ID == [hid]
    assert cluster.DATASTORES.ID == [dsid]
    assert cluster.VNETS.ID == [vnid]
    assert cluster.TEMPLATE["RESERVED_MEM"] == "1024"
    with pytest.raises(pyone.OneActionException, match="is not empty"):
        one.cluster.delete(cid)
    one.cluster.delhost(cid, hid)
    one.cluster.deldatastore(cid, dsid)
    one.cluster.delvnet(cid, vnid)
    assert one.host.info(hid).CLUSTER_ID == 0
    one.cluster.delete(cid)
    with pytest.raises(pyone.OneNoExistsException):
        one.cluster.info(cid)


def test_cluster_refusals_map_to_pyone_exceptions(zone):
    one = zone.server(zone.leader())
    with pytest.raises(pyone.OneActionException, match="System Clusters"):
        one.cluster.delete(0)
    with pytest.raises(pyone.OneNoExistsException):
        one.cluster.addhost(0, 99999)
    name = f"plain-{uuid.uuid4().hex[:6]}"
    one.user.allocate(name, "pw", "", [])
    plain = zone.server(zone.leader(), session=f"{name}:pw")
    with pytest.raises(pyone.OneAuthorizationException):
        plain.cluster.allocate("not-mine")
