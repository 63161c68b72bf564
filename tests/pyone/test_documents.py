"""pyone generic documents (what OneFlow stores its services in) against a 3-server OneHA
zone: allocate with a type, the pool of one type, clone, update, lock and delete."""

import uuid

import pyone
import pytest

from conftest import eventually

SERVICE = 100


def test_a_document_is_kept_with_its_type_on_every_server(zone):
    one = zone.server(zone.leader())
    name = f"svc-{uuid.uuid4().hex[:6]}"
    did = one.document.allocate(f'NAME = "{name}"\nBODY = "{{}}"', SERVICE)
    follower = zone.server(zone.followers()[0])
    doc = eventually(lambda: follower.document.info(did))
    assert doc.NAME == name
    assert doc.TYPE == str(SERVICE)  # document.xsd types it as a string
    assert doc.TEMPLATE["BODY"] == "{}"
    assert "NAME" not in doc.TEMPLATE

    pool = one.documentpool.info(-2, -1, -1, SERVICE)
    assert did in [d.ID for d in pool.DOCUMENT]
    assert did not in [d.ID for d in one.documentpool.info(-2, -1, -1, SERVICE + 1).DOCUMENT]

    copy = one.document.clone(did, f"{name}-copy")
    assert one.document.info(copy).TYPE == str(SERVICE)
    one.document.update(did, {"TEMPLATE": {"BODY": "v2"}}, 0)
    assert one.document.info(did).TEMPLATE["BODY"] == "v2"
    one.document.rename(did, f"{name}-renamed")
    assert one.document.info(did).NAME == f"{name}-renamed"


def test_unnamed_documents_and_locks_as_opennebula(zone):
    one = zone.server(zone.leader())
    did = one.document.allocate('BODY = "x"', SERVICE)
    assert one.document.info(did).NAME == f"document-{did}"
    # OneFlow locks a service's document while it changes it.
    one.document.lock(did, 4)
    assert one.document.info(did).LOCK.LOCKED == 1
    with pytest.raises(pyone.OneAuthorizationException, match="is locked"):
        one.document.update(did, {"TEMPLATE": {"BODY": "y"}}, 0)
    one.document.unlock(did)
    one.document.delete(did)
    with pytest.raises(pyone.OneNoExistsException):
        one.document.info(did)
