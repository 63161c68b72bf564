"""pyone: issue 10, "well-formed always".

Control characters and XML-special characters in names, attribute names that are not XML names,
XML templates that cannot be kept: each is refused with OpenNebula's error, nothing is stored,
and every pool still parses with pyone (expat) for oneadmin and for a regular user.
"""

import uuid

import pyone
import pytest


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


VM = "CPU = 0.5\nMEMORY = 64"
IMAGE = "TYPE = DATABLOCK\nSIZE = 10"
NET = 'VN_MAD = "dummy"\nBRIDGE = br0\nAR = [ TYPE = "ETHER", SIZE = "2" ]'

# Names OpenNebula's PoolObjectSQL::name_is_valid refuses, and control characters.
BAD_NAMES = [
    "ctl\x01name",
    "esc\x1b[31mname",
    "amp&name",
    "lt<name",
    'quote"name',
    "apos'name",
    "end]]>name",
]


def with_name(name, rest):
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'NAME = "{quoted}"\n{rest}'


def read_every_pool(one, admin=True):
    """Every pool call pyone offers here; any ExpatError fails the test."""
    one.userpool.info()
    one.grouppool.info()
    one.hostpool.info()
    one.datastorepool.info()
    if admin:
        one.acl.info()
    one.zonepool.info()
    one.templatepool.info(-2, -1, -1)
    one.imagepool.info(-2, -1, -1)
    one.vnpool.info(-2, -1, -1)
    one.vmpool.info(-2, -1, -1, -2)


def test_issue_10_bad_names_are_refused_and_pools_stay_readable(zone):
    one = zone.server(zone.leader())
    fancy = uniq("fancy 😀 x]]y")
    tid = one.template.allocate(with_name(fancy, VM))
    vid = one.vm.allocate(with_name(fancy, VM), True)
    iid = one.image.allocate(with_name(fancy, IMAGE), 1)
    nid = one.vn.allocate(with_name(fancy, NET), -1)
    hid = one.host.allocate(uniq("wf"), "dummy", "dummy", -1)
    assert one.template.info(tid).NAME == fancy
    for bad in BAD_NAMES:
        with pytest.raises(pyone.OneInternalException, match="Invalid NAME"):
            one.user.allocate(bad, "pw", "", [])
        with pytest.raises(pyone.OneInternalException, match="Invalid HOSTNAME"):
            one.host.allocate(bad, "dummy", "dummy", -1)
        for call in (
            lambda: one.template.allocate(with_name(bad, VM)),
            lambda: one.vm.allocate(with_name(bad, VM), True),
            lambda: one.vn.allocate(with_name(bad, NET), -1),
        ):
            with pytest.raises(pyone.OneInternalException, match="Invalid NAME|Parse error"):
                call()
        # A parsed template's bad name is ImagePool::allocate's refusal: ALLOCATE (0x4000).
        with pytest.raises(pyone.OneException, match="Invalid NAME|Parse error"):
            one.image.allocate(with_name(bad, IMAGE), 1)
        for rename, oid in (
            (one.template.rename, tid),
            (one.vm.rename, vid),
            (one.image.rename, iid),
            (one.vn.rename, nid),
            (one.host.rename, hid),
        ):
            with pytest.raises(pyone.OneActionException, match="Invalid NAME"):
                rename(oid, bad)
    read_every_pool(one)
    name = uniq("plain")
    one.user.allocate(name, "pw", "", [])
    read_every_pool(zone.server(zone.leader(), session=f"{name}:pw"), admin=False)


def test_issue_10_bad_attribute_names_are_refused_and_odd_values_kept(zone):
    one = zone.server(zone.leader())
    tid = one.template.allocate(with_name(uniq("wf-t"), VM))
    for text in (
        "1BAD = x",
        "-X = 1",
        ".X = 1",
        "A:B = 1",
        "V = [ 2K = 1 ]",
        'A = "x\x01y"',
        "<TEMPLATE><A:B>x</A:B></TEMPLATE>",
        "<TEMPLATE><A>x</B></TEMPLATE>",
    ):
        with pytest.raises(pyone.OneInternalException, match="Parse error"):
            one.template.update(tid, text, 1)
        with pytest.raises(pyone.OneInternalException, match="Parse error"):
            one.template.allocate(
                f"NAME = {uniq('wf-bad')}\n{VM}\n{text}"
                if not text.startswith("<")
                else text.replace("<TEMPLATE>", f"<TEMPLATE><NAME>{uniq('wf-bad')}</NAME>", 1)
            )
    odd = "]]> <b> &amp; \"q\" 'a' 😀"
    one.template.update(tid, 'ODD = "' + odd.replace('"', '\\"') + '"', 1)
    assert one.template.info(tid).TEMPLATE["ODD"] == odd
    # An XML template is kept faithfully, including what must be escaped.
    xml_tid = one.template.allocate(
        f"<TEMPLATE><NAME>{uniq('wf-xml')}</NAME><CPU>1</CPU><MEMORY>64</MEMORY>"
        "<Q><![CDATA[x]]]]><![CDATA[>y]]></Q><U>😀 &lt;&amp;&quot;</U></TEMPLATE>"
    )
    t = one.template.info(xml_tid).TEMPLATE
    assert t["Q"] == "x]]>y" and t["U"] == '😀 <&"'
    read_every_pool(one)
