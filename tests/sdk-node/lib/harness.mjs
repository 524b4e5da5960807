// Test harness: starts a real `keyfold dev` on a free loopback port over a fresh data dir,
// logs in with the official Dfns SDK exactly as a user would, and offers the raw helpers the
// abuse tests need (hand-made user actions, direct fetch).
//
// Every process started here is killed by its PID (see `stop`, and the exit hook below), and
// every temp dir is removed.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { BaseAuthApi, DfnsApiClient, DfnsError } from '@dfns/sdk';
import { AsymmetricKeySigner } from '@dfns/sdk-keysigner';

export { BaseAuthApi, DfnsApiClient, DfnsError, AsymmetricKeySigner };

const here = path.dirname(fileURLToPath(import.meta.url));
const suiteDir = path.resolve(here, '..');

/** The binary under test: $KEYFOLD_BIN (relative paths are taken from tests/sdk-node/). */
export const KEYFOLD_BIN = path.resolve(
  suiteDir,
  process.env.KEYFOLD_BIN || '../../target/debug/keyfold',
);

/** Public, test-only safe primes for the signers (never for real use). */
export const TEST_PRIMES = path.resolve(suiteDir, '../../crates/keyfold-mpc/tests/fixtures/primes.json');

// ---------------------------------------------------------------------------------------
// process bookkeeping: nothing is left behind, even when a test throws or the runner exits

const live = new Set(); // child processes still running
const tmpDirs = new Set(); // temp dirs still present

// A runner that stops this file with SIGINT/SIGTERM gets the same clean-up.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));
}

process.on('exit', () => {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const dir of tmpDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
});

export function makeTmpDir(prefix = 'keyfold-sdk-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(dir);
  return dir;
}

export function removeTmpDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  tmpDirs.delete(dir);
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitHealthy(baseUrl, child, deadlineMs) {
  const start = Date.now();
  let lastErr;
  while (Date.now() - start < deadlineMs) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`keyfold exited early (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) {
        const body = await res.json();
        if (body.status === 'ok') return Date.now() - start;
      }
    } catch (e) {
      lastErr = e;
    }
    await sleep(20);
  }
  throw new Error(`keyfold not healthy after ${deadlineMs} ms: ${lastErr}`);
}

/**
 * Starts `keyfold dev`.
 *  - dataDir: reuse an existing data dir (restart); default a fresh one under a new tmp dir.
 *  - port: default a free one (a restart should pass the previous port so admin.json's
 *    baseUrl stays right).
 *  - env: extra environment (e.g. KEYFOLD_AUTH__CHALLENGE_TTL_SECS).
 *  - signers: start the local signer cluster (3 processes, fixture primes); off by default,
 *    since the auth suites do not sign.
 *  - args: extra `keyfold dev` arguments (e.g. ['--config', file]).
 * Returns { baseUrl, port, dataDir, tmpDir, pid, child, readyMs, admin, stderr(), stop(), kill9() }.
 */
export async function startKeyfold({
  dataDir,
  port,
  env = {},
  readyTimeoutMs = 30_000,
  signers = false,
  args = [],
} = {}) {
  if (!fs.existsSync(KEYFOLD_BIN)) {
    throw new Error(`keyfold binary not found at ${KEYFOLD_BIN} (set KEYFOLD_BIN or cargo build -p keyfold)`);
  }
  let tmpDir = null;
  if (!dataDir) {
    tmpDir = makeTmpDir();
    dataDir = path.join(tmpDir, 'data');
  }
  port = port ?? (await freePort());
  const baseUrl = `http://127.0.0.1:${port}`;
  const startedAt = Date.now();
  const child = spawn(
    KEYFOLD_BIN,
    ['dev', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--signers', signers ? '3' : '0', ...args],
    {
      env: {
        ...process.env,
        RUST_LOG: process.env.RUST_LOG || 'warn',
        NO_COLOR: '1',
        // Public fixture primes instead of minutes of prime generation (test-only).
        ...(signers ? { KEYFOLD_INSECURE_TEST_PRIMES: TEST_PRIMES } : {}),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  live.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.once('exit', () => live.delete(child));

  let readyMs;
  try {
    await waitHealthy(baseUrl, child, readyTimeoutMs);
    readyMs = Date.now() - startedAt;
  } catch (e) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await exited;
    if (tmpDir) removeTmpDir(tmpDir);
    throw new Error(`${e.message}\n--- stdout ---\n${out}\n--- stderr ---\n${err}`);
  }

  const adminPath = path.join(dataDir, 'admin.json');
  const admin = JSON.parse(fs.readFileSync(adminPath, 'utf8'));

  const k = {
    baseUrl,
    port,
    dataDir,
    tmpDir,
    pid: child.pid,
    child,
    readyMs,
    admin,
    adminPath,
    stdout: () => out,
    stderr: () => err,
    /** SIGKILL by PID, wait for the exit; the data dir is kept. */
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGKILL');
      }
      await exited;
    },
    /** SIGTERM by PID (SIGKILL after 5 s), wait; then remove the tmp dir if we made it. */
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGTERM');
        const t = setTimeout(() => {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, 5000);
        await exited;
        clearTimeout(t);
      }
      if (tmpDir && !keepData) removeTmpDir(tmpDir);
    },
  };
  return k;
}

