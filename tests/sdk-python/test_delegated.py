"""Wallets delegated to end users through the Dfns Python SDK, with a real signer cluster.

A service account registers an end user with a wallet (registerEndUser); the end user signs
with it through the SDK and the signature verifies with `cryptography`'s Ed25519; the root,
holding every permission, is refused; a wallet created with delayDelegation signs for nobody
until it is delegated.
"""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from dfns_sdk import DfnsClient, DfnsClientConfig, DfnsError, KeySigner

from keyfold_harness import NO_TOKEN, key_attestation, new_key_pair, sdk_login, start_keyfold


def email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(6)}@example.com"


@pytest.fixture(scope="module")
def kf():
    k = start_keyfold(signers=3)
    yield k
    k.stop()


@pytest.fixture(scope="module")
def root(kf):
    a = kf.admin
    _, client, _ = sdk_login(kf.base_url, a["orgId"], a["username"], a["credId"], a["privateKey"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def service(kf, root):
    perm = root.permissions.create_permission(
        {"name": f"registrar-{secrets.token_hex(4)}", "operations": ["Auth:Register:Delegated"]}
    )
    priv, pub = new_key_pair()
    sa = root.auth.create_service_account({"name": "py-registrar", "publicKey": pub, "permissionId": perm["id"]})
    t = sa["accessTokens"][0]
    signer = KeySigner(credential_id=t["credId"], private_key=priv, app_origin=kf.base_url)
    client = DfnsClient(DfnsClientConfig(auth_token=t["accessToken"], base_url=kf.base_url, signer=signer))
    yield client
    client.close()


def register_end_user(kf, service, wallets):
    """The service creates the end user; its "device" registers a key (and wallets)."""
    ch = service.auth.create_delegated_registration_challenge({"email": email("py-end"), "kind": "EndUser"})
    priv, pub = new_key_pair()
    att = key_attestation(ch, priv, pub, kf.base_url)
    with DfnsClient(DfnsClientConfig(auth_token=ch["temporaryAuthenticationToken"], base_url=kf.base_url)) as dev:
        res = dev.auth.register_end_user({"firstFactorCredential": att, "wallets": wallets})
    signer = KeySigner(credential_id=att["credentialInfo"]["credId"], private_key=priv, app_origin=kf.base_url)
    client = DfnsClient(
        DfnsClientConfig(auth_token=res["authentication"]["token"], base_url=kf.base_url, signer=signer)
    )
    return ch["user"]["id"], res, client


def verifies(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    try:
        key.verify(bytes.fromhex(signature_hex.removeprefix("0x")), message)
        return True
    except Exception:
        return False


def test_end_user_wallet_signs_for_its_owner_only(kf, root, service):
    user_id, res, end_user = register_end_user(kf, service, [{"network": "KeyEdDSA", "name": "py"}])
    try:
        [w] = res["wallets"]
        assert w["custodial"] is False
        assert w["signingKey"]["delegatedTo"] == user_id
        assert [x["id"] for x in end_user.wallets.list_wallets()["items"]] == [w["id"]]

        msg = b"signed in python"
        sig = end_user.keys.generate_signature(w["signingKey"]["id"], {"kind": "Message", "message": "0x" + msg.hex()})
        assert sig["status"] == "Signed"
        assert verifies(w["signingKey"]["publicKey"], msg, sig["signature"]["encoded"])

        with pytest.raises(DfnsError) as e:
            root.keys.generate_signature(w["signingKey"]["id"], {"kind": "Message", "message": "0x00"})
        assert e.value.status_code == 403
        listed = end_user.keys.list_signatures(w["signingKey"]["id"])["items"]
        assert [s["id"] for s in listed] == [sig["id"]]
    finally:
        end_user.close()


def test_delay_delegation_then_delegate(kf, root, service):
    user_id, _, end_user = register_end_user(kf, service, [])
    try:
        w = root.wallets.create_wallet({"network": "KeyEdDSA", "delayDelegation": True})
        key_id = w["signingKey"]["id"]
        with pytest.raises(DfnsError) as e:
            root.keys.generate_signature(key_id, {"kind": "Message", "message": "0x01"})
        assert e.value.status_code == 403
        assert root.keys.delegate_key(key_id, {"delegateTo": user_id}) == {"keyId": key_id, "status": "Delegated"}
        msg = b"handed over"
        sig = end_user.keys.generate_signature(key_id, {"kind": "Message", "message": "0x" + msg.hex()})
        assert verifies(w["signingKey"]["publicKey"], msg, sig["signature"]["encoded"])
        with pytest.raises(DfnsError) as e:
            root.keys.delegate_key(key_id, {"delegateTo": user_id + "x"})
        assert 400 <= e.value.status_code < 500
    finally:
        end_user.close()


def test_unauthenticated_registration_with_wallets_is_refused(kf):
    priv, pub = new_key_pair()
    with DfnsClient(DfnsClientConfig(auth_token=NO_TOKEN, base_url=kf.base_url)) as anon:
        with pytest.raises(DfnsError) as e:
            anon.auth.register_end_user(
                {"firstFactorCredential": {"credentialKind": "Key"}, "wallets": [{"network": "KeyEdDSA"}]}
            )
    assert e.value.status_code in (400, 401)
