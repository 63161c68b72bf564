"""pyone: the default datastores, images and virtual networks."""

import uuid

import pyone
import pytest

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_the_default_datastores(zone):
    one = zone.server(zone.followers()[0])
    pool = {d.ID: d for d in one.datastorepool.info().DATASTORE}
    assert pool[0].NAME == "system" and pool[0].TYPE == 1
    assert pool[1].NAME == "default" and pool[1].TYPE == 0
    assert pool[2].NAME == "files" and pool[2].TYPE == 2
    assert one.datastore.info(1).TM_MAD == "local"
    with pytest.raises(pyone.OneNoExistsException):
        zone.server(zone.leader()).datastore.delete(99999)


def test_images_become_ready_and_count_in_their_datastore(zone):
    one = zone.server(zone.leader())
    name = uniq("img")
    iid = one.image.allocate(f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 100', 1)
    image = eventually(lambda: _ready(zone.server(zone.followers()[0]).image.info(iid)))
    assert image.NAME == name and image.SIZE == 100 and image.DATASTORE_ID == 1
    assert iid in one.datastore.info(1).IMAGES.ID
    assert iid in [i.ID for i in one.imagepool.info(-2, -1, -1).IMAGE]
    # ImageAllocate answers the pool's refusals as ALLOCATE (0x4000), stat_image's as INTERNAL.
    with pytest.raises(pyone.OneException, match=f"NAME is already taken by IMAGE {iid}"):
        one.image.allocate(f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 1', 1)
    with pytest.raises(pyone.OneInternalException, match="Cannot parse image SIZE"):
        one.image.allocate(f'NAME = "{uniq("img")}"\nTYPE = OS', 1)
    with pytest.raises(pyone.OneException, match="only be allocated in a files or image"):
        one.image.allocate(f'NAME = "{uniq("img")}"\nPATH = /tmp/x', 0)
    with pytest.raises(pyone.OneNoExistsException):
        one.image.allocate(f'NAME = "{uniq("img")}"\nPATH = /tmp/x', 999)
    one.image.delete(iid)
    with pytest.raises(pyone.OneNoExistsException):
        one.image.info(iid)


def _ready(image):
    assert image.STATE == 1, image.STATE
    return image


def test_virtual_networks_with_address_ranges(zone):
    one = zone.server(zone.leader())
    name = uniq("net")
    vid = one.vn.allocate(
        f'NAME = "{name}"\nVN_MAD = "bridge"\nAR = [ TYPE = "IP4", IP = "10.0.0.10", SIZE = "20" ]',
        -1,
    )
    net = eventually(lambda: _net_ready(one.vn.info(vid)))
    assert net.NAME == name and net.VN_MAD == "bridge" and net.BRIDGE == f"onebr{vid}"
    ar = net.AR_POOL.AR[0]
    assert ar.IP == "10.0.0.10" and ar.SIZE == 20 and ar.MAC == "02:00:0a:00:00:0a"
    assert vid in [n.ID for n in one.vnpool.info(-2, -1, -1).VNET]
    with pytest.raises(pyone.OneInternalException):
        one.vn.allocate(f'NAME = "{uniq("net")}"', -1)
    # A bad range is the driver's to refuse (IPAMManager::_vnet_create): the network is made,
    # in ERROR, with the reason in its template.
    bad = one.vn.allocate(f'NAME = "{uniq("net")}"\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = "IP4", SIZE = "2" ]', -1)
    failed = one.vn.info(bad)
    assert failed.STATE == 5 and "Wrong or empty IP attribute" in failed.TEMPLATE["ERROR"]
    one.vn.delete(bad)
    one.vn.delete(vid)
    with pytest.raises(pyone.OneNoExistsException):
        one.vn.info(vid)


def _net_ready(net):
    assert net.STATE == 1, net.STATE
    return net