// ---------------------------------------------------------------------------------------
// login with the SDK

/** Logs `admin` ({orgId, username, credId, privateKey}) in with the SDK. */
export async function sdkLogin(baseUrl, { orgId, username, credId, privateKey }) {
  const signer = new AsymmetricKeySigner({ credId, privateKey });
  const challenge = await BaseAuthApi.createUserLoginChallenge({ orgId, username }, { baseUrl });
  const { token } = await BaseAuthApi.createUserLogin(
    { challengeIdentifier: challenge.challengeIdentifier, firstFactor: await signer.sign(challenge) },
    { baseUrl },
  );
  const client = new DfnsApiClient({ baseUrl, orgId, authToken: token, signer });
  return { token, signer, client, orgId, baseUrl };
}

/** Starts keyfold and logs the admin in: { k, token, signer, client, ... }. */
export async function startAndLogin(opts) {
  const k = await startKeyfold(opts);
  try {
    const session = await sdkLogin(k.baseUrl, k.admin);
    return { k, ...session };
  } catch (e) {
    await k.stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// raw requests and user actions

/** Direct fetch. `body`: string sent as is, object JSON-encoded, undefined none. */
export async function raw(baseUrl, { method = 'GET', path: p, token, userAction, body, headers = {} }) {
  const h = { ...headers };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  if (userAction !== undefined) h['x-dfns-useraction'] = userAction;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!Object.keys(h).some((x) => x.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  const res = await fetch(`${baseUrl}${p}`, { method, headers: h, body: payload });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

/** The payload string the SDK would sign for `body`. */
export function payloadOf(body) {
  if (body === undefined) return '';
  return typeof body === 'string' ? body : JSON.stringify(body);
}

/** POST /auth/action/init for (method, path, payload) — via the SDK's BaseAuthApi. */
export async function actionChallenge(baseUrl, token, { method, path: p, body }) {
  return BaseAuthApi.createUserActionChallenge(
    {
      userActionPayload: payloadOf(body),
      userActionHttpMethod: method,
      userActionHttpPath: p,
      userActionServerKind: 'Api',
    },
    { baseUrl, authToken: token },
  );
}

/** Full user action: init, sign with `signer`, exchange → the x-dfns-useraction token. */
export async function userAction(baseUrl, token, signer, req) {
  const challenge = await actionChallenge(baseUrl, token, req);
  const firstFactor = await signer.sign(challenge);
  const { userAction: ua } = await BaseAuthApi.signUserActionChallenge(
    { challengeIdentifier: challenge.challengeIdentifier, firstFactor },
    { baseUrl, authToken: token },
  );
  return ua;
}

/** A signed write done by hand: user action for (method, path, body), then raw fetch. */
export async function signedRaw(baseUrl, token, signer, { method, path: p, body }) {
  const ua = await userAction(baseUrl, token, signer, { method, path: p, body });
  return raw(baseUrl, { method, path: p, token, userAction: ua, body: payloadOf(body) === '' ? undefined : payloadOf(body) });
}

/**
 * A service account made by `s` (from `startAndLogin`) with a new permission holding
 * `operations` (or the existing `permissionId`): `{ id, client, token }`, the client signing
 * its user actions with the account's own key.
 */
export async function newServiceAccount(s, name, { operations, permissionId } = {}) {
  if (!permissionId) {
    permissionId = (await s.client.permissions.createPermission({ body: { name: `${name}-${crypto.randomUUID()}`, operations } })).id;
  }
  const keys = newKeyPair();
  const sa = await s.client.auth.createServiceAccount({ body: { name, publicKey: keys.publicKey, permissionId } });
  const t = sa.accessTokens[0];
  const client = new DfnsApiClient({
    baseUrl: s.baseUrl,
    orgId: s.orgId,
    authToken: t.accessToken,
    signer: new AsymmetricKeySigner({ credId: t.credId, privateKey: keys.privateKey }),
  });
  return { id: sa.userInfo.userId, client, token: t.accessToken };
}

/** Whether `signature` (hex, or bytes) is an Ed25519 signature of `message` by `publicKeyHex`, by
 * Node's own verifier. */
export function ed25519Verifies(publicKeyHex, message, signature) {
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(publicKeyHex, 'hex')]);
  const pub = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const sig = typeof signature === 'string' ? Buffer.from(signature.replace(/^0x/, ''), 'hex') : Buffer.from(signature);
  return crypto.verify(null, Buffer.from(message), pub, sig);
}

/**
 * Runs `fn`, expects a DfnsError with `status` and a `{"error":{"message"}}` body whose message
 * includes `mention` (when given); returns the message.
 */
export async function refused(fn, status, mention) {
  const e = await expectDfnsError(fn, status);
  const body = e.context?.body;
  assert.equal(typeof body?.error?.message, 'string', `HTTP ${status} without {error:{message}}: ${JSON.stringify(body)}`);
  if (mention !== undefined) {
    assert.ok(
      body.error.message.includes(mention),
      `HTTP ${status} message should name ${JSON.stringify(mention)}: ${body.error.message}`,
    );
  }
  return body.error.message;
}

/** Runs `fn`, expects a DfnsError with `status`; returns the error. */
export async function expectDfnsError(fn, status) {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof DfnsError)) throw new Error(`expected DfnsError ${status}, got ${e?.stack || e}`);
    if (e.httpStatus !== status) {
      throw new Error(
        `expected HTTP ${status}, got ${e.httpStatus}: ${e.message} ${JSON.stringify(e.context?.body)}`,
      );
    }
    return e;
  }
  throw new Error(`expected DfnsError ${status}, but the call succeeded`);
}

