"""Starts a real `keyfold dev` on a free loopback port over a fresh data dir, and logs in with
the Dfns Python SDK (dfns-sdk 1.0.4) exactly as a user would.

The process is stopped by its PID and the temp dir removed (also at interpreter exit).
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dfns_sdk import DfnsClient, DfnsClientConfig, KeySigner

HERE = Path(__file__).resolve().parent
KEYFOLD_BIN = (HERE / os.environ.get("KEYFOLD_BIN", "../../target/debug/keyfold")).resolve()

# The Python SDK always sends `Authorization: Bearer <auth_token>`, and httpx (h11) refuses
# the header value "Bearer " for an empty token: calls made before login (login/init, login,
# registration/init) need some placeholder token, which the server must ignore there.
NO_TOKEN = "anonymous"

_live: set[subprocess.Popen] = set()
_tmp: set[str] = set()


@atexit.register
def _cleanup() -> None:
    for p in list(_live):
        try:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    for d in list(_tmp):
        shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Keyfold:
    base_url: str
    port: int
    data_dir: Path
    tmp_dir: str
    proc: subprocess.Popen
    admin: dict[str, Any]
    log_path: Path
    ready_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        _live.discard(self.proc)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        _tmp.discard(self.tmp_dir)


# Public, test-only safe primes: signers skip minutes of prime generation (never for real use).
TEST_PRIMES = (HERE / "../../crates/keyfold-mpc/tests/fixtures/primes.json").resolve()


def start_keyfold(
    timeout: float = 30.0, env: dict[str, str] | None = None, signers: int = 0
) -> Keyfold:
    if not KEYFOLD_BIN.exists():
        raise RuntimeError(f"keyfold binary not found at {KEYFOLD_BIN} (set KEYFOLD_BIN)")
    tmp = tempfile.mkdtemp(prefix="keyfold-sdk-python-")
    _tmp.add(tmp)
    data_dir = Path(tmp) / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = Path(tmp) / "keyfold.log"
    log = open(log_path, "wb")
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), "NO_COLOR": "1", **(env or {})}
    if signers:
        env["KEYFOLD_INSECURE_TEST_PRIMES"] = str(TEST_PRIMES)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            str(KEYFOLD_BIN),
            "dev",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            # Most of the Python suite covers auth and needs no signer cluster.
            "--signers",
            str(signers),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    _live.add(proc)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"keyfold exited with {proc.returncode}: {log_path.read_text()}")
        try:
            r = httpx.get(f"{base}/healthz", timeout=1.0)
            if r.status_code == 200 and r.json().get("status") == "ok":
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() - t0 > timeout:
            os.kill(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"keyfold not healthy after {timeout}s: {log_path.read_text()}")
        time.sleep(0.02)
    ready_ms = int((time.monotonic() - t0) * 1000)
    admin = json.loads((data_dir / "admin.json").read_text())
    return Keyfold(base, port, data_dir, tmp, proc, admin, log_path, ready_ms)


def sdk_login(base_url: str, org_id: str, username: str, cred_id: str, private_key: str):
    """The Python SDK's login: create_login_challenge -> KeySigner.sign -> login.

    The Python SDK has no BaseAuthApi login helpers (the TS SDK does); login goes through the
    generated AuthClient with a client that has no token yet. Returns (token, client, signer).
    """
    signer = KeySigner(credential_id=cred_id, private_key=private_key, app_origin=base_url)
    with DfnsClient(DfnsClientConfig(auth_token=NO_TOKEN, base_url=base_url)) as anon:
        challenge = anon.auth.create_login_challenge({"username": username, "orgId": org_id})
        assertion = signer.sign(challenge)
        res = anon.auth.login(
            {"challengeIdentifier": challenge["challengeIdentifier"], "firstFactor": assertion}
        )
    token = res["token"]
    client = DfnsClient(DfnsClientConfig(auth_token=token, base_url=base_url, signer=signer))
    return token, client, signer


def wait_registration_code(data_dir: Path, email: str, timeout: float = 10.0, not_in=()) -> str:
    outbox = data_dir / "outbox"
    deadline = time.monotonic() + timeout
    rx = re.compile(r"Your registration code is: ([A-Za-z0-9]{4}-[A-Za-z0-9]{4}-[A-Za-z0-9]{4})")
    while time.monotonic() < deadline:
        found = []
        if outbox.exists():
            for f in outbox.glob("*.eml"):
                try:
                    text = f.read_text()
                except OSError:
                    continue
                head, _, body = text.partition("\n\n")
                if email.lower() not in head.lower():
                    continue
                body = re.sub(r"=\r?\n", "", body)
                m = rx.search(body)
                if m and m.group(1) not in not_in:
                    found.append((f.stat().st_mtime, m.group(1)))
        if found:
            return max(found)[1]
        time.sleep(0.05)
    raise TimeoutError(f"no registration mail for {email} in {outbox}")


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def new_key_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return priv, pub


def key_attestation(challenge: dict, private_key: str, public_key: str, origin: str) -> dict:
    """The Key credential attestation for a registration challenge (what the TS SDK's key
    credential store builds): clientData + {publicKey, signature over {clientDataHash, publicKey}}."""
    client_data = json.dumps(
        {"type": "key.create", "challenge": challenge["challenge"], "origin": origin, "crossOrigin": False},
        separators=(",", ":"),
    ).encode()
    client_data_hash = hashlib.sha256(client_data).hexdigest()
    signed = json.dumps({"clientDataHash": client_data_hash, "publicKey": public_key}, separators=(",", ":"))
    key = serialization.load_pem_private_key(private_key.encode(), password=None)
    signature = key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())).hex()
    return {
        "credentialKind": "Key",
        "credentialInfo": {
            "credId": b64url(os.urandom(32)),
            "clientData": b64url(client_data),
            "attestationData": b64url(json.dumps({"publicKey": public_key, "signature": signature}).encode()),
        },
    }
