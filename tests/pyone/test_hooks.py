"""pyone hooks against a 3-server OneHA zone: one.hook.allocate/info/update/rename/lock/unlock/
retry/delete, one.hookpool.info and one.hooklog.info, each through the leader and a follower
(which forwards the writes). API and state hooks run a script of the test's own and their
executions are logged, filtered as OpenNebula filters them."""

import base64
import os
import re
import stat
import time
import uuid

import pyone
import pytest
from pyone import bindings

from conftest import eventually


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def until(check, what, timeout=30.0):
    """Polls `check` until it returns something true, failing after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def message(method, text):
    """pyone's exception text for OpenNebula's `[method] text`, as a regex."""
    return "^" + re.escape(f"[{method}] {text}") + "$"


@pytest.fixture(params=["leader", "follower"])
def where(request, zone):
    """The index of the server a test talks to: the leader, or a follower that forwards the
    writes."""
    return zone.leader() if request.param == "leader" else zone.followers()[0]


@pytest.fixture
def via(zone, where):
    return zone.server(where)


@pytest.fixture
def hooks(zone):
    """The ids of the hooks a test made; they are deleted after it, so that no later test
    runs them."""
    made = []
    yield made
    one = zone.server(zone.leader())
    for hid in made:
        try:
            one.hook.unlock(hid)
            one.hook.delete(hid)
        except pyone.OneException:
            pass


class Script:
    """An executable hook command in the test's tmp_path: it appends its arguments as one line
    to a file, prints `ran` and exits with its first argument."""

    def __init__(self, directory):
        self.out = os.path.join(directory, "runs.out")
        self.path = os.path.join(directory, "hook.sh")
        with open(self.path, "w") as f:
            f.write(f'#!/bin/sh\necho "$*" >> {self.out}\necho ran\nexit "$1"\n')
        os.chmod(self.path, os.stat(self.path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def lines(self):
        try:
            with open(self.out) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


@pytest.fixture
def script(tmp_path):
    return Script(str(tmp_path))


def api_hook(name, command, call="one.user.allocate", arguments=None):
    t = f'NAME = "{name}"\nTYPE = api\nCOMMAND = "{command}"\nCALL = "{call}"'
    if arguments is not None:
        t += f'\nARGUMENTS = "{arguments}"'
    return t


def records(hook):
    """The execution records of a one.hook.info answer."""
    assert hook.HOOKLOG is not None, "one.hook.info has a HOOKLOG"
    return hook.HOOKLOG.HOOK_EXECUTION_RECORD


def hooklog(one, min_ts, max_ts, hook_id, rc):
    """one.hooklog.info's records, typed as hook.xsd types HOOKLOG.

    OpenNebula answers `<HOOKLOG>…</HOOKLOG>`, an element no XSD declares at the top, so pyone
    (as against OpenNebula itself) falls back to its HISTORY_RECORDS class, which keeps the parsed
    element; the records are built from it with the HOOKLOG type of hook.xsd."""
    answer = one.hooklog.info(min_ts, max_ts, hook_id, rc)
    node = answer.gds_elementtree_node_
    assert node.tag == "HOOKLOG", node.tag
    return bindings.supermod.HOOKLOGType.factory().build(node).HOOK_EXECUTION_RECORD


def decoded(b64):
    return base64.b64decode(b64).decode()


# --- allocate, info, pool ------------------------------------------------------------------


def test_allocated_hooks_read_back_on_every_server(zone, via, hooks, script):
    api_name, state_name = uniq("api"), uniq("state")
    hid = via.hook.allocate(api_hook(api_name, script.path, call="one.vn.delete", arguments="0 $API"))
    assert isinstance(hid, int) and hid >= 0
    hooks.append(hid)
    sid = via.hook.allocate(
        f'NAME = "{state_name}"\nTYPE = STATE\nCOMMAND = "{script.path}"\n'
        f"RESOURCE = VM\nON = running\nREMOTE = yes"
    )
    hooks.append(sid)
    assert sid == hid + 1

    for i in range(3):
        one = zone.server(i)
        hook = eventually(lambda: one.hook.info(hid))
        assert (hook.ID, hook.NAME, hook.TYPE) == (hid, api_name, "api")
        assert hook.LOCK is None
        assert dict(hook.TEMPLATE) == {
            "ARGUMENTS": "0 $API",
            "CALL": "one.vn.delete",
            "COMMAND": script.path,
            "REMOTE": "NO",
        }
        assert records(hook) == []

        hook = eventually(lambda: one.hook.info(sid))
        assert (hook.NAME, hook.TYPE) == (state_name, "state")
        # ON = running is kept as the VM state it names; REMOTE normalised.
        assert dict(hook.TEMPLATE) == {
            "COMMAND": script.path,
            "LCM_STATE": "RUNNING",
            "REMOTE": "YES",
            "RESOURCE": "VM",
            "STATE": "ACTIVE",
        }

        pool = one.hookpool.info(-2, -1, -1)
        mine = {h.ID: h for h in pool.HOOK if h.ID in (hid, sid)}
        assert sorted(mine) == [hid, sid]
        assert mine[hid].NAME == api_name and mine[sid].TYPE == "state"
        assert all(h.HOOKLOG is None for h in pool.HOOK), "the pool carries no HOOKLOG"
        assert [h.ID for h in one.hookpool.info(-2, hid, hid).HOOK] == [hid]


def test_allocate_refusals(via, hooks, script):
    cmd = script.path
    cases = [
        (f'NAME = "{uniq("t")}"\nTYPE = x\nCOMMAND = "{cmd}"', "Invalid Hook type: x"),
        (f'NAME = "a/b"\nTYPE = api\nCOMMAND = "{cmd}"\nCALL = one.user.allocate', "Invalid name."),
        (
            f'NAME = "{uniq("t")}"\nTYPE = api\nCOMMAND = "{cmd}"\nCALL = one.vm.info',
            "API call does not exist or is not supported: one.vm.info",
        ),
        (
            f'NAME = "{uniq("t")}"\nTYPE = api\nCOMMAND = "{cmd}"\nCALL = one.no.such',
            "API call does not exist or is not supported: one.no.such",
        ),
        (
            f'NAME = "{uniq("t")}"\nTYPE = state\nCOMMAND = "{cmd}"',
            "RESOURCE attribute is required for STATE hooks.",
        ),
        (
            f'NAME = "{uniq("t")}"\nTYPE = api\nCALL = one.user.allocate',
            "No COMMAND in template for Hook.",
        ),
    ]
    for template, text in cases:
        with pytest.raises(pyone.OneInternalException, match=message("one.hook.allocate", text)):
            via.hook.allocate(template)

    name = uniq("taken")
    hid = via.hook.allocate(api_hook(name, cmd, call="one.vn.delete"))
    hooks.append(hid)
    with pytest.raises(
        pyone.OneInternalException,
        match=message("one.hook.allocate", f"NAME is already taken by Hook {hid}."),
    ):
        via.hook.allocate(api_hook(name, cmd, call="one.vn.update"))


# --- update, rename, lock, delete ----------------------------------------------------------


def test_update_replaces_or_merges_the_template(via, hooks, script):
    hid = via.hook.allocate(api_hook(uniq("upd"), script.path, call="one.vn.delete"))
    hooks.append(hid)

    assert via.hook.update(hid, "TIMEOUT = 5", 1) == hid
    tmpl = eventually(lambda: _with(via.hook.info(hid).TEMPLATE, "TIMEOUT"))
    assert dict(tmpl) == {
        "CALL": "one.vn.delete",
        "COMMAND": script.path,
        "REMOTE": "NO",
        "TIMEOUT": "5",
    }

    assert via.hook.update(hid, f'COMMAND = "{script.path}"\nCALL = "one.vn.update"', 0) == hid
    tmpl = eventually(lambda: _without(via.hook.info(hid).TEMPLATE, "TIMEOUT"))
    # Replaced: REMOTE, given no more, is not added back.
    assert dict(tmpl) == {"CALL": "one.vn.update", "COMMAND": script.path}

    with pytest.raises(
        pyone.OneInternalException,
        match=message("one.hook.update", "Cannot update template. The COMMAND attribute is not defined."),
    ):
        via.hook.update(hid, "CALL = one.vn.delete", 0)
    with pytest.raises(
        pyone.OneInternalException,
        match=message(
            "one.hook.update",
            "Cannot update template. The CALL attribute is not defined or it's invalid.",
        ),
    ):
        via.hook.update(hid, "CALL = one.vm.info", 1)
    assert via.hook.info(hid).TEMPLATE["CALL"] == "one.vn.update"


def _with(tmpl, attr):
    assert attr in tmpl, dict(tmpl)
    return tmpl


def _without(tmpl, attr):
    assert attr not in tmpl, dict(tmpl)
    return tmpl


def test_rename_and_its_collision(via, hooks, script):
    first, second = uniq("first"), uniq("second")
    a = via.hook.allocate(api_hook(first, script.path, call="one.vn.delete"))
    hooks.append(a)
    b = via.hook.allocate(api_hook(second, script.path, call="one.vn.delete"))
    hooks.append(b)
    with pytest.raises(
        pyone.OneActionException,
        match=message(
            "one.hook.rename", f"hook cannot be renamed to {first} because it collides with hook {a}"
        ),
    ):
        via.hook.rename(b, first)
    third = uniq("third")
    assert via.hook.rename(b, third) == b
    eventually(lambda: _equal(via.hook.info(b).NAME, third))
    # The old name is free again.
    hooks.append(via.hook.allocate(api_hook(second, script.path, call="one.vn.delete")))


def _equal(got, want):
    assert got == want, (got, want)
    return got


def test_a_locked_hook_refuses_delete_until_unlocked(zone, via, hooks, script):
    hid = via.hook.allocate(api_hook(uniq("lock"), script.path, call="one.vn.delete"))
    hooks.append(hid)
    assert via.hook.lock(hid, 2) == hid
    lock = eventually(lambda: _locked(via.hook.info(hid)))
    assert (lock.LOCKED, lock.OWNER) == (2, 0)
    with pytest.raises(
        pyone.OneAuthorizationException,
        match=message("one.hook.delete", f"User [0] : HOOK is locked. [{hid}]."),
    ):
        via.hook.delete(hid)
    assert via.hook.unlock(hid) == hid
    eventually(lambda: _equal(via.hook.info(hid).LOCK, None))
    assert via.hook.delete(hid) == hid
    for i in range(3):
        one = zone.server(i)
        eventually(lambda: _gone(one, hid))
    assert hid not in [h.ID for h in via.hookpool.info(-2, -1, -1).HOOK]


def _locked(hook):
    assert hook.LOCK is not None
    return hook.LOCK


def _gone(one, hid):
    # An AssertionError, not pytest.raises' Failed (a BaseException), so that `eventually`
    # retries while a follower has not applied the delete yet.
    try:
        one.hook.info(hid)
    except pyone.OneNoExistsException as e:
        assert f"Error getting hook [{hid}]." in str(e), str(e)
        return
    raise AssertionError(f"hook {hid} is still there")


# --- executions, the log, retry ------------------------------------------------------------


def test_hooks_run_and_their_executions_are_logged_and_retried(zone, via, hooks, script):
    ok = via.hook.allocate(api_hook(uniq("ok"), script.path, arguments="0 $API"))
    hooks.append(ok)
    bad = via.hook.allocate(api_hook(uniq("bad"), script.path, arguments="3 $API"))
    hooks.append(bad)
    disabled = via.hook.allocate(
        f'NAME = "{uniq("disabled")}"\nTYPE = state\nCOMMAND = "{script.path}"\n'
        f'ARGUMENTS = "0 host $TEMPLATE"\nRESOURCE = HOST\nSTATE = disabled'
    )
    hooks.append(disabled)

    # API hooks: both run after the call, with its information in base64.
    user = uniq("hooked")
    uid = via.user.allocate(user, "pw", "", [])
    until(lambda: len(script.lines()) >= 2, "both API hooks ran")
    by_code = {line.split(" ")[0]: line for line in script.lines()}
    assert sorted(by_code) == ["0", "3"], script.lines()
    call_info = decoded(by_code["0"].split(" ")[1])
    assert call_info == decoded(by_code["3"].split(" ")[1])
    assert call_info.startswith("<CALL_INFO><RESULT>1</RESULT>"), call_info
    assert "<VALUE>****</VALUE>" in call_info and f"<VALUE>{user}</VALUE>" in call_info, call_info
    assert f"<TYPE>OUT</TYPE><VALUE>{uid}</VALUE>" in call_info, call_info

    # A state hook: the host it is about, once disabled.
    host = via.host.allocate(uniq("host"), "dummy", "dummy", -1)
    try:
        via.host.status(host, 1)
        line = until(
            lambda: [l for l in script.lines() if l.startswith("0 host ")], "the state hook ran"
        )[0]
        assert decoded(line.split(" ")[2]).startswith(f"<HOST><ID>{host}</ID>"), line
    finally:
        via.host.delete(host)

    # Every server shows the executions in one.hook.info.
    for i in range(3):
        one = zone.server(i)
        run = until(lambda: records(one.hook.info(ok)), f"server {i} has the record of {ok}")
        assert len(run) == 1
        rec = run[0]
        assert (rec.HOOK_ID, rec.EXECUTION_ID) == (ok, 0)
        assert isinstance(rec.TIMESTAMP, int) and abs(rec.TIMESTAMP - time.time()) < 120
        assert rec.ARGUMENTS == by_code["0"]
        assert rec.EXECUTION_RESULT.CODE == "0"
        assert rec.EXECUTION_RESULT.COMMAND.startswith(script.path)
        assert decoded(rec.EXECUTION_RESULT.STDOUT) == "ran\n"
        assert rec.RETRY is None
        failed = until(lambda: records(one.hook.info(bad)), f"server {i} has the record of {bad}")
        assert [r.EXECUTION_RESULT.CODE for r in failed] == ["3"]
        assert [r.HOOK_ID for r in until(lambda: records(one.hook.info(disabled)), "host record")] == [
            disabled
        ]
    assert len(script.lines()) == 3, script.lines()
    ts = records(via.hook.info(ok))[0].TIMESTAMP

    # one.hooklog.info and its filters: rc 1 successes, -1 failures, 0 all.
    def ids(min_ts, max_ts, hook_id, rc):
        return sorted((r.HOOK_ID, r.EXECUTION_ID) for r in hooklog(via, min_ts, max_ts, hook_id, rc))

    mine = {ok, bad, disabled}
    everything = [(h, e) for (h, e) in ids(-1, -1, -1, 0) if h in mine]
    assert everything == sorted([(ok, 0), (bad, 0), (disabled, 0)])
    assert [(h, e) for (h, e) in ids(-1, -1, -1, 1) if h in mine] == sorted([(ok, 0), (disabled, 0)])
    assert [(h, e) for (h, e) in ids(-1, -1, -1, -1) if h in mine] == [(bad, 0)]
    assert ids(-1, -1, ok, 0) == [(ok, 0)]
    assert ids(-1, -1, ok, 1) == [(ok, 0)]
    assert ids(-1, -1, ok, -1) == []
    assert ids(-1, -1, bad, -1) == [(bad, 0)]
    assert ids(-1, -1, bad, 1) == []
    # Times are exclusive bounds.
    assert ids(ts - 1, -1, ok, 0) == [(ok, 0)]
    assert ids(ts, -1, ok, 0) == []
    assert ids(-1, ts + 1, ok, 0) == [(ok, 0)]
    assert ids(-1, ts, ok, 0) == []
    assert ids(ts - 1, ts + 1, ok, 0) == [(ok, 0)]
    record = hooklog(via, -1, -1, ok, 0)[0]
    assert record.ARGUMENTS == by_code["0"] and record.EXECUTION_RESULT.CODE == "0"

    # Retry: the same arguments again, as a new execution marked RETRY.
    assert via.hook.retry(ok, 0) == ok
    run = until(lambda: len(records(via.hook.info(ok))) == 2 and records(via.hook.info(ok)), "the retry")
    assert [r.EXECUTION_ID for r in run] == [0, 1]
    assert run[1].RETRY == "yes" and run[1].ARGUMENTS == by_code["0"]
    assert run[1].EXECUTION_RESULT.CODE == "0"
    assert len(script.lines()) == 4 and script.lines()[3] == by_code["0"], script.lines()
    assert ids(-1, -1, ok, 0) == [(ok, 0), (ok, 1)]
    with pytest.raises(
        pyone.OneInternalException,
        match=message("one.hook.retry", "Invalid HookLog body. Arguments not found."),
    ):
        via.hook.retry(ok, 9)

    # Deleting a hook deletes its log.
    assert via.hook.delete(ok) == ok
    with pytest.raises(
        pyone.OneNoExistsException, match=message("one.hook.info", f"Error getting hook [{ok}].")
    ):
        zone.server(zone.leader()).hook.info(ok)
    eventually(lambda: _gone(via, ok))
    assert ids(-1, -1, ok, 0) == []
    assert ids(-1, -1, bad, 0) == [(bad, 0)]


def test_an_api_hook_is_told_the_call_as_opennebula_tells_it(via, hooks, script):
    """`$API` as HookAPI::format_message makes it: parameters a method hides (the session, and
    one.user.allocate's password) shown as ****, an array as nothing, and for an allocate the
    new object's XML in EXTRA."""
    hooks.append(via.hook.allocate(api_hook(uniq("told"), script.path, arguments="0 $API")))
    name, password = uniq("told"), uniq("secret")
    uid = via.user.allocate(name, password, "", [])
    line = until(script.lines, "the API hook ran")[0]
    call_info = decoded(line.split(" ")[1])

    def param(kind, pos, value):
        return f"<PARAMETER><POSITION>{pos}</POSITION><TYPE>{kind}</TYPE><VALUE>{value}</VALUE></PARAMETER>"

    want = "".join(
        [
            param("IN", 1, "****"),
            param("IN", 2, name),
            param("IN", 3, "****"),
            param("IN", 4, ""),
            param("IN", 5, ""),
            param("OUT", 1, "true"),
            param("OUT", 2, uid),
            param("OUT", 3, 0),
        ]
    )
    got = re.search("<PARAMETERS>(.*)</PARAMETERS>", call_info).group(1)
    assert got == want
    assert password not in call_info
    assert call_info.startswith("<CALL_INFO><RESULT>1</RESULT><PARAMETERS>"), call_info
    extra = re.search("<EXTRA>(.*)</EXTRA>", call_info).group(1)
    assert extra.startswith(f"<USER><ID>{uid}</ID>"), call_info


# --- rights ---------------------------------------------------------------------------------


def test_a_plain_user_may_not_create_read_or_log_hooks(zone, where, via, hooks, script):
    admin = zone.server(zone.leader())
    hid = admin.hook.allocate(api_hook(uniq("admins"), script.path, call="one.vn.delete"))
    hooks.append(hid)
    name = uniq("plain")
    uid = admin.user.allocate(name, "pw", "", [])
    plain = zone.server(where, session=f"{name}:pw")
    eventually(lambda: plain.user.info(-1))

    with pytest.raises(
        pyone.OneAuthorizationException,
        match=message("one.hook.allocate", f"User [{uid}] : Not authorized to perform CREATE HOOK."),
    ):
        plain.hook.allocate(api_hook(uniq("no"), script.path, call="one.vn.delete"))
    eventually(lambda: via.hook.info(hid))
    with pytest.raises(
        pyone.OneAuthorizationException,
        match=message("one.hook.info", f"User [{uid}] : Not authorized to perform USE HOOK [{hid}]."),
    ):
        plain.hook.info(hid)
    assert plain.hookpool.info(-2, -1, -1).HOOK == []
    with pytest.raises(
        pyone.OneAuthorizationException,
        match=message("one.hooklog.info", f"User [{uid}] not authorized to perform action on hook."),
    ):
        plain.hooklog.info(-1, -1, -1, 0)
    admin.user.delete(uid)
