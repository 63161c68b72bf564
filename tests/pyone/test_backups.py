"""pyone VM backups and backup jobs against a 3-server OneHA zone, through a follower:
one.vm.backup/backupcancel/restore into a BACKUP_DS datastore, and one.backupjob.* with a run
now, a scheduled run, priorities and OpenNebula's main refusals."""

import time
import uuid

import pyone
import pytest

from conftest import eventually


def until(check, timeout=20.0):
    def holds():
        assert check()
        return True

    return eventually(holds, timeout)


def _in(one, vm, state, lcm):
    body = one.vm.info(vm)
    return body.STATE == state and body.LCM_STATE == lcm


def _ids(v):
    if v is None or v.ID is None:
        return []
    return v.ID if isinstance(v.ID, list) else [v.ID]


@pytest.fixture(scope="module")
def sides(zone):
    follower, leader = zone.server(zone.followers()[0]), zone.server(zone.leader())
    leader.host.allocate(f"h-{uuid.uuid4().hex[:6]}", "dummy", "dummy", -1)
    ds = follower.datastore.allocate(
        f'NAME = "bk-{uuid.uuid4().hex[:6]}"\nTYPE = BACKUP_DS\nDS_MAD = rsync\nRSYNC_HOST = localhost\nRSYNC_USER = oneadmin\nTM_MAD = "-"', -1
    )
    return follower, leader, ds


def _running_vm(follower, leader):
    name = f"img-{uuid.uuid4().hex[:6]}"
    image = follower.image.allocate(f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 16', 1)
    until(lambda: leader.image.info(image).STATE == 1)
    vm = follower.vm.allocate(f"CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]")
    until(lambda: _in(leader, vm, 3, 3))
    return vm


def test_a_vm_is_backed_up_and_restored(sides):
    follower, leader, ds = sides
    vm = _running_vm(follower, leader)
    with pytest.raises(pyone.OneActionException, match="Datastore needs to be of type BACKUP"):
        follower.vm.backup(vm, 1, False)
    assert follower.vm.backup(vm, ds, False) == vm
    until(lambda: _in(leader, vm, 3, 3) and _ids(leader.vm.info(vm).BACKUPS.BACKUP_IDS))
    image = _ids(leader.vm.info(vm).BACKUPS.BACKUP_IDS)[0]
    body = leader.image.info(image)
    assert (body.TYPE, body.SIZE, body.DATASTORE_ID) == (6, 16, ds)
    with pytest.raises(pyone.OneInternalException, match="no backup in progress"):
        follower.vm.backupcancel(vm)
    with pytest.raises(pyone.OneActionException, match="it must be in poweroff"):
        follower.vm.restore(vm, image, -1, -1)
    follower.vm.action("poweroff", vm)
    until(lambda: _in(leader, vm, 8, 0))
    assert follower.vm.restore(vm, image, -1, -1) == vm
    until(lambda: _in(leader, vm, 8, 0))


def test_a_backup_job_runs_now_and_on_schedule(sides):
    follower, leader, ds = sides
    vm = _running_vm(follower, leader)
    job = follower.backupjob.allocate(
        f'NAME = "j-{uuid.uuid4().hex[:6]}"\nBACKUP_VMS = "{vm}"\nDATASTORE_ID = {ds}'
    )
    body = leader.backupjob.info(job)
    assert body.PRIORITY == 50
    assert leader.vm.info(vm).BACKUPS.BACKUP_CONFIG.BACKUP_JOB_ID == str(job)
    with pytest.raises(pyone.OneInternalException, match=f"part of Backup Job ID {job}"):
        follower.vm.backup(vm, ds, False)

    assert follower.backupjob.backup(job) == job
    until(lambda: _ids(leader.backupjob.info(job).UPDATED_VMS) == [vm])
    until(lambda: _in(leader, vm, 3, 3))

    at = int(time.time()) + 2
    sa = follower.backupjob.schedadd(job, f'SCHED_ACTION = [ ACTION = "backup", TIME = "{at}" ]')
    assert sa == 0
    until(lambda: len(_ids(leader.vm.info(vm).BACKUPS.BACKUP_IDS)) == 2)
    assert follower.backupjob.scheddelete(job, sa) == sa

    with pytest.raises(pyone.OneActionException, match="Wrong priority value"):
        follower.backupjob.priority(job, 100)
    assert follower.backupjob.priority(job, 75) == job
    assert leader.backupjob.info(job).PRIORITY == 75
    assert follower.backupjob.retry(job) == job
    assert follower.backupjob.cancel(job) == job
    pool = leader.backupjobpool.info(-2, -1, -1)
    assert job in [j.ID for j in pool.BACKUPJOB]
    assert follower.backupjob.delete(job) == job
    until(lambda: leader.vm.info(vm).BACKUPS.BACKUP_CONFIG.BACKUP_JOB_ID is None)
    with pytest.raises(pyone.OneNoExistsException):
        leader.backupjob.info(job)


def _increments(body):
    incs = body.BACKUP_INCREMENTS.INCREMENT if body.BACKUP_INCREMENTS is not None else []
    return incs if isinstance(incs, list) else [incs]


def test_an_increment_chain_grows_and_an_increment_restores(sides):
    follower, leader, ds = sides
    name = f"img-{uuid.uuid4().hex[:6]}"
    image = follower.image.allocate(f'NAME = "{name}"\nTYPE = DATABLOCK\nSIZE = 16', 1)
    until(lambda: leader.image.info(image).STATE == 1)
    vm = follower.vm.allocate(
        f"CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]\n"
        'BACKUP_CONFIG = [ MODE = "INCREMENT" ]'
    )
    until(lambda: _in(leader, vm, 3, 3))

    def backed_up(last):
        config = leader.vm.info(vm).BACKUPS.BACKUP_CONFIG
        return _in(leader, vm, 3, 3) and config.LAST_INCREMENT_ID == last

    assert follower.vm.backup(vm, ds, False) == vm
    until(lambda: backed_up("0"))
    config = leader.vm.info(vm).BACKUPS.BACKUP_CONFIG
    chain = int(config.INCREMENTAL_BACKUP_ID)
    assert follower.vm.backup(vm, ds, False) == vm
    until(lambda: backed_up("1"))

    # The chain as a follower shows it once it has caught up.
    def shown():
        body = follower.image.info(chain)
        incs = _increments(body)
        assert body.SIZE == 32
        assert [(i.ID, i.TYPE, i.PARENT_ID) for i in incs] == [
            ("0", "FULL", -1),
            ("1", "INCREMENT", 0),
        ]
        return True

    eventually(shown, 20.0)
    assert _ids(leader.vm.info(vm).BACKUPS.BACKUP_IDS) == [chain]

    follower.vm.action("poweroff", vm)
    until(lambda: _in(leader, vm, 8, 0))
    with pytest.raises(pyone.OneActionException, match="Wrong increment"):
        follower.vm.restore(vm, chain, 2, -1)
    assert follower.vm.restore(vm, chain, 0, -1) == vm
    until(lambda: _in(leader, vm, 8, 0))
