"""Mail delivery over real SMTP (aiosmtpd): the registration code reaches the user's mailbox,
and a message queued while the relay is down is delivered once it is back — never lost."""

from __future__ import annotations

import mailbox
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dfns_sdk import DfnsClient, DfnsClientConfig

from keyfold_harness import (
    NO_TOKEN,
    free_port,
    key_attestation,
    new_key_pair,
    sdk_login,
    start_keyfold,
)

CODE = re.compile(r"Your registration code is: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})")


class Smtpd:
    """`python -m aiosmtpd` delivering into a Maildir, started and stopped by PID."""

    def __init__(self, port: int, maildir: Path):
        self.port, self.maildir, self.proc = port, maildir, None

    def start(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import socket
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("aiosmtpd did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)

    def code_for(self, address: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in mailbox.Maildir(str(self.maildir), create=False):
                if address in (msg.get("To") or ""):
                    body = msg.get_payload(decode=True).decode()
                    m = CODE.search(body)
                    assert m, body
                    return m.group(1)
            time.sleep(0.1)
        raise TimeoutError(f"no mail for {address} in {self.maildir}")


@pytest.fixture()
def smtp(tmp_path):
    s = Smtpd(free_port(), tmp_path / "maildir")
    s.start()
    yield s
    s.stop()


@pytest.fixture()
def kf(smtp):
    k = start_keyfold(env={
        "KEYFOLD_EMAIL__SMTP__HOST": "127.0.0.1",
        "KEYFOLD_EMAIL__SMTP__PORT": str(smtp.port),
    })
    yield k
    k.stop()


def admin_client(kf):
    a = kf.admin
    _, client, _ = sdk_login(kf.base_url, a["orgId"], a["username"], a["credId"], a["privateKey"])
    return client


def test_registration_code_arrives_by_smtp_and_registers(kf, smtp):
    client = admin_client(kf)
    try:
        address = f"smtp-{secrets.token_hex(4)}@example.com"
        user = client.auth.create_user({"email": address, "kind": "CustomerEmployee"})
        code = smtp.code_for(address)
        with DfnsClient(DfnsClientConfig(auth_token=NO_TOKEN, base_url=kf.base_url)) as anon:
            ch = anon.auth.create_registration_challenge(
                {"orgId": kf.admin["orgId"], "username": address, "registrationCode": code}
            )
        priv, pub = new_key_pair()
        att = key_attestation(ch, priv, pub, kf.base_url)
        with DfnsClient(DfnsClientConfig(auth_token=ch["temporaryAuthenticationToken"], base_url=kf.base_url)) as t:
            assert t.auth.register({"firstFactorCredential": att})["user"]["id"] == user["userId"]
        token, c2, _ = sdk_login(kf.base_url, kf.admin["orgId"], address, att["credentialInfo"]["credId"], priv)
        c2.close()
        assert token
    finally:
        client.close()


def test_mail_queued_while_the_relay_is_down_is_delivered_later(kf, smtp):
    client = admin_client(kf)
    try:
        smtp.stop()
        address = f"late-{secrets.token_hex(4)}@example.com"
        client.auth.create_user({"email": address, "kind": "CustomerEmployee"})
        # Wait until the first delivery attempt has failed (the server logs it as a warning).
        deadline = time.monotonic() + 20
        while "mail delivery failed" not in kf.log_path.read_text():
            assert time.monotonic() < deadline, kf.log_path.read_text()
            time.sleep(0.05)
        assert not list(mailbox.Maildir(str(smtp.maildir), create=False))
        smtp.start()
        assert smtp.code_for(address, timeout=30.0)
    finally:
        client.close()