// ---------------------------------------------------------------------------------------
// users and mail

/** Every user of the org, following nextPageToken. */
export async function listAllUsers(client, limit = 100) {
  const items = [];
  let paginationToken;
  for (let i = 0; i < 1000; i++) {
    const page = await client.auth.listUsers({ query: { limit, paginationToken } });
    items.push(...page.items);
    if (!page.nextPageToken) return items;
    paginationToken = page.nextPageToken;
  }
  throw new Error('listUsers did not terminate');
}

/** A stable fingerprint of the whole user table, for "nothing changed" assertions. */
export async function snapshotUsers(client) {
  const users = await listAllUsers(client);
  return JSON.stringify(users.map((u) => [u.userId, u]).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
}

export function uniqueEmail(tag = 'user') {
  return `${tag}-${crypto.randomBytes(6).toString('hex')}@example.com`;
}

/** Decodes a (possibly quoted-printable / base64) .eml body enough to find text. */
function emlText(raw) {
  const sep = raw.search(/\r?\n\r?\n/);
  const head = sep >= 0 ? raw.slice(0, sep) : raw;
  let body = sep >= 0 ? raw.slice(sep).trim() : '';
  const cte = /content-transfer-encoding:\s*([\w-]+)/i.exec(head)?.[1]?.toLowerCase();
  if (cte === 'base64') {
    body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  } else if (cte === 'quoted-printable') {
    body = body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
  }
  return { head, body, all: `${raw}\n${body}` };
}

/**
 * Polls DIR/outbox for the newest .eml addressed to `email` with a registration code.
 * `notIn`: codes already seen (to wait for a fresh one after a resend).
 */
export async function waitRegistrationCode(dataDir, email, { timeoutMs = 10_000, notIn = [] } = {}) {
  const dir = path.join(dataDir, 'outbox');
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (fs.existsSync(dir)) {
      const files = fs.readdirSync(dir).filter((f) => f.endsWith('.eml'));
      const found = [];
      for (const f of files) {
        const full = path.join(dir, f);
        let text;
        try {
          text = fs.readFileSync(full, 'utf8');
        } catch {
          continue;
        }
        const { head, all } = emlText(text);
        if (!head.toLowerCase().includes(email.toLowerCase())) continue;
        const m = /Your registration code is: ([A-Za-z0-9]{4}-[A-Za-z0-9]{4}-[A-Za-z0-9]{4})/.exec(all);
        if (m && !notIn.includes(m[1])) found.push({ code: m[1], mtime: fs.statSync(full).mtimeMs, file: full });
      }
      if (found.length) {
        found.sort((a, b) => b.mtime - a.mtime);
        return found[0].code;
      }
    }
    await sleep(50);
  }
  throw new Error(`no registration mail for ${email} in ${dir} after ${timeoutMs} ms`);
}

