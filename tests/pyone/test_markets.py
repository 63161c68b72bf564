"""pyone marketplaces and apps against a 3-server OneHA zone: OpenNebula's two default markets,
an http market taking a READY image as an app (LOCKED until its driver finishes, then READY),
the app exported back as an image (FROM_APP, and pyone's own marketapp.export helper), the
changes a market and an app take, and OpenNebula's refusals, word for word."""

import time
import uuid

import pyone
import pytest

from conftest import eventually

ENABLED, DISABLED = 0, 1  # MarketPlace STATE
READY, LOCKED, ERROR, APP_DISABLED = 1, 2, 3, 4  # MarketPlaceApp STATE
IMAGE_TYPE = 1  # MarketPlaceApp TYPE


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(what, check, timeout=20.0):
    """Polls `check` until it returns something truthy, failing with `what` at the deadline."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def error_of(call, exception, *args):
    """The message of `exception` raised by `call(*args)`."""
    with pytest.raises(exception) as e:
        call(*args)
    return str(e.value)


def http_market(one, name=None, base="http://m.example/"):
    name = name or uniq("web")
    mid = one.market.allocate(
        f'NAME = "{name}"\nMARKET_MAD = http\nBASE_URL = "{base}"\nPUBLIC_DIR = /srv/market'
    )
    return mid, name


def ready_image(one):
    """A qcow2 image in datastore 1, once READY."""
    iid = one.image.allocate(f'NAME = "{uniq("base")}"\nPATH = /tmp/base.qcow2\nFORMAT = qcow2', 1)
    wait_for(f"image {iid} READY", lambda: one.image.info(iid).STATE == 1)
    return iid


def app_state(one, aid):
    try:
        return one.marketapp.info(aid).STATE
    except pyone.OneNoExistsException:
        return None


def publish(one, mid, iid, name=None, extra="", reader=None):
    """Allocates an app of image `iid` in market `mid` through `one`; returns its id and the
    state `reader` (the leader, which has applied the write when the call returns; `one` by
    default) shows right after the call, then waits for it to be READY on `one`."""
    name = name or uniq("app")
    aid = one.marketapp.allocate(f'NAME = "{name}"\nORIGIN_ID = {iid}\nTYPE = image\n{extra}', mid)
    first = eventually(lambda: (reader or one).marketapp.info(aid).STATE)
    wait_for(f"app {aid} READY", lambda: app_state(one, aid) == READY)
    return aid, first


def test_the_default_markets_parse_on_every_server(zone):
    for i in range(3):
        one = zone.server(i)
        pool = {m.ID: m for m in one.marketpool.info().MARKETPLACE}
        public, lxc = pool[0], pool[1]
        assert (public.NAME, public.MARKET_MAD, public.STATE) == ("OpenNebula Public", "one", ENABLED)
        assert (lxc.NAME, lxc.MARKET_MAD, lxc.STATE) == ("Linux Containers", "linuxcontainers", DISABLED)
        assert (public.UID, public.GID, public.UNAME, public.ZONE_ID) == (0, 0, "oneadmin", "0")
        assert public.TEMPLATE["DESCRIPTION"] == "OpenNebula Systems MarketPlace"
        assert public.TEMPLATE["MARKET_MAD"] == "one"
        p = public.PERMISSIONS
        assert (p.OWNER_U, p.OWNER_M, p.OWNER_A, p.GROUP_U, p.GROUP_M, p.OTHER_U, p.OTHER_M) == (
            1, 1, 1, 1, 0, 1, 0
        )
        assert one.market.info(1).MARKET_MAD == "linuxcontainers"


def test_a_market_is_allocated_through_a_follower_and_refused_as_opennebula(zone):
    follower = zone.server(zone.followers()[0])
    name = uniq("web")
    assert error_of(
        follower.market.allocate,
        pyone.OneInternalException,
        f'NAME = "{name}"\nMARKET_MAD = http\nBASE_URL = "http://m.example/"',
    ) == '[one.market.allocate] MarketPlace template is missing the "PUBLIC_DIR" attribute or it\'s empty.'
    assert error_of(
        follower.market.allocate, pyone.OneInternalException, f'NAME = "{name}"\nMARKET_MAD = x'
    ) == '[one.market.allocate] MARKET_MAD_CONF named "x" is not defined in oned.conf'
    assert error_of(
        follower.market.allocate, pyone.OneInternalException, f'NAME = "{name}"'
    ) == "[one.market.allocate] No marketplace driver (MARKET_MAD) in template."

    mid, _ = http_market(follower, name)
    assert mid >= 100, "markets made later start at 100"
    leader = zone.server(zone.leader())
    market = eventually(lambda: leader.market.info(mid))
    assert (market.NAME, market.MARKET_MAD, market.STATE, market.ZONE_ID) == (name, "http", ENABLED, "0")
    assert market.TEMPLATE["BASE_URL"] == "http://m.example/"
    assert market.TEMPLATE["PUBLIC_DIR"] == "/srv/market"
    assert market.MARKETPLACEAPPS.ID == []
    eventually(lambda: _has(follower.marketpool.info().MARKETPLACE, mid))
    assert error_of(
        leader.market.allocate, pyone.OneInternalException, f'NAME = "{name}"\nMARKET_MAD = one'
    ) == f"[one.market.allocate] NAME is already taken by MARKETPLACE {mid}"
    assert error_of(
        follower.market.allocate,
        pyone.OneInternalException,
        'NAME = "OpenNebula Public"\nMARKET_MAD = one',
    ) == "[one.market.allocate] NAME is already taken by MARKETPLACE 0"

    # A market may be made DISABLED; STATE is then no attribute of its template.
    off = leader.market.allocate(f'NAME = "{uniq("off")}"\nMARKET_MAD = one\nSTATE = disabled')
    market = leader.market.info(off)
    assert market.STATE == DISABLED and "STATE" not in market.TEMPLATE


def test_a_market_is_updated_renamed_chmoded_and_chowned(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    mid, name = http_market(leader)

    # Merged: the new attribute joins, the driver's stay.
    follower.market.update(mid, 'DESCRIPTION = "team images"', 1)
    market = eventually(lambda: _with(leader.market.info(mid), "DESCRIPTION"))
    assert market.TEMPLATE["DESCRIPTION"] == "team images"
    assert market.TEMPLATE["BASE_URL"] == "http://m.example/"
    assert market.MARKET_MAD == "http" and market.TEMPLATE["MARKET_MAD"] == "http"
    # Replaced without MARKET_MAD: the driver is kept, in the template too.
    leader.market.update(mid, 'BASE_URL = "http://n.example/"\nPUBLIC_DIR = /srv/n', 0)
    market = leader.market.info(mid)
    assert market.MARKET_MAD == "http" and market.TEMPLATE["MARKET_MAD"] == "http"
    assert market.TEMPLATE["BASE_URL"] == "http://n.example/"
    assert "DESCRIPTION" not in market.TEMPLATE
    # Another driver must find its attributes; refused, nothing changes.
    assert error_of(
        leader.market.update, pyone.OneInternalException, mid, "MARKET_MAD = s3", 1
    ) == (
        '[one.market.update] Cannot update template. MarketPlace template is missing the '
        '"ACCESS_KEY_ID" attribute or it\'s empty.'
    )
    assert error_of(
        leader.market.update, pyone.OneInternalException, mid, "MARKET_MAD = x", 1
    ) == '[one.market.update] Cannot update template. MARKET_MAD_CONF named "x" is not defined in oned.conf'
    assert leader.market.info(mid).MARKET_MAD == "http"
    with pytest.raises(pyone.OneApiException):
        leader.market.update(mid, "A = 1", 5)

    # Rename: market names are unique across owners.
    assert error_of(
        follower.market.rename, pyone.OneActionException, mid, "OpenNebula Public"
    ) == (
        "[one.market.rename] marketplace cannot be renamed to OpenNebula Public "
        "because it collides with marketplace 0"
    )
    new = uniq("renamed")
    follower.market.rename(mid, new)
    assert eventually(lambda: _eq(leader.market.info(mid).NAME, new)) == new
    with pytest.raises(pyone.OneActionException, match="Invalid NAME"):
        leader.market.rename(mid, "a/b")

    # chmod, then chown to a new user and group.
    follower.market.chmod(mid, -1, -1, -1, 1, 1, -1, 1, -1, -1)
    p = eventually(lambda: _perm(leader.market.info(mid).PERMISSIONS, "GROUP_M", 1))
    assert (p.OWNER_U, p.GROUP_U, p.GROUP_M, p.OTHER_U, p.OTHER_M) == (1, 1, 1, 1, 0)
    user = uniq("owner")
    uid = leader.user.allocate(user, "pw", "", [])
    gid = leader.group.allocate(uniq("grp"))
    follower.market.chown(mid, uid, gid)
    market = eventually(lambda: _eq_obj(leader.market.info(mid), "UID", uid))
    assert (market.UID, market.UNAME, market.GID) == (uid, user, gid)
    owner = zone.server(zone.followers()[0], session=f"{user}:pw")
    assert eventually(lambda: owner.market.info(mid)).NAME == new
    with pytest.raises(pyone.OneNoExistsException):
        leader.market.chown(mid, 999999, -1)
    with pytest.raises(pyone.OneNoExistsException):
        leader.market.info(999999)


def test_an_image_becomes_an_app_locked_then_ready_on_every_server(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    mid, market_name = http_market(leader, base="http://m.example/pub/")
    iid = ready_image(leader)

    # LOCKED until the leader's driver pass (every 500 ms) finishes the import: seen LOCKED on
    # one of a few tries (a pass may just fall between the allocate and the info).
    firsts = []
    for _ in range(5):
        aid, first = publish(
            follower,
            mid,
            iid,
            extra='DESCRIPTION = "base OS"\nAPPTEMPLATE64 = "VFlQRT1PUw=="',
            reader=leader,
        )
        firsts.append(first)
        if first == LOCKED:
            break
    assert LOCKED in firsts and set(firsts) <= {LOCKED, READY}, firsts

    image = leader.image.info(iid)
    for i in range(3):
        one = zone.server(i)
        app = eventually(lambda: _eq_obj(one.marketapp.info(aid), "STATE", READY))
        assert app.SOURCE.startswith("http://m.example/pub/"), app.SOURCE
        assert len(app.MD5) == 32 and int(app.MD5, 16) >= 0
        assert app.SIZE == image.SIZE
        assert app.FORMAT == "qcow2"
        assert (app.MARKETPLACE_ID, app.MARKETPLACE) == (mid, market_name)
        assert (app.STATE, app.TYPE, app.ZONE_ID, app.ORIGIN_ID) == (READY, IMAGE_TYPE, "0", str(iid))
        assert (app.VERSION, app.DESCRIPTION, app.APPTEMPLATE64) == ("0.0", "base OS", "VFlQRT1PUw==")
        assert (app.UID, app.UNAME) == (0, "oneadmin")
        assert app.REGTIME > 0 and app.LOCK is None
        assert app.TEMPLATE["TYPE"] == "image" and "ORIGIN_ID" not in app.TEMPLATE
        assert aid in one.market.info(mid).MARKETPLACEAPPS.ID
        assert aid in [a.ID for a in one.marketapppool.info(-2, -1, -1).MARKETPLACEAPP]

    # Names are unique per owner.
    taken = follower.marketapp.info(aid).NAME
    assert error_of(
        leader.marketapp.allocate,
        pyone.OneInternalException,
        f'NAME = "{taken}"\nORIGIN_ID = {iid}',
        mid,
    ) == f"[one.marketapp.allocate] NAME is already taken by MARKETPLACEAPP {aid}"


def test_apps_are_refused_as_opennebula(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    mid, _ = http_market(leader)
    iid = ready_image(leader)

    assert error_of(
        follower.marketapp.allocate,
        pyone.OneActionException,
        f'NAME = "{uniq("app")}"\nORIGIN_ID = {iid}\nTYPE = image',
        0,
    ) == "[one.marketapp.allocate] Create disabled for market: OpenNebula Public"
    assert error_of(
        follower.marketapp.allocate,
        pyone.OneInternalException,
        f'NAME = "{uniq("app")}"\nORIGIN_ID = {iid}',
        999999,
    ) == "[one.marketapp.allocate] Cannot find associated MARKETPLACE"
    assert error_of(
        follower.marketapp.allocate, pyone.OneInternalException, f'NAME = "{uniq("anon")}"', mid
    ) == "[one.marketapp.allocate] Missing ORIGIN_ID for the MARKETPLACEAPP"

    # An app whose image does not exist is kept, in ERROR, and the call fails.
    ghost = uniq("ghost")
    assert error_of(
        follower.marketapp.allocate,
        pyone.OneInternalException,
        f'NAME = "{ghost}"\nORIGIN_ID = 999999',
        mid,
    ) == "[one.marketapp.allocate] Image does not exist."
    apps = eventually(lambda: _named(leader.marketapppool.info(-2, -1, -1).MARKETPLACEAPP, ghost))
    assert apps.STATE == ERROR
    assert apps.TEMPLATE["ERROR"].endswith(" : Image does not exist."), apps.TEMPLATE
    assert apps.ID in leader.market.info(mid).MARKETPLACEAPPS.ID
    # It stays in ERROR: enable touches READY and DISABLED apps only.
    leader.marketapp.enable(apps.ID, False)
    assert leader.marketapp.info(apps.ID).STATE == ERROR
    leader.marketapp.delete(apps.ID)
    eventually(lambda: _gone(leader.marketapp.info, apps.ID))


def test_an_app_is_updated_renamed_chmoded_chowned_enabled_locked_and_deleted(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    mid, _ = http_market(leader)
    iid = ready_image(leader)
    aid, _ = publish(leader, mid, iid, extra='DESCRIPTION = "v1"')
    app = leader.marketapp.info(aid)

    # update: DESCRIPTION and VERSION follow the template; what the driver set stays.
    follower.marketapp.update(aid, 'DESCRIPTION = "v2"\nVERSION = "2.0"\nSOURCE = "http://evil/"\nLABEL = x', 1)
    new = eventually(lambda: _eq_obj(leader.marketapp.info(aid), "DESCRIPTION", "v2"))
    assert (new.VERSION, new.SOURCE, new.MD5, new.SIZE) == ("2.0", app.SOURCE, app.MD5, app.SIZE)
    assert new.TEMPLATE["LABEL"] == "x" and "SOURCE" not in new.TEMPLATE

    # rename: unique among the owner's apps.
    other, _ = publish(leader, mid, iid)
    assert error_of(
        follower.marketapp.rename, pyone.OneActionException, other, app.NAME
    ) == (
        f"[one.marketapp.rename] marketplaceapp cannot be renamed to {app.NAME} "
        f"because it collides with marketplaceapp {aid}"
    )
    renamed = uniq("renamed")
    follower.marketapp.rename(aid, renamed)
    assert eventually(lambda: _eq(leader.marketapp.info(aid).NAME, renamed)) == renamed

    # A market renamed: its apps show the new name.
    market_name = uniq("market")
    leader.market.rename(mid, market_name)
    assert eventually(lambda: _eq(follower.marketapp.info(aid).MARKETPLACE, market_name)) == market_name

    # chmod, chown.
    follower.marketapp.chmod(aid, -1, -1, -1, 1, 1, -1, -1, -1, -1)
    p = eventually(lambda: _perm(leader.marketapp.info(aid).PERMISSIONS, "GROUP_M", 1))
    assert (p.OWNER_U, p.OWNER_M, p.GROUP_U, p.GROUP_M) == (1, 1, 1, 1)
    user = uniq("owner")
    uid = leader.user.allocate(user, "pw", "", [])
    follower.marketapp.chown(aid, uid, 1)
    owned = eventually(lambda: _eq_obj(leader.marketapp.info(aid), "UID", uid))
    assert (owned.UNAME, owned.GID, owned.GNAME) == (user, 1, "users")
    assert (
        zone.server(zone.leader(), session=f"{user}:pw").marketapp.info(aid).NAME == renamed
    )
    # The new owner has an app of that name already: OpenNebula names the app she owns.
    leader.marketapp.rename(other, renamed)
    assert error_of(leader.marketapp.chown, pyone.OneInternalException, other, uid, -1) == (
        f"[one.marketapp.chown] user [{uid}] already owns marketplaceapp [{aid}] with NAME {renamed}"
    )

    # enable: READY <-> DISABLED.
    follower.marketapp.enable(aid, False)
    assert eventually(lambda: _eq(leader.marketapp.info(aid).STATE, APP_DISABLED)) == APP_DISABLED
    leader.marketapp.enable(aid, True)
    assert eventually(lambda: _eq(follower.marketapp.info(aid).STATE, READY)) == READY

    # lock holds back a delete, unlock lets it through.
    follower.marketapp.lock(aid, 1)
    lock = eventually(lambda: leader.marketapp.info(aid).LOCK)
    assert (lock.LOCKED, lock.OWNER) == (1, 0)
    with pytest.raises(pyone.OneAuthorizationException, match="locked"):
        leader.marketapp.delete(aid)
    with pytest.raises(pyone.OneActionException):
        leader.marketapp.lock(aid, 9)
    follower.marketapp.unlock(aid)
    eventually(lambda: _eq(leader.marketapp.info(aid).LOCK, None))
    follower.marketapp.delete(aid)
    eventually(lambda: _gone(leader.marketapp.info, aid))
    assert aid not in leader.market.info(mid).MARKETPLACEAPPS.ID
    apps = eventually(lambda: _lacks(follower.marketapppool.info(-2, -1, -1).MARKETPLACEAPP, aid))
    assert other in [a.ID for a in apps]


def test_an_app_comes_back_as_an_image(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    mid, _ = http_market(leader)
    iid = ready_image(leader)
    aid, _ = publish(leader, mid, iid)
    app = leader.marketapp.info(aid)

    name = uniq("copy")
    copy = follower.image.allocate(f'NAME = "{name}"\nFROM_APP = {aid}', 1)
    image = eventually(lambda: leader.image.info(copy))
    assert image.PATH == app.SOURCE
    assert image.SIZE == app.SIZE
    assert image.TEMPLATE["FROM_APP_NAME"] == app.NAME
    assert image.TEMPLATE["FROM_APP_MD5"] == app.MD5
    assert image.FORMAT == app.FORMAT
    assert error_of(
        follower.image.allocate, pyone.OneInternalException, f'NAME = "{uniq("no")}"\nFROM_APP = 999999', 1
    ) == "[one.image.allocate] Cannot determine image SIZE."

    # pyone's own helper: marketapp.info (READY), then image.allocate with FROM_APP.
    eventually(lambda: _eq(follower.marketapp.info(aid).STATE, READY))
    out = follower.marketapp.export(aid, 1, uniq("exported"))  # (appid, dsid, name)
    assert out["vmtemplate"] == -1
    exported = eventually(lambda: leader.image.info(out["image"]))
    assert exported.PATH == app.SOURCE and exported.DATASTORE_ID == 1


def test_a_market_with_apps_stays_disabled_it_drops_them_then_it_goes(zone):
    leader = zone.server(zone.leader())
    follower = zone.server(zone.followers()[0])
    mid, name = http_market(follower)
    iid = ready_image(leader)
    aid, _ = publish(leader, mid, iid)

    assert error_of(follower.market.delete, pyone.OneActionException, mid) == (
        f"[one.market.delete] Cannot delete marketplace. marketplace  {mid} is not empty."
    )
    follower.market.enable(mid, False)
    market = eventually(lambda: _eq_obj(leader.market.info(mid), "STATE", DISABLED))
    assert market.MARKETPLACEAPPS.ID == []
    eventually(lambda: _gone(leader.marketapp.info, aid))
    assert aid not in [a.ID for a in leader.marketapppool.info(-2, -1, -1).MARKETPLACEAPP]
    follower.market.enable(mid, True)
    assert eventually(lambda: _eq(leader.market.info(mid).STATE, ENABLED)) == ENABLED
    follower.market.enable(mid, True)  # already so: still fine

    follower.market.delete(mid)
    eventually(lambda: _gone(leader.market.info, mid))
    eventually(lambda: _lacks(follower.marketpool.info().MARKETPLACE, mid))
    assert name not in [m.NAME for m in leader.marketpool.info().MARKETPLACE]


def test_a_plain_user_may_look_but_not_create_or_change(zone):
    leader = zone.server(zone.leader())
    name = uniq("plain")
    leader.user.allocate(name, "pw", "", [])
    for where in (zone.leader(), zone.followers()[0]):
        plain = zone.server(where, session=f"{name}:pw")
        eventually(lambda: plain.user.info(-1))
        # Everyone may USE markets and apps.
        assert {0, 1} <= {m.ID for m in plain.marketpool.info().MARKETPLACE}
        assert plain.market.info(0).NAME == "OpenNebula Public"
        refusal = error_of(
            plain.market.allocate,
            pyone.OneAuthorizationException,
            f'NAME = "{uniq("mine")}"\nMARKET_MAD = one',
        )
        assert refusal.startswith("[one.market.allocate] User ["), refusal
        assert "Not authorized to perform CREATE MARKETPLACE" in refusal, refusal
        with pytest.raises(pyone.OneAuthorizationException, match="Not authorized to perform CREATE MARKETPLACEAPP"):
            plain.marketapp.allocate(f'NAME = "{uniq("app")}"\nORIGIN_ID = 0', 0)
        with pytest.raises(pyone.OneAuthorizationException, match=r"Not authorized to perform MANAGE MARKETPLACE \[0\]"):
            plain.market.update(0, 'DESCRIPTION = "mine"', 1)
        with pytest.raises(pyone.OneAuthorizationException, match=r"Not authorized to perform MANAGE MARKETPLACE \[1\]"):
            plain.market.enable(1, True)
        with pytest.raises(pyone.OneAuthorizationException):
            plain.market.delete(0)
    assert leader.market.info(1).STATE == DISABLED


def _with(market, attr):
    assert attr in market.TEMPLATE, market.TEMPLATE
    return market


def _eq(value, expected):
    assert value == expected, value
    return value


def _eq_obj(obj, attr, expected):
    assert getattr(obj, attr) == expected, getattr(obj, attr)
    return obj


def _perm(perms, attr, expected):
    assert getattr(perms, attr) == expected
    return perms


def _has(objects, oid):
    assert oid in [o.ID for o in objects]
    return objects


def _lacks(objects, oid):
    assert oid not in [o.ID for o in objects]
    return objects


def _named(apps, name):
    found = [a for a in apps if a.NAME == name]
    assert found, [a.NAME for a in apps]
    return found[0]


def _gone(info, oid):
    try:
        info(oid)
    except pyone.OneNoExistsException:
        return True
    raise AssertionError(f"{oid} is still there")
