"""pyone security groups against a 3-server OneHA zone: the default group 0, allocate (rules
checked, duplicates dropped), info, pool, update, rename, chmod, chown, clone, commit and delete,
through a follower as well as the leader, with OpenNebula's refusals."""

import uuid

import pyone
import pytest

from conftest import eventually

RULES = (
    'RULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", RANGE = "22,80:90" ]\n'
    'RULE = [ RULE_TYPE = "inbound", PROTOCOL = "TCP", RANGE = "22,80:90" ]\n'
    'RULE = [ PROTOCOL = "ICMP", RULE_TYPE = "outbound", ICMP_TYPE = "8" ]\n'
)


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def rules(group):
    rule = group.TEMPLATE.get("RULE", [])
    return rule if isinstance(rule, list) else [rule]


def clients(zone):
    """The leader's client and a follower's."""
    return zone.server(zone.leader()), zone.server(zone.followers()[0])


def test_the_default_group_is_opennebulas_on_every_server(zone):
    for i in range(3):
        sg = zone.server(i).secgroup.info(0)
        assert (sg.ID, sg.NAME, sg.UNAME, sg.GNAME) == (0, "default", "oneadmin", "oneadmin")
        assert (sg.PERMISSIONS.OWNER_A, sg.PERMISSIONS.GROUP_U, sg.PERMISSIONS.OTHER_U) == (1, 1, 1)
        assert sorted((r["RULE_TYPE"], r["PROTOCOL"]) for r in rules(sg)) == [
            ("INBOUND", "ALL"),
            ("OUTBOUND", "ALL"),
        ]
        assert sg.UPDATED_VMS.ID == [] and sg.OUTDATED_VMS.ID == []
    pool = zone.server(0).secgrouppool.info(-2, -1, -1)
    assert pool.SECURITY_GROUP[0].ID == 0


@pytest.mark.parametrize("through", ["leader", "follower"])
def test_a_group_is_allocated_updated_and_renamed(zone, through):
    leader, follower = clients(zone)
    one = leader if through == "leader" else follower
    name = uniq("web")
    sid = one.secgroup.allocate(f'NAME = "{name}"\nDESCRIPTION = "d"\n{RULES}')
    assert sid >= 100
    sg = eventually(lambda: follower.secgroup.info(sid))
    assert sg.NAME == name
    assert "NAME" not in sg.TEMPLATE
    assert len(rules(sg)) == 2
    assert sid in [g.ID for g in leader.secgrouppool.info(-2, -1, -1).SECURITY_GROUP]

    one.secgroup.update(sid, 'RULE = [ PROTOCOL = "UDP", RULE_TYPE = "outbound" ]', 1)
    sg = leader.secgroup.info(sid)
    assert [r["PROTOCOL"] for r in rules(sg)] == ["UDP"]
    assert sg.TEMPLATE["DESCRIPTION"] == "d"
    one.secgroup.update(sid, {"TEMPLATE": {"DESCRIPTION": "e"}}, 0)
    assert rules(leader.secgroup.info(sid)) == []

    one.secgroup.rename(sid, f"{name}-b")
    assert leader.secgroup.info(sid).NAME == f"{name}-b"
    one.secgroup.chmod(sid, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    assert leader.secgroup.info(sid).PERMISSIONS.GROUP_U == 1
    one.secgroup.chown(sid, -1, 1)
    assert leader.secgroup.info(sid).GNAME == "users"

    copy = one.secgroup.clone(sid, f"{name}-copy")
    assert leader.secgroup.info(copy).TEMPLATE["DESCRIPTION"] == "e"
    assert one.secgroup.commit(sid, False) == sid
    assert one.secgroup.commit(sid, True) == sid
    one.secgroup.delete(copy)
    one.secgroup.delete(sid)
    with pytest.raises(pyone.OneNoExistsException):
        leader.secgroup.info(sid)


@pytest.mark.parametrize("through", ["leader", "follower"])
def test_groups_are_refused_as_opennebula(zone, through):
    leader, follower = clients(zone)
    one = leader if through == "leader" else follower
    name = uniq("sg")
    sid = one.secgroup.allocate(f'NAME = "{name}"')
    cases = [
        (f'NAME = "{name}"', f"NAME is already taken by SecurityGroup {sid}."),
        ('DESCRIPTION = "x"', "Invalid NAME, it cannot be empty"),
        (f'NAME = "{name}-2"\nRULE = [ PROTOCOL = "TCP" ]', "Wrong RULE_TYPE in rule."),
        (
            f'NAME = "{name}-2"\nRULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", RANGE = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16" ]',
            "Not more than 15 ports can be specified in a RULE",
        ),
        (
            f'NAME = "{name}-2"\nRULE = [ PROTOCOL = "ALL", RULE_TYPE = "inbound", NETWORK_ID = "x" ]',
            "Wrong NETWORK_ID.",
        ),
    ]
    for text, message in cases:
        with pytest.raises(pyone.OneInternalException, match=message.replace(".", r"\.")):
            one.secgroup.allocate(text)
    with pytest.raises(pyone.OneInternalException, match="Cannot update template. Wrong format for IP value"):
        one.secgroup.update(
            sid, 'RULE = [ PROTOCOL = "TCP", RULE_TYPE = "inbound", IP = "x", SIZE = "1" ]', 0
        )
    with pytest.raises(pyone.OneException, match="Error allocating a new security group"):
        one.secgroup.clone(sid, name)
    with pytest.raises(pyone.OneActionException, match=r"The default security group \(ID 0\)"):
        one.secgroup.delete(0)
    for call in (
        lambda: one.secgroup.info(99999),
        lambda: one.secgroup.commit(99999, False),
        lambda: one.secgroup.delete(99999),
    ):
        with pytest.raises(pyone.OneNoExistsException, match=r"security group \[99999\]"):
            call()
    one.secgroup.delete(sid)


def test_a_plain_user_works_on_their_own_groups_only(zone):
    one = zone.server(zone.leader())
    name = uniq("sguser")
    one.user.allocate(name, "pw", "", [])
    plain = zone.server(zone.followers()[0], session=f"{name}:pw")
    mine = eventually(lambda: plain.secgroup.allocate(f'NAME = "{name}"'))
    assert eventually(lambda: plain.secgroup.info(mine)).UNAME == name
    theirs = one.secgroup.allocate(f'NAME = "{uniq("admins")}"')
    with pytest.raises(pyone.OneAuthorizationException, match=f"USE SECGROUP \\[{theirs}\\]"):
        plain.secgroup.clone(theirs, uniq("c"))
    with pytest.raises(pyone.OneAuthorizationException, match="MANAGE SECGROUP \\[0\\]"):
        plain.secgroup.commit(0, False)
    # Everyone may use the default group.
    assert plain.secgroup.info(0).NAME == "default"
    plain.secgroup.delete(mine)
    one.secgroup.delete(theirs)


def test_a_new_network_holds_the_default_group(zone):
    one = zone.server(zone.leader())
    vid = one.vn.allocate(f'NAME = "{uniq("net")}"\nVN_MAD = "dummy"\nBRIDGE = br0\nSECURITY_GROUPS = "5,2"')
    assert one.vn.info(vid).TEMPLATE["SECURITY_GROUPS"] == "0,2,5"