/** A fresh P-256 key pair as PEM. */
export function newKeyPair() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }),
  };
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** The Key attestation a Key credential store builds for a registration challenge. */
export function keyAttestation(challenge, { privateKey, publicKey }, { credId, origin } = {}) {
  credId = credId ?? b64url(crypto.randomBytes(32));
  const clientData = Buffer.from(
    JSON.stringify({ type: 'key.create', challenge: challenge.challenge, origin: origin ?? 'http://localhost', crossOrigin: false }),
  );
  const clientDataHash = crypto.createHash('sha256').update(clientData).digest('hex');
  const signature = crypto
    .sign(undefined, Buffer.from(JSON.stringify({ clientDataHash, publicKey })), privateKey)
    .toString('hex');
  return {
    credentialKind: 'Key',
    credentialInfo: {
      credId,
      clientData: b64url(clientData),
      attestationData: b64url(Buffer.from(JSON.stringify({ publicKey, signature }))),
    },
  };
}

/**
 * Registers `email` (already created) with a new key: reads the code from the outbox, runs
 * registration init + registration through the SDK's BaseAuthApi. Returns
 * { credId, privateKey, publicKey, response }.
 */
export async function registerUser(k, email, { code } = {}) {
  code = code ?? (await waitRegistrationCode(k.dataDir, email));
  const challenge = await BaseAuthApi.createUserRegistrationChallenge(
    { orgId: k.admin.orgId, username: email, registrationCode: code },
    { baseUrl: k.baseUrl },
  );
  const keys = newKeyPair();
  const firstFactorCredential = keyAttestation(challenge, keys, { origin: k.baseUrl });
  const response = await BaseAuthApi.createUserRegistration(
    { firstFactorCredential },
    { baseUrl: k.baseUrl, authToken: challenge.temporaryAuthenticationToken },
  );
  return { credId: firstFactorCredential.credentialInfo.credId, ...keys, response, challenge };
}

