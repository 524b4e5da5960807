"""Keyfold through the Dfns Python SDK (dfns-sdk 1.0.4) — a second official client.

Run:  .venv/bin/python -m pytest -q   (see README.md)
"""

from __future__ import annotations

import secrets

import pytest
from dfns_sdk import DfnsClient, DfnsClientConfig, DfnsError

from keyfold_harness import (
    NO_TOKEN,
    key_attestation,
    new_key_pair,
    sdk_login,
    start_keyfold,
    wait_registration_code,
)

USER_FIELDS_STR = ("username", "name", "userId", "kind", "credentialUuid", "orgId")
USER_FIELDS_BOOL = ("isActive", "isServiceAccount", "isRegistered", "isSSORequired")


def email(tag: str = "py") -> str:
    return f"{tag}-{secrets.token_hex(6)}@example.com"


def assert_user(u: dict) -> None:
    for f in USER_FIELDS_STR:
        assert isinstance(u.get(f), str), f"{f} in {u}"
    for f in USER_FIELDS_BOOL:
        assert isinstance(u.get(f), bool), f"{f} in {u}"
    assert isinstance(u.get("permissionAssignments"), list)


@pytest.fixture(scope="module")
def kf():
    k = start_keyfold()
    yield k
    k.stop()


@pytest.fixture(scope="module")
def session(kf):
    a = kf.admin
    token, client, signer = sdk_login(kf.base_url, a["orgId"], a["username"], a["credId"], a["privateKey"])
    yield {"token": token, "client": client, "signer": signer}
    client.close()


def all_users(client: DfnsClient) -> list[dict]:
    out, token = [], None
    for _ in range(1000):
        q = {"limit": 100}
        if token:
            q["paginationToken"] = token
        page = client.auth.list_users(q)
        out += page["items"]
        token = page.get("nextPageToken")
        if not token:
            return out
    raise AssertionError("pagination did not end")


def test_login_with_admin_json_and_key_signer(kf, session):
    me = session["client"].auth.get_user(kf.admin["userId"])
    assert_user(me)
    assert me["userId"] == kf.admin["userId"]
    assert me["orgId"] == kf.admin["orgId"]


def test_create_and_list_users(kf, session):
    c = session["client"]
    before = all_users(c)
    created = []
    for i in range(3):
        e = email(f"py{i}")
        u = c.auth.create_user({"email": e, "kind": "CustomerEmployee"})
        assert_user(u)
        assert u["username"] == e
        assert u["kind"] == "CustomerEmployee"
        assert u["isRegistered"] is False
        created.append(u)
    after = all_users(c)
    assert len(after) == len(before) + 3
    ids = {u["userId"] for u in after}
    for u in created:
        assert u["userId"] in ids
        assert c.auth.get_user(u["userId"]) == u
    # pagination with limit + paginationToken
    seen, token = [], None
    while True:
        q = {"limit": 2}
        if token:
            q["paginationToken"] = token
        page = c.auth.list_users(q)
        assert len(page["items"]) <= 2
        seen += [u["userId"] for u in page["items"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert seen == [u["userId"] for u in after]


def test_errors_surface_as_dfns_error(kf, session):
    c = session["client"]
    with pytest.raises(DfnsError) as e:
        c.auth.get_user("us-aaaaa-aaaaa-aaaaaaaaaaaaaaaa")
    assert e.value.status_code == 404
    with pytest.raises(DfnsError) as e:
        c.auth.create_user({"email": email("bogus"), "kind": "Bogus"})
    assert e.value.status_code == 400
    dup = email("dup")
    c.auth.create_user({"email": dup, "kind": "CustomerEmployee"})
    with pytest.raises(DfnsError) as e:
        c.auth.create_user({"email": dup, "kind": "CustomerEmployee"})
    assert e.value.status_code == 409
    with DfnsClient(DfnsClientConfig(auth_token="garbage", base_url=kf.base_url)) as bad:
        with pytest.raises(DfnsError) as e:
            bad.auth.list_users()
        assert e.value.status_code == 401


def test_update_activate_delete_with_no_body(kf, session):
    """activate_user / delete_user send no body and sign an empty payload."""
    c = session["client"]
    u = c.auth.create_user({"email": email("life"), "kind": "CustomerEmployee"})
    assert c.auth.update_user(u["userId"], {"isSSORequired": True})["isSSORequired"] is True
    assert c.auth.deactivate_user(u["userId"], None)["isActive"] is False
    assert c.auth.activate_user(u["userId"])["isActive"] is True
    assert c.auth.delete_user(u["userId"])["userId"] == u["userId"]
    with pytest.raises(DfnsError) as e:
        c.auth.get_user(u["userId"])
    assert e.value.status_code == 404


def test_deactivate_user_with_empty_dict_body(kf, session):
    """`deactivate_user(user_id, {})` — the natural call for a method whose body is required.

    The Python SDK signs `userActionPayload: ""` for a falsy body (`json.dumps(body) if body
    else ""`) but still sends `{}` as the request body (httpx `json={}`). A server that compares
    the signed payload with the exact body bytes refuses it with 401.
    """
    c = session["client"]
    u = c.auth.create_user({"email": email("deact"), "kind": "CustomerEmployee"})
    res = c.auth.deactivate_user(u["userId"], {})
    assert res["isActive"] is False


def test_non_ascii_body(kf, session):
    """A body with a non-ASCII character (here in externalId).

    The Python SDK signs `json.dumps(body, separators=(",", ":"))` (ensure_ascii=True: "é" is
    signed as the 6 characters \\u00e9) while httpx 0.28 sends `ensure_ascii=False` (UTF-8 "é"),
    so the signed payload and the body bytes differ although they are the same JSON value.
    """
    c = session["client"]
    e = email("utf8")
    u = c.auth.create_user({"email": e, "kind": "CustomerEmployee", "externalId": "café-ü-€"})
    assert u["username"] == e


def test_registration_then_login_with_python_sdk(kf, session):
    c = session["client"]
    e = email("pyreg")
    u = c.auth.create_user({"email": e, "kind": "CustomerEmployee"})
    code = wait_registration_code(kf.data_dir, e)
    with DfnsClient(DfnsClientConfig(auth_token=NO_TOKEN, base_url=kf.base_url)) as anon:
        ch = anon.auth.create_registration_challenge(
            {"orgId": kf.admin["orgId"], "username": e, "registrationCode": code}
        )
    priv, pub = new_key_pair()
    att = key_attestation(ch, priv, pub, kf.base_url)
    with DfnsClient(DfnsClientConfig(auth_token=ch["temporaryAuthenticationToken"], base_url=kf.base_url)) as tmp:
        res = tmp.auth.register({"firstFactorCredential": att})
    assert res["user"]["id"] == u["userId"]
    assert res["credential"]["kind"] == "Key"
    token, client, _ = sdk_login(kf.base_url, kf.admin["orgId"], e, att["credentialInfo"]["credId"], priv)
    try:
        assert token
        with pytest.raises(DfnsError) as err:
            client.auth.list_users()
        assert err.value.status_code == 403
    finally:
        client.close()


def test_logout(kf, session):
    a = kf.admin
    token, client, _ = sdk_login(kf.base_url, a["orgId"], a["username"], a["credId"], a["privateKey"])
    try:
        client.auth.logout({})
        with pytest.raises(DfnsError) as e:
            client.auth.list_users()
        assert e.value.status_code == 401
    finally:
        client.close()
    # the module session is still alive
    session["client"].auth.list_users({"limit": 1})