/** Asserts a user object has every field of the SDK's user type, with the right types. */
export function assertUserShape(assert, u) {
  for (const f of ['username', 'name', 'userId', 'kind', 'credentialUuid', 'orgId']) {
    assert.equal(typeof u[f], 'string', `user.${f} should be a string in ${JSON.stringify(u)}`);
  }
  for (const f of ['isActive', 'isServiceAccount', 'isRegistered', 'isSSORequired']) {
    assert.equal(typeof u[f], 'boolean', `user.${f} should be a boolean in ${JSON.stringify(u)}`);
  }
  assert.ok(['DfnsStaff', 'AccountUser', 'CustomerEmployee', 'EndUser'].includes(u.kind), `user.kind ${u.kind}`);
  assert.ok(Array.isArray(u.permissionAssignments), 'user.permissionAssignments should be an array');
  if (u.permissions !== undefined) assert.ok(Array.isArray(u.permissions));
}

/**
 * The assertion AsymmetricKeySigner builds, without its local allowCredentials check — so a
 * test can make the *server* decide (wrong credential, decoy challenge, …).
 */
export function keyAssertion(challenge, { credId, privateKey }) {
  const clientData = Buffer.from(JSON.stringify({ type: 'key.get', challenge: challenge.challenge }));
  return {
    kind: 'Key',
    credentialAssertion: {
      credId,
      clientData: b64url(clientData),
      signature: b64url(crypto.sign(undefined, clientData, privateKey)),
    },
  };
}

/**
 * Login the server must refuse: init, then a hand-made assertion (the SDK signer would refuse
 * a decoy challenge locally). Returns the HTTP status of the first refusal, or 200.
 */
export async function loginStatus(baseUrl, { orgId, username, credId, privateKey }) {
  const init = await raw(baseUrl, { method: 'POST', path: '/auth/login/init', body: { orgId, username } });
  if (init.status !== 200) return init.status;
  const r = await raw(baseUrl, {
    method: 'POST',
    path: '/auth/login',
    body: { challengeIdentifier: init.json.challengeIdentifier, firstFactor: keyAssertion(init.json, { credId, privateKey }) },
  });
  return r.status;
}

// ---------------------------------------------------------------------------------------
// anvil (a real local EVM chain) and signer readiness

// The platform package of npm @foundry-rs/anvil@1.7.1 (its wrapper's lock entries for other
// platforms break `npm ci`), started directly.
const ANVIL_BIN = path.resolve(suiteDir, 'node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil');

/** Starts anvil on a free port with Sepolia's chain id: { url, pid, stop() }. */
export async function startAnvil({ chainId = 11155111 } = {}) {
  const port = await freePort();
  const child = spawn(
    ANVIL_BIN,
    ['--port', String(port), '--chain-id', String(chainId), '--silent'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  live.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.once('exit', () => live.delete(child));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      });
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('anvil did not start');
    await sleep(50);
  }
  return {
    url,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}

/** Polls /healthz until `scheme` (ECDSA, EdDSA, Schnorr) is ready. */
export async function waitSchemeReady(baseUrl, scheme, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await (await fetch(`${baseUrl}/healthz`)).json();
      if (last.schemes?.[scheme]?.ready) return last;
    } catch (e) {
      last = String(e);
    }
    if (Date.now() > deadline) throw new Error(`${scheme} not ready: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}

/** The `keyfold signer` processes of the dev instance whose data dir is `dataDir`: id → pid. */
export function signerPids(dataDir) {
  const out = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmd;
    try {
      cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const i = cmd.indexOf('signer');
    if (i < 0 || !cmd.some((a) => a.startsWith(dataDir))) continue;
    const id = cmd[cmd.indexOf('--id') + 1];
    if (id && !cmd.includes('--print-identity')) out.set(id, Number(name));
  }
  return out;
}
