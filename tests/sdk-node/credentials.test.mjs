// A user's credentials through the official Dfns SDK (@dfns/sdk 0.8.21 +
// @dfns/sdk-keysigner 0.8.3) against a real `keyfold dev`: credential challenges (shape per
// kind), adding Key / PasswordProtectedKey / RecoveryKey credentials under a user action
// (the new key logs in and signs), every refusal leaving the credential list unchanged,
// activate / deactivate (never the last login credential), the one-time code flow from a
// second device (no bearer token), and PAT / service-account callers kept out.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  AsymmetricKeySigner,
  DfnsApiClient,
  DfnsError,
  actionChallenge,
  expectDfnsError,
  keyAssertion,
  keyAttestation,
  loginStatus,
  newKeyPair,
  payloadOf,
  raw,
  registerUser,
  sdkLogin,
  startAndLogin,
  uniqueEmail,
  refused,
} from './lib/harness.mjs';

// ---------------------------------------------------------------------------------------
// helpers

const ID_RE = (prefix) => new RegExp(`^${prefix}-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{16}$`);
const CR_RE = ID_RE('cr');
const CH_RE = /^ch-/;

/** A syntactically valid id of the same kind that (almost surely) does not exist. */
/** RFC 4648 base32 (no padding needed). */
function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) at unix time `t` — an authenticator app's code. */
function totpCode(secret, t) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const mac = crypto.createHmac('sha1', secret).update(counter).digest();
  const off = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(off) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

function unknownLike(id) {
  const tail = id.endsWith('000000') ? '000001' : '000000';
  return `${id.slice(0, -6)}${tail}`;
}

/** A raw answer must be `status` with the `{"error":{"message"}}` body. */
function rawRefused(r, status, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${r.text}`);
  assert.equal(typeof r.json?.error?.message, 'string', `${what}: HTTP ${r.status} without {error:{message}}: ${r.text}`);
}

/** The HTTP status of `fn` (200 when it succeeds). */
async function statusOf(fn) {
  try {
    await fn();
    return 200;
  } catch (e) {
    if (!(e instanceof DfnsError)) throw e;
    return e.httpStatus;
  }
}

/** ISO date `secs` seconds from now. */
const isoIn = (secs) => new Date(Date.now() + secs * 1000).toISOString();
/** Unix seconds `secs` seconds from now. */
const unixIn = (secs) => Math.floor(Date.now() / 1000) + secs;

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** Asserts the SDK's Credential shape. */
function assertCredentialShape(c) {
  assert.ok(c && typeof c === 'object', `credential: ${JSON.stringify(c)}`);
  for (const f of ['kind', 'credentialId', 'credentialUuid', 'dateCreated', 'name', 'publicKey', 'relyingPartyId', 'origin']) {
    assert.equal(typeof c[f], 'string', `credential.${f} should be a string in ${JSON.stringify(c)}`);
  }
  assert.equal(typeof c.isActive, 'boolean');
  assert.ok(['Key', 'Fido2', 'PasswordProtectedKey', 'RecoveryKey', 'Password', 'Totp'].includes(c.kind), c.kind);
  assert.match(c.credentialUuid, CR_RE);
  assert.ok(!Number.isNaN(Date.parse(c.dateCreated)), `dateCreated is not a date: ${c.dateCreated}`);
  assert.ok(!JSON.stringify(c).includes('PRIVATE KEY'), 'a private key in a credential');
  assert.equal('encryptedPrivateKey' in c, false, `encryptedPrivateKey in a credential: ${JSON.stringify(c)}`);
}

/** Asserts the SDK's CredentialChallenge shape for `kind`, issued to `user`. */
function assertChallengeShape(ch, kind, user) {
  assert.equal(ch.kind, kind, JSON.stringify(ch));
  assert.deepEqual(Object.keys(ch.user).sort(), ['displayName', 'id', 'name']);
  assert.equal(ch.user.id, user.userId);
  assert.equal(ch.user.name, user.email);
  assert.equal(typeof ch.user.displayName, 'string');
  assert.equal(typeof ch.challengeIdentifier, 'string');
  assert.match(ch.challengeIdentifier, CH_RE);
  assert.equal(typeof ch.challenge, 'string');
  assert.ok(ch.challenge.length >= 16, `a short challenge: ${ch.challenge}`);
  assert.equal(typeof ch.rp?.id, 'string', `rp: ${JSON.stringify(ch.rp)}`);
  assert.equal(typeof ch.rp?.name, 'string');
  assert.ok(['none', 'indirect', 'direct', 'enterprise'].includes(ch.attestation), `attestation ${ch.attestation}`);
  assert.ok(Array.isArray(ch.pubKeyCredParams) && ch.pubKeyCredParams.length > 0);
  for (const p of ch.pubKeyCredParams) {
    assert.equal(p.type, 'public-key');
    assert.equal(typeof p.alg, 'number');
  }
  assert.ok(ch.pubKeyCredParams.some((p) => p.alg === -7), 'ES256 (-7) is offered');
  assert.equal(ch.temporaryAuthenticationToken, '');
  if (kind === 'Fido2') {
    const sel = ch.authenticatorSelection;
    assert.ok(sel && typeof sel === 'object', `authenticatorSelection: ${JSON.stringify(ch)}`);
    assert.ok(['required', 'preferred', 'discouraged'].includes(sel.residentKey));
    assert.equal(typeof sel.requireResidentKey, 'boolean');
    assert.ok(['required', 'preferred', 'discouraged'].includes(sel.userVerification));
    assert.ok(Array.isArray(ch.excludeCredentials), 'excludeCredentials');
  }
}

// ---------------------------------------------------------------------------------------

describe('credentials via the Dfns SDK', () => {
  let s; // the root: { k, token, signer, client }
  let adminPerm;
  let patMaker; // Auth:Pats:Create + Auth:Users:Read
  const expiring = {}; // a code made first with the shortest life, checked last

  const base = () => s.k.baseUrl;
  const orgId = () => s.k.admin.orgId;

  /** Creates, registers and logs in a user: { userId, email, reg, session, client, token, signer }. */
  async function newUser(tag, perms = []) {
    const email = uniqueEmail(tag);
    const created = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    for (const p of perms) {
      await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: created.userId } });
    }
    const reg = await registerUser(s.k, email);
    const session = await sdkLogin(base(), { orgId: orgId(), username: email, credId: reg.credId, privateKey: reg.privateKey });
    return { userId: created.userId, email, reg, session, client: session.client, token: session.token, signer: session.signer };
  }

  /** The body of POST /auth/credentials answering `ch` with a fresh key (or `keys`). */
  function credentialBody(ch, kind = 'Key', { keys = newKeyPair(), credId, name, encryptedPrivateKey, origin } = {}) {
    const att = keyAttestation(ch, keys, { credId, origin: origin ?? base() });
    const body = {
      credentialKind: kind,
      credentialInfo: att.credentialInfo,
      credentialName: name ?? `${kind} ${crypto.randomBytes(3).toString('hex')}`,
      challengeIdentifier: ch.challengeIdentifier,
    };
    if (encryptedPrivateKey !== undefined) body.encryptedPrivateKey = encryptedPrivateKey;
    return { body, keys, credId: att.credentialInfo.credId };
  }

  /** Adds a credential of `kind` to `user` through the SDK: { cred, keys, credId }. */
  async function addCredential(user, kind = 'Key', opts = {}) {
    const ch = await user.client.auth.createCredentialChallenge({ body: { kind } });
    const { body, keys, credId } = credentialBody(ch, kind, opts);
    const cred = await user.client.auth.createCredential({ body });
    return { cred, keys, credId, privateKey: keys.privateKey };
  }

  /** The user's credentials, as a stable string (for "nothing changed"). */
  async function snapshotCreds(user) {
    const { items } = await user.client.auth.listCredentials();
    return JSON.stringify([...items].sort((a, b) => (a.credentialUuid < b.credentialUuid ? -1 : 1)));
  }

  /**
   * Signs an action challenge of `token`'s caller with `cred` ({credId, privateKey}) as
   * `kind`, by hand (the SDK signer would refuse a credential it is not offered), and on
   * success spends the user action on POST /auth/credentials/code. The raw answers.
   */
  async function signWith(token, cred, kind = 'Key') {
    const body = { expiration: isoIn(3600) };
    const ch = await actionChallenge(base(), token, { method: 'POST', path: '/auth/credentials/code', body });
    const firstFactor = { ...keyAssertion(ch, cred), kind };
    const sign = await raw(base(), { method: 'POST', path: '/auth/action', token, body: { challengeIdentifier: ch.challengeIdentifier, firstFactor } });
    if (sign.status !== 200) return { sign, ch };
    const use = await raw(base(), { method: 'POST', path: '/auth/credentials/code', token, userAction: sign.json.userAction, body: payloadOf(body) });
    return { sign, use, ch };
  }

  /** POST /auth/login with a hand-made assertion of `kind`: the raw answer. */
  async function loginAs(user, cred, kind = 'Key') {
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: user.email } });
    assert.equal(init.status, 200, init.text);
    const firstFactor = { ...keyAssertion(init.json, cred), kind };
    return raw(base(), { method: 'POST', path: '/auth/login', body: { challengeIdentifier: init.json.challengeIdentifier, firstFactor } });
  }

  /** A credential code for `user` (SDK). */
  const newCode = (user, expiration = isoIn(600)) => user.client.auth.createCredentialCode({ body: { expiration } });

  /** POST /auth/credentials/code/init without a token. */
  const codeInit = (code, credentialKind = 'Key') =>
    raw(base(), { method: 'POST', path: '/auth/credentials/code/init', body: { credentialKind, code } });

  /** POST /auth/credentials/code/verify without a token. */
  const codeVerify = (body) => raw(base(), { method: 'POST', path: '/auth/credentials/code/verify', body });

  /** Polls the dev outbox for the newest mail to `email` matching `re`; returns group 1. */
  async function waitMailCode(email, re, timeoutMs = 10_000) {
    const dir = path.join(s.k.dataDir, 'outbox');
    const start = Date.now();
    while (Date.now() - start < timeoutMs) {
      const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.eml')) : [];
      const hits = [];
      for (const f of files) {
        const full = path.join(dir, f);
        const text = fs.readFileSync(full, 'utf8');
        const qp = text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
        if (!qp.toLowerCase().includes(email.toLowerCase())) continue;
        const m = re.exec(qp);
        if (m) hits.push({ code: m[1], mtime: fs.statSync(full).mtimeMs });
      }
      if (hits.length) return hits.sort((a, b) => b.mtime - a.mtime)[0].code;
      await sleep(50);
    }
    throw new Error(`no mail matching ${re} for ${email}`);
  }

  before(async () => {
    s = await startAndLogin({ signers: false });
    const perms = (await s.client.permissions.listPermissions({ query: { limit: 100 } })).items;
    adminPerm = perms.find((p) => p.isImmutable);
    assert.ok(adminPerm, 'the built-in administrator permission');
    patMaker = await s.client.permissions.createPermission({ body: { name: 'cred-pat-maker', operations: ['Auth:Pats:Create', 'Auth:Users:Read'] } });
    // a code with (about) the shortest life, checked by the last test
    expiring.user = await newUser('cred-expiry');
    expiring.at = Date.now();
    expiring.code = (await newCode(expiring.user, unixIn(62))).code;
  });
  after(async () => {
    await s?.k.stop();
  });

  // -------------------------------------------------------------------------------------
  test('init: the challenge shape per kind (Key, PasswordProtectedKey, RecoveryKey, Fido2); Password / unknown → 400', async () => {
    const u = await newUser('cred-init');
    const seen = new Set();
    for (const kind of ['Key', 'PasswordProtectedKey', 'RecoveryKey', 'Fido2']) {
      const ch = await u.client.auth.createCredentialChallenge({ body: { kind } });
      assertChallengeShape(ch, kind, u);
      if (kind !== 'Fido2') {
        assert.equal(ch.authenticatorSelection, undefined, `${kind}: authenticatorSelection`);
      }
      assert.ok(!seen.has(ch.challenge) && !seen.has(ch.challengeIdentifier), 'a challenge is issued twice');
      seen.add(ch.challenge);
      seen.add(ch.challengeIdentifier);
    }
    // raw: the same body the SDK sends
    const r = await raw(base(), { method: 'POST', path: '/auth/credentials/init', token: u.token, body: { kind: 'Key' } });
    assert.equal(r.status, 200, r.text);
    assertChallengeShape(r.json, 'Key', u);

    const before = await snapshotCreds(u);
    for (const kind of ['Password']) {
      await refused(() => u.client.auth.createCredentialChallenge({ body: { kind } }), 400);
    }
    await refused(() => u.client.auth.createCredentialChallenge({ body: { kind: 'Nope' } }), 400);
    await refused(() => u.client.auth.createCredentialChallenge({ body: {} }), 400);
    await refused(() => u.client.auth.createCredentialChallenge({ body: { kind: 'Key', extra: 1 } }), 400);
    rawRefused(await raw(base(), { method: 'POST', path: '/auth/credentials/init', token: u.token, body: 'not json' }), 400, 'a non-JSON body');
    rawRefused(await raw(base(), { method: 'POST', path: '/auth/credentials/init', body: { kind: 'Key' } }), 401, 'init without a token');
    assert.equal(await snapshotCreds(u), before);
  });

  // -------------------------------------------------------------------------------------
  test('create Key: the SDK Credential shape; listed; the new key logs in and signs user actions', async () => {
    const u = await newUser('cred-key');
    const first = (await u.client.auth.listCredentials()).items;
    assert.equal(first.length, 1, JSON.stringify(first));
    assertCredentialShape(first[0]);
    assert.equal(first[0].credentialId, u.reg.credId);
    assert.equal(first[0].kind, 'Key');
    assert.equal(first[0].isActive, true);

    const ch = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    const { body, keys, credId } = credentialBody(ch, 'Key', { name: 'laptop key' });
    const cred = await u.client.auth.createCredential({ body });
    assertCredentialShape(cred);
    assert.equal(cred.kind, 'Key');
    assert.equal(cred.credentialId, credId);
    assert.equal(cred.name, 'laptop key');
    assert.equal(cred.isActive, true);
    assert.equal(cred.publicKey.trim(), keys.publicKey.trim(), 'the public key is echoed');
    assert.equal(cred.relyingPartyId, ch.rp.id);

    const list = (await u.client.auth.listCredentials()).items;
    for (const c of list) assertCredentialShape(c);
    assert.deepEqual(list.map((c) => c.credentialUuid).sort(), [first[0].credentialUuid, cred.credentialUuid].sort());
    assert.deepEqual(list.find((c) => c.credentialUuid === cred.credentialUuid), cred, 'the listed credential differs from the created one');
    // another user does not see it
    const other = await newUser('cred-key-other');
    assert.ok(!(await other.client.auth.listCredentials()).items.some((c) => c.credentialUuid === cred.credentialUuid));

    // the new key logs in, and its session signs user actions (through the SDK signer)
    const s2 = await sdkLogin(base(), { orgId: orgId(), username: u.email, credId, privateKey: keys.privateKey });
    const code = await s2.client.auth.createCredentialCode({ body: { expiration: isoIn(600) } });
    assert.equal(typeof code.code, 'string');
    // the old session's action challenges offer it, and it signs them
    const ach = await actionChallenge(base(), u.token, { method: 'POST', path: '/auth/credentials/code', body: { expiration: isoIn(600) } });
    assert.ok(ach.allowCredentials.key.some((c) => c.id === credId), 'the new key is not offered in action challenges');
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email } });
    assert.ok(init.json.allowCredentials.key.some((c) => c.id === credId), 'the new key is not offered at login');
    const newSigner = new AsymmetricKeySigner({ credId, privateKey: keys.privateKey });
    const viaNew = new DfnsApiClient({ baseUrl: base(), orgId: orgId(), authToken: u.token, signer: newSigner });
    await viaNew.auth.createCredentialCode({ body: { expiration: isoIn(600) } });
    // the first key still works too
    await sdkLogin(base(), { orgId: orgId(), username: u.email, credId: u.reg.credId, privateKey: u.reg.privateKey });
  });

  // -------------------------------------------------------------------------------------
  test('refused creations: wrong kind 400, reused challenge 401, another user’s challenge 401, bad signature 401, duplicate credId 409; nothing added', async () => {
    const u = await newUser('cred-bad');
    const v = await newUser('cred-bad-victim');
    const before = await snapshotCreds(u);
    const vBefore = await snapshotCreds(v);
    const create = (body, by = u) => () => by.client.auth.createCredential({ body });

    // the kind must be the one the challenge was issued for
    const chKey = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    await refused(create(credentialBody(chKey, 'PasswordProtectedKey', { encryptedPrivateKey: 'enc' }).body), 400);
    await refused(create(credentialBody(chKey, 'RecoveryKey').body), 400);
    const chRec = await u.client.auth.createCredentialChallenge({ body: { kind: 'RecoveryKey' } });
    await refused(create(credentialBody(chRec, 'Key').body), 400);
    assert.equal(await snapshotCreds(u), before);
    // a Fido2 challenge answered with a Key-style attestation under credentialKind Fido2 → refused
    const chFido = await u.client.auth.createCredentialChallenge({ body: { kind: 'Fido2' } });
    const fakeFido = { ...credentialBody(chFido, 'Key').body, credentialKind: 'Fido2' };
    const stFido = await statusOf(create(fakeFido));
    assert.ok([400, 401].includes(stFido), `a Key attestation passed off as Fido2: ${stFido}`);
    assert.equal(await snapshotCreds(u), before);

    // an unknown / malformed challenge identifier → 401
    await refused(create({ ...credentialBody(chKey).body, challengeIdentifier: unknownLike(chKey.challengeIdentifier) }), 401);
    await refused(create({ ...credentialBody(chKey).body, challengeIdentifier: 'nonsense' }), 401);

    // a wrong signature: the attestation signed by another key than the one it names → 401
    {
      const good = credentialBody(chKey);
      const att = JSON.parse(Buffer.from(good.body.credentialInfo.attestationData, 'base64url').toString());
      const other = newKeyPair();
      const clientData = Buffer.from(good.body.credentialInfo.clientData, 'base64url');
      const clientDataHash = crypto.createHash('sha256').update(clientData).digest('hex');
      att.signature = crypto.sign(undefined, Buffer.from(JSON.stringify({ clientDataHash, publicKey: att.publicKey })), other.privateKey).toString('hex');
      const forged = structuredClone(good.body);
      forged.credentialInfo.attestationData = b64url(Buffer.from(JSON.stringify(att)));
      await refused(create(forged), 401);
      // a signature of the right key over something else → 401
      att.signature = crypto.sign(undefined, Buffer.from('something else'), good.keys.privateKey).toString('hex');
      forged.credentialInfo.attestationData = b64url(Buffer.from(JSON.stringify(att)));
      await refused(create(forged), 401);
    }
    // an attestation made for another challenge (of the same user and kind) → 401
    {
      const chOther = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
      const made = credentialBody(chOther);
      await refused(create({ ...made.body, challengeIdentifier: chKey.challengeIdentifier }), 401);
      // clientData of type key.get (an assertion, not an attestation) → 401
      const cd = Buffer.from(JSON.stringify({ type: 'key.get', challenge: chKey.challenge }));
      const hash = crypto.createHash('sha256').update(cd).digest('hex');
      const sig = crypto.sign(undefined, Buffer.from(JSON.stringify({ clientDataHash: hash, publicKey: made.keys.publicKey })), made.keys.privateKey).toString('hex');
      const wrongType = structuredClone(made.body);
      wrongType.challengeIdentifier = chKey.challengeIdentifier;
      wrongType.credentialInfo.clientData = b64url(cd);
      wrongType.credentialInfo.attestationData = b64url(Buffer.from(JSON.stringify({ publicKey: made.keys.publicKey, signature: sig })));
      await refused(create(wrongType), 401);
    }
    assert.equal(await snapshotCreds(u), before, 'a refused creation added a credential');

    // another user's challenge → 401 (and it is left usable by its owner)
    const chV = await v.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    await refused(create(credentialBody(chV).body), 401);
    assert.equal(await snapshotCreds(u), before);
    assert.equal(await snapshotCreds(v), vBefore);
    await v.client.auth.createCredential({ body: credentialBody(chV).body });

    // a challenge is single use
    const once = credentialBody(chKey);
    const added = await u.client.auth.createCredential({ body: once.body });
    assertCredentialShape(added);
    const afterOne = await snapshotCreds(u);
    await refused(create(credentialBody(chKey).body), 401);
    await refused(create(once.body), 401);
    assert.equal(await snapshotCreds(u), afterOne, 'a reused challenge added a credential');

    // duplicate credId → 409: its own, the registration one, another user's
    for (const [what, credId] of [
      ['the one just added', once.credId],
      ['its registration credential', u.reg.credId],
      ["another user's", v.reg.credId],
      ['the admin’s', s.k.admin.credId],
    ]) {
      const ch = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
      const st = await statusOf(create(credentialBody(ch, 'Key', { credId }).body));
      assert.equal(st, 409, `a duplicate credId (${what}): expected 409, got ${st}`);
    }
    assert.equal(await snapshotCreds(u), afterOne, 'a duplicate credId added a credential');

    // malformed bodies → 400
    const ch = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    const good = credentialBody(ch).body;
    await refused(create({ ...good, credentialKind: 'Password', credentialInfo: { password: 'hunter2hunter2' } }), 400);
    await refused(create({ ...good, credentialKind: 'Nope' }), 400);
    await refused(create({ ...good, credentialInfo: { ...good.credentialInfo, credId: '' } }), 400);
    await refused(create({ ...good, credentialInfo: { ...good.credentialInfo, credId: 'has spaces and / slashes' } }), 400);
    await refused(create({ ...good, credentialInfo: { ...good.credentialInfo, attestationData: b64url('not json') } }), 400);
    await refused(create({ ...good, credentialName: 'x'.repeat(1000) }), 400);
    const { challengeIdentifier, ...noChallenge } = good;
    assert.ok(challengeIdentifier);
    await refused(create(noChallenge), 400);
    // without a user action → 401
    rawRefused(await raw(base(), { method: 'POST', path: '/auth/credentials', token: u.token, body: good }), 401, 'POST /auth/credentials without a user action');
    assert.equal(await snapshotCreds(u), afterOne);
    // the challenge survived the malformed attempts
    const ok = await u.client.auth.createCredential({ body: good });
    assert.equal(ok.isActive, true);
  });

  // -------------------------------------------------------------------------------------
  test('PasswordProtectedKey: offered with its encrypted key in action challenges only, signs user actions as PasswordProtectedKey', async () => {
    const u = await newUser('cred-ppk');
    const before = await snapshotCreds(u);
    // encryptedPrivateKey is required, non-empty
    const ch0 = await u.client.auth.createCredentialChallenge({ body: { kind: 'PasswordProtectedKey' } });
    await refused(() => u.client.auth.createCredential({ body: credentialBody(ch0, 'PasswordProtectedKey').body }), 400);
    await refused(() => u.client.auth.createCredential({ body: credentialBody(ch0, 'PasswordProtectedKey', { encryptedPrivateKey: '' }).body }), 400);
    await refused(() => u.client.auth.createCredential({ body: credentialBody(ch0, 'PasswordProtectedKey', { encryptedPrivateKey: '   ' }).body }), 400);
    assert.equal(await snapshotCreds(u), before);

    const encryptedPrivateKey = `enc-${crypto.randomBytes(24).toString('base64url')}`;
    const body = credentialBody(ch0, 'PasswordProtectedKey', { encryptedPrivateKey, name: 'ppk' });
    const cred = await u.client.auth.createCredential({ body: body.body });
    assertCredentialShape(cred);
    assert.equal(cred.kind, 'PasswordProtectedKey');
    assert.equal(cred.credentialId, body.credId);
    assert.equal(cred.publicKey.trim(), body.keys.publicKey.trim());
    assert.ok(!JSON.stringify(await u.client.auth.listCredentials()).includes(encryptedPrivateKey), 'the list shows the encrypted key');
    const ppk = { credId: body.credId, privateKey: body.keys.privateKey };

    // action challenges: under passwordProtectedKey, with the encrypted key; not under key
    const ach = await actionChallenge(base(), u.token, { method: 'POST', path: '/auth/credentials/code', body: { expiration: isoIn(600) } });
    assert.deepEqual(
      ach.allowCredentials.passwordProtectedKey,
      [{ type: 'public-key', id: body.credId, encryptedPrivateKey }],
      `action challenge allowCredentials: ${JSON.stringify(ach.allowCredentials)}`,
    );
    assert.ok(!ach.allowCredentials.key.some((c) => c.id === body.credId));
    assert.ok(ach.supportedCredentialKinds.some((k) => k.kind === 'PasswordProtectedKey'), JSON.stringify(ach.supportedCredentialKinds));
    // login challenges: never the encrypted key
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email } });
    assert.equal(init.status, 200);
    assert.ok(!init.text.includes(encryptedPrivateKey), `login/init reveals the encrypted key: ${init.text}`);
    assert.ok(!(init.json.allowCredentials.passwordProtectedKey ?? []).length, JSON.stringify(init.json.allowCredentials));
    assert.ok(!init.json.allowCredentials.key.some((c) => c.id === body.credId));

    // it answers an action challenge as PasswordProtectedKey, and the user action works
    const signed = await signWith(u.token, ppk, 'PasswordProtectedKey');
    assert.equal(signed.sign.status, 200, `PasswordProtectedKey assertion at /auth/action: ${signed.sign.text}`);
    assert.equal(signed.use.status, 200, signed.use.text);
    // ...but not claiming to be a Key
    const asKey = await signWith(u.token, ppk, 'Key');
    rawRefused(asKey.sign, 401, 'a PasswordProtectedKey credential answering as Key');
    // a wrong key for its credId → 401
    const wrong = await signWith(u.token, { credId: body.credId, privateKey: newKeyPair().privateKey }, 'PasswordProtectedKey');
    rawRefused(wrong.sign, 401, 'a PasswordProtectedKey assertion with another key');
    // a PasswordProtectedKey via the SDK client too (hand-made signer)
    const ppkSigner = { sign: async (c) => ({ ...keyAssertion(c, ppk), kind: 'PasswordProtectedKey' }) };
    const viaPpk = new DfnsApiClient({ baseUrl: base(), orgId: orgId(), authToken: u.token, signer: ppkSigner });
    const code = await viaPpk.auth.createCredentialCode({ body: { expiration: isoIn(600) } });
    assert.equal(typeof code.code, 'string');
  });

  // -------------------------------------------------------------------------------------
  test('RecoveryKey: stored (encryptedPrivateKey optional), never offered, cannot log in (400) nor sign actions', async () => {
    const u = await newUser('cred-rec');
    const withEnc = await addCredential(u, 'RecoveryKey', { encryptedPrivateKey: 'recovery-enc' });
    assertCredentialShape(withEnc.cred);
    assert.equal(withEnc.cred.kind, 'RecoveryKey');
    const plain = await addCredential(u, 'RecoveryKey');
    assert.equal(plain.cred.kind, 'RecoveryKey');
    const ch = await u.client.auth.createCredentialChallenge({ body: { kind: 'RecoveryKey' } });
    await refused(() => u.client.auth.createCredential({ body: credentialBody(ch, 'RecoveryKey', { encryptedPrivateKey: '' }).body }), 400);
    const list = (await u.client.auth.listCredentials()).items;
    assert.deepEqual(
      list.filter((c) => c.kind === 'RecoveryKey').map((c) => c.credentialUuid).sort(),
      [withEnc.cred.credentialUuid, plain.cred.credentialUuid].sort(),
    );
    assert.ok(!JSON.stringify(list).includes('recovery-enc'));

    for (const r of [withEnc, plain]) {
      const cred = { credId: r.credId, privateKey: r.privateKey };
      // never offered
      const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email } });
      assert.ok(!init.text.includes(r.credId), `login/init offers a RecoveryKey: ${init.text}`);
      const ach = await actionChallenge(base(), u.token, { method: 'POST', path: '/auth/credentials/code', body: { expiration: isoIn(600) } });
      assert.ok(!JSON.stringify(ach).includes(r.credId), 'an action challenge offers a RecoveryKey');
      // cannot log in: as RecoveryKey (kind refused) → 400, passed off as a Key → 401
      rawRefused(await loginAs(u, cred, 'RecoveryKey'), 400, 'login with a RecoveryKey');
      rawRefused(await loginAs(u, cred, 'Key'), 401, 'login with a RecoveryKey passed off as a Key');
      assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...cred }), 401);
      // nor sign actions
      rawRefused((await signWith(u.token, cred, 'RecoveryKey')).sign, 400, 'an action signed as RecoveryKey');
      rawRefused((await signWith(u.token, cred, 'Key')).sign, 401, 'an action signed with a RecoveryKey passed off as a Key');
    }
    // the recovery keys do not count as login credentials: the only Key is still the last one
    const regUuid = list.find((c) => c.credentialId === u.reg.credId).credentialUuid;
    await refused(() => u.client.auth.deactivateCredential({ body: { credentialUuid: regUuid } }), 400);
    assert.equal((await u.client.auth.listCredentials()).items.find((c) => c.credentialUuid === regUuid).isActive, true);
    // a recovery key is not a login credential: deactivating one is fine, and back
    const m = await u.client.auth.deactivateCredential({ body: { credentialUuid: plain.cred.credentialUuid } });
    assert.equal(typeof m.message, 'string');
    assert.equal((await u.client.auth.listCredentials()).items.find((c) => c.credentialUuid === plain.cred.credentialUuid).isActive, false);
    await u.client.auth.activateCredential({ body: { credentialUuid: plain.cred.credentialUuid } });
    assert.equal((await u.client.auth.listCredentials()).items.find((c) => c.credentialUuid === plain.cred.credentialUuid).isActive, true);
  });

  // -------------------------------------------------------------------------------------
  test('deactivate → it neither logs in nor signs (401); activate → works again; never the last login credential (400); 404s', async () => {
    const u = await newUser('cred-toggle');
    const v = await newUser('cred-toggle-other');
    const second = await addCredential(u, 'Key');
    const c2 = { credId: second.credId, privateKey: second.privateKey };
    const c1 = { credId: u.reg.credId, privateKey: u.reg.privateKey };
    const uuid1 = (await u.client.auth.listCredentials()).items.find((c) => c.credentialId === u.reg.credId).credentialUuid;
    const uuid2 = second.cred.credentialUuid;
    // a session of the second key, made while it is active
    const s2 = await sdkLogin(base(), { orgId: orgId(), username: u.email, ...c2 });

    const d = await u.client.auth.deactivateCredential({ body: { credentialUuid: uuid2 } });
    assert.equal(typeof d.message, 'string', `deactivate answer: ${JSON.stringify(d)}`);
    assert.equal((await u.client.auth.listCredentials()).items.find((c) => c.credentialUuid === uuid2).isActive, false);
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...c2 }), 401, 'login with a deactivated credential');
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email } });
    assert.ok(!init.json.allowCredentials.key.some((c) => c.id === second.credId), 'a deactivated credential is offered at login');
    const signed = await signWith(u.token, c2);
    rawRefused(signed.sign, 401, 'an action signed with a deactivated credential');
    assert.ok(!signed.ch.allowCredentials.key.some((c) => c.id === second.credId), 'a deactivated credential is offered for actions');
    const signed2 = await signWith(s2.token, c2);
    rawRefused(signed2.sign, 401, 'an action signed with a deactivated credential, in its own session');
    // the other credential is unaffected
    assert.equal((await signWith(u.token, c1)).use.status, 200);

    // the last active login credential cannot be deactivated, and stays active
    await refused(() => u.client.auth.deactivateCredential({ body: { credentialUuid: uuid1 } }), 400);
    assert.equal((await u.client.auth.listCredentials()).items.find((c) => c.credentialUuid === uuid1).isActive, true);
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...c1 }), 200);

    const a = await u.client.auth.activateCredential({ body: { credentialUuid: uuid2 } });
    assert.equal(typeof a.message, 'string');
    assert.equal((await u.client.auth.listCredentials()).items.find((c) => c.credentialUuid === uuid2).isActive, true);
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...c2 }), 200, 'login after activation');
    assert.equal((await signWith(u.token, c2)).use.status, 200, 'signing after activation');

    // now the first can go (and the second is then the last)
    await u.client.auth.deactivateCredential({ body: { credentialUuid: uuid1 } });
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...c1 }), 401);
    const viaSecond = new DfnsApiClient({ baseUrl: base(), orgId: orgId(), authToken: s2.token, signer: new AsymmetricKeySigner(c2) });
    await refused(() => viaSecond.auth.deactivateCredential({ body: { credentialUuid: uuid2 } }), 400);
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...c2 }), 200, 'the last one stays active');
    // the first key cannot sign any more (in any session); the second key can
    rawRefused((await signWith(u.token, c1)).sign, 401, 'the deactivated first key');
    await viaSecond.auth.activateCredential({ body: { credentialUuid: uuid1 } });
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...c1 }), 200);

    // unknown, malformed, another user's → 404; nothing changes
    const snapU = await snapshotCreds(u);
    const snapV = await snapshotCreds(v);
    const vUuid = (await v.client.auth.listCredentials()).items[0].credentialUuid;
    for (const id of [unknownLike(uuid2), 'nonsense', vUuid, u.userId]) {
      await refused(() => u.client.auth.deactivateCredential({ body: { credentialUuid: id } }), 404);
      await refused(() => u.client.auth.activateCredential({ body: { credentialUuid: id } }), 404);
    }
    assert.equal(await snapshotCreds(u), snapU);
    assert.equal(await snapshotCreds(v), snapV);
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: v.email, credId: v.reg.credId, privateKey: v.reg.privateKey }), 200);
    // bad bodies → 400; without a user action → 401
    await refused(() => u.client.auth.deactivateCredential({ body: {} }), 400);
    await refused(() => u.client.auth.deactivateCredential({ body: { credentialUuid: uuid2, extra: true } }), 400);
    rawRefused(
      await raw(base(), { method: 'PUT', path: '/auth/credentials/deactivate', token: u.token, body: { credentialUuid: uuid2 } }),
      401,
      'deactivate without a user action',
    );
    assert.equal(await snapshotCreds(u), snapU);
  });

  // -------------------------------------------------------------------------------------
  test('code flow: a code (ISO or unix seconds), then without any token code/init + code/verify add a Key that logs in', async () => {
    const u = await newUser('cred-code');
    const before = (await u.client.auth.listCredentials()).items;

    // unix seconds
    const unix = unixIn(3600);
    const c1 = await u.client.auth.createCredentialCode({ body: { expiration: unix } });
    assert.equal(typeof c1.code, 'string');
    assert.ok(c1.code.length >= 8, `a short code: ${c1.code}`);
    assert.equal(typeof c1.expiration, 'string');
    assert.ok(Math.abs(Date.parse(c1.expiration) / 1000 - unix) <= 1, `expiration ${c1.expiration} vs ${unix}`);
    // ISO
    const iso = isoIn(1800);
    const code = await u.client.auth.createCredentialCode({ body: { expiration: iso } });
    assert.ok(Math.abs(Date.parse(code.expiration) - Date.parse(iso)) <= 1000, `expiration ${code.expiration} vs ${iso}`);
    assert.notEqual(code.code, c1.code);

    // no bearer token from here on
    const init = await codeInit(code.code, 'Key');
    assert.equal(init.status, 200, init.text);
    assertChallengeShape(init.json, 'Key', u);
    // also through the SDK's method, on a client without a token (a second device)
    const device = new DfnsApiClient({ baseUrl: base() });
    const { body, keys, credId } = credentialBody(init.json, 'Key', { name: 'second device' });
    const verify = await codeVerify(body);
    assert.equal(verify.status, 200, verify.text);
    assertCredentialShape(verify.json);
    assert.equal(verify.json.kind, 'Key');
    assert.equal(verify.json.credentialId, credId);
    assert.equal(verify.json.name, 'second device');
    assert.equal(verify.json.isActive, true);
    const list = (await u.client.auth.listCredentials()).items;
    assert.equal(list.length, before.length + 1);
    assert.deepEqual(list.find((c) => c.credentialUuid === verify.json.credentialUuid), verify.json);
    // it logs in as the user
    const s2 = await sdkLogin(base(), { orgId: orgId(), username: u.email, credId, privateKey: keys.privateKey });
    await s2.client.auth.createCredentialCode({ body: { expiration: isoIn(600) } });

    // the code is spent: a second code/init → 401, and nothing more can be added with it
    rawRefused(await codeInit(code.code, 'Key'), 401, 'code/init with a used code');
    rawRefused(await codeVerify(body), 401, 'code/verify replayed');
    assert.equal((await u.client.auth.listCredentials()).items.length, before.length + 1);

    // the SDK methods (no token): a fresh code, a PasswordProtectedKey this time
    const code2 = await newCode(s2);
    const ch2 = await device.auth.createCredentialChallengeWithCode({ body: { credentialKind: 'PasswordProtectedKey', code: code2.code } });
    assertChallengeShape(ch2, 'PasswordProtectedKey', u);
    const ppk = credentialBody(ch2, 'PasswordProtectedKey', { encryptedPrivateKey: 'ppk-enc' });
    const made = await device.auth.createCredentialWithCode({ body: ppk.body });
    assert.equal(made.kind, 'PasswordProtectedKey');
    assert.equal(made.credentialId, ppk.credId);
    assert.equal((await u.client.auth.listCredentials()).items.length, before.length + 2);
  });

  // -------------------------------------------------------------------------------------
  test('code flow refusals: expiration range 400, wrong code 401, used code 401, challenges do not cross between the flows', async () => {
    const u = await newUser('cred-code-bad');
    const snap0 = await snapshotCreds(u);
    // expiration: 60 s .. 24 h ahead
    for (const [what, expiration] of [
      ['30 s ahead', isoIn(30)],
      ['in the past', isoIn(-3600)],
      ['25 h ahead', isoIn(25 * 3600)],
      ['unix 30 s ahead', unixIn(30)],
      ['unix 25 h ahead', unixIn(25 * 3600)],
      ['unix milliseconds', Date.now() + 3_600_000],
      ['garbage', 'tomorrow'],
      ['a boolean', true],
    ]) {
      const st = await statusOf(() => u.client.auth.createCredentialCode({ body: { expiration } }));
      assert.equal(st, 400, `expiration ${what} (${JSON.stringify(expiration)}): expected 400, got ${st}`);
    }
    await refused(() => u.client.auth.createCredentialCode({ body: {} }), 400);
    await refused(() => u.client.auth.createCredentialCode({ body: { expiration: isoIn(600), extra: 1 } }), 400);
    // the edges of the range are accepted
    await u.client.auth.createCredentialCode({ body: { expiration: isoIn(90) } });
    await u.client.auth.createCredentialCode({ body: { expiration: isoIn(23.9 * 3600) } });
    // without a user action → 401
    rawRefused(
      await raw(base(), { method: 'POST', path: '/auth/credentials/code', token: u.token, body: { expiration: isoIn(600) } }),
      401,
      'POST /auth/credentials/code without a user action',
    );

    // wrong codes → 401
    const code = await newCode(u);
    // (codes are case-insensitive by design: a lower-cased code is the same code)
    const flipped = code.code.replace(/[0-9]/g, (d) => String((Number(d) + 1) % 10));
    for (const wrong of ['AAAA-BBBB-CCCC', flipped, `${code.code}x`, code.code.slice(0, -1), '', 'x'.repeat(200)]) {
      if (wrong === code.code) continue;
      const r = await codeInit(wrong, 'Key');
      assert.ok([400, 401].includes(r.status), `code/init with a wrong code ${JSON.stringify(wrong)}: ${r.status} ${r.text}`);
      if (wrong !== '' && wrong.length <= 64) rawRefused(r, 401, `code/init with a wrong code ${JSON.stringify(wrong)}`);
    }
    rawRefused(await codeInit(code.code, 'Password'), 400, 'code/init for a Password');
    rawRefused(await codeInit(code.code, 'Nope'), 400, 'code/init for an unknown kind');
    rawRefused(await raw(base(), { method: 'POST', path: '/auth/credentials/code/init', body: { kind: 'Key', code: code.code } }), 400, 'code/init with `kind` instead of `credentialKind`');

    // the flows do not cross: an init challenge at code/verify, a code challenge at POST /auth/credentials
    const snap1 = await snapshotCreds(u);
    const chInit = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    rawRefused(await codeVerify(credentialBody(chInit).body), 401, 'a /auth/credentials/init challenge at code/verify');
    const code3 = await newCode(u);
    const chCode = await codeInit(code3.code, 'Key');
    assert.equal(chCode.status, 200, chCode.text);
    await refused(() => u.client.auth.createCredential({ body: credentialBody(chCode.json).body }), 401);
    assert.equal(await snapshotCreds(u), snap1, 'a crossed challenge added a credential');
    // both challenges are still good in their own flow
    await u.client.auth.createCredential({ body: credentialBody(chInit).body });
    assert.equal((await codeVerify(credentialBody(chCode.json).body)).status, 200);

    // code/verify refusals, as for POST /auth/credentials
    const code4 = await newCode(u);
    const ch4 = (await codeInit(code4.code, 'Key')).json;
    const snap2 = await snapshotCreds(u);
    rawRefused(await codeVerify(credentialBody(ch4, 'RecoveryKey').body), 400, 'code/verify with another kind');
    rawRefused(await codeVerify({ ...credentialBody(ch4).body, challengeIdentifier: unknownLike(ch4.challengeIdentifier) }), 401, 'code/verify, unknown challenge');
    const other = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    rawRefused(await codeVerify({ ...credentialBody(other).body, challengeIdentifier: ch4.challengeIdentifier }), 401, 'code/verify, attestation for another challenge');
    rawRefused(await codeVerify(credentialBody(ch4, 'Key', { credId: u.reg.credId }).body), 409, 'code/verify, duplicate credId');
    assert.equal(await snapshotCreds(u), snap2);
    assert.ok(snap0 !== snap2);
  });

  // -------------------------------------------------------------------------------------
  test('a code works once: a second code/init with it → 401, and at most one credential comes from it', async () => {
    const u = await newUser('cred-code-once');
    const code = await newCode(u);
    const first = await codeInit(code.code, 'Key');
    assert.equal(first.status, 200, first.text);
    const second = await codeInit(code.code, 'Key');
    // whatever the second init answered, at most one credential comes from the code
    const before = (await u.client.auth.listCredentials()).items.length;
    const va = await codeVerify(credentialBody(first.json).body);
    assert.equal(va.status, 200, va.text);
    if (second.status === 200) {
      rawRefused(await codeVerify(credentialBody(second.json).body), 401, 'a second challenge of the same code, after the first was answered');
    }
    rawRefused(await codeInit(code.code, 'Key'), 401, 'code/init after the code was used');
    assert.equal((await u.client.auth.listCredentials()).items.length, before + 1, 'one code added more than one credential');
    rawRefused(second, 401, 'a second code/init with the same code (before its first challenge was answered)');
  });

  // -------------------------------------------------------------------------------------
  test('a PAT or a service account cannot touch credentials (403); GET /auth/credentials for a PAT lists its user’s, not its key', async () => {
    const u = await newUser('cred-pat', [patMaker]);
    const patKeys = newKeyPair();
    const pat = await u.client.auth.createPersonalAccessToken({ body: { name: 'cred pat', publicKey: patKeys.publicKey, permissionId: patMaker.id } });
    const patSigner = new AsymmetricKeySigner({ credId: pat.credId, privateKey: patKeys.privateKey });
    const pc = new DfnsApiClient({ baseUrl: base(), orgId: orgId(), authToken: pat.accessToken, signer: patSigner });
    await pc.auth.listUsers({ query: { limit: 1 } }); // positive control
    const snap = await snapshotCreds(u);
    const uuid = (await u.client.auth.listCredentials()).items[0].credentialUuid;

    // list: the user's credentials, not the PAT's key
    const listed = await pc.auth.listCredentials();
    assert.ok(Array.isArray(listed.items));
    assert.ok(!listed.items.some((c) => c.credentialId === pat.credId), 'the PAT key is listed as a credential');
    assert.deepEqual(listed.items.map((c) => c.credentialUuid).sort(), JSON.parse(snap).map((c) => c.credentialUuid).sort());

    await refused(() => pc.auth.createCredentialChallenge({ body: { kind: 'Key' } }), 403);
    rawRefused(await raw(base(), { path: '/auth/credentials' }), 401, 'GET /auth/credentials without a token');
    // the PAT key's credId cannot be reused by a new credential of the user
    const chDup = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    await refused(() => u.client.auth.createCredential({ body: credentialBody(chDup, 'Key', { credId: pat.credId }).body }), 409);
    assert.equal(await snapshotCreds(u), snap);
    const ch = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    await refused(() => pc.auth.createCredential({ body: credentialBody(ch).body }), 403);
    await refused(() => pc.auth.deactivateCredential({ body: { credentialUuid: uuid } }), 403);
    await refused(() => pc.auth.activateCredential({ body: { credentialUuid: uuid } }), 403);
    await refused(() => pc.auth.createCredentialCode({ body: { expiration: isoIn(600) } }), 403);
    // its own key's uuid is not a credential it can toggle either
    assert.equal(await snapshotCreds(u), snap, 'a PAT changed its user’s credentials');
    // the challenge was not spent by the refused PAT call
    await u.client.auth.createCredential({ body: credentialBody(ch).body });

    // a service account, even with every operation
    const saKeys = newKeyPair();
    const sa = await s.client.auth.createServiceAccount({ body: { name: 'cred-sa', publicKey: saKeys.publicKey, permissionId: adminPerm.id } });
    const t = sa.accessTokens[0];
    const sc = new DfnsApiClient({
      baseUrl: base(),
      orgId: orgId(),
      authToken: t.accessToken,
      signer: new AsymmetricKeySigner({ credId: t.credId, privateKey: saKeys.privateKey }),
    });
    await sc.auth.listUsers({ query: { limit: 1 } }); // positive control
    await refused(() => sc.auth.createCredentialChallenge({ body: { kind: 'Key' } }), 403);
    const ch2 = await u.client.auth.createCredentialChallenge({ body: { kind: 'Key' } });
    await refused(() => sc.auth.createCredential({ body: credentialBody(ch2).body }), 403);
    await refused(() => sc.auth.deactivateCredential({ body: { credentialUuid: sa.userInfo.credentialUuid } }), 403);
    await refused(() => sc.auth.activateCredential({ body: { credentialUuid: sa.userInfo.credentialUuid } }), 403);
    await refused(() => sc.auth.createCredentialCode({ body: { expiration: isoIn(600) } }), 403);
    // the service account still has its one key working
    await sc.auth.listUsers({ query: { limit: 1 } });
  });

  // -------------------------------------------------------------------------------------
  test('PasswordProtectedKey login: the mailed login code unlocks the encrypted key; a wrong code is 401', async () => {
    const u = await newUser('ppk-login');
    const encryptedPrivateKey = `enc-${crypto.randomBytes(12).toString('hex')}`;
    const { credId, privateKey } = await addCredential(u, 'PasswordProtectedKey', { encryptedPrivateKey });
    const init = (loginCode) =>
      raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email, ...(loginCode ? { loginCode } : {}) } });

    // without a code: no encrypted key
    const plain = await init();
    assert.equal(plain.status, 200);
    assert.ok(!plain.text.includes(encryptedPrivateKey));

    const sent = await raw(base(), { method: 'POST', path: '/auth/login/code', body: { orgId: orgId(), username: u.email } });
    assert.equal(sent.status, 200, sent.text);
    const code = await waitMailCode(u.email, /Your login code is: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})/);
    // asking again at once mails nothing new and keeps that code valid (no mailbox flood)
    const again = await raw(base(), { method: 'POST', path: '/auth/login/code', body: { orgId: orgId(), username: u.email } });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.message, sent.json.message);

    // a wrong code is refused (and counted), the right one reveals the key
    rawRefused(await init('AAAA-BBBB-CCCC'), 401, 'a wrong login code');
    const unlocked = await init(code);
    assert.equal(unlocked.status, 200, unlocked.text);
    assert.deepEqual(unlocked.json.allowCredentials.passwordProtectedKey, [{ type: 'public-key', id: credId, encryptedPrivateKey }]);
    const firstFactor = { ...keyAssertion(unlocked.json, { credId, privateKey }), kind: 'PasswordProtectedKey' };
    const login = await raw(base(), {
      method: 'POST',
      path: '/auth/login',
      body: { challengeIdentifier: unlocked.json.challengeIdentifier, firstFactor },
    });
    assert.equal(login.status, 200, login.text);
    assert.equal((await raw(base(), { path: '/auth/credentials', token: login.json.token })).status, 200);
    // one code, one challenge with the encrypted key
    rawRefused(await init(code), 401, 'a spent login code');

    // the same answer for an unknown user; a code for an unknown user is just wrong
    const ghost = await raw(base(), { method: 'POST', path: '/auth/login/code', body: { orgId: orgId(), username: uniqueEmail('ghost') } });
    assert.equal(ghost.status, 200);
    assert.equal(ghost.json.message, sent.json.message);
    rawRefused(
      await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: uniqueEmail('ghost'), loginCode: code } }),
      401,
      'a login code for an unknown user',
    );
  });

  test('a login code is dead after five wrong guesses, even when they arrive at once', async () => {
    const u = await newUser('ppk-guess');
    const encryptedPrivateKey = `enc-${crypto.randomBytes(12).toString('hex')}`;
    await addCredential(u, 'PasswordProtectedKey', { encryptedPrivateKey });
    const init = (loginCode) =>
      raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email, loginCode } });
    const sent = await raw(base(), { method: 'POST', path: '/auth/login/code', body: { orgId: orgId(), username: u.email } });
    assert.equal(sent.status, 200, sent.text);
    const code = await waitMailCode(u.email, /Your login code is: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})/);
    // twenty wrong guesses at once (that each is counted before it is compared, so no more
    // than five are ever compared, is the store conformance suite's codes test)
    const wrong = await Promise.all(Array.from({ length: 20 }, (_, i) => init(`WRNG-${String(i).padStart(4, '0')}-CODE`)));
    for (const r of wrong) rawRefused(r, 401, 'a wrong login code');
    // the guesses are used up: the right code no longer unlocks the key
    const late = await init(code);
    rawRefused(late, 401, 'the right code after five wrong guesses');
    assert.ok(!late.text.includes(encryptedPrivateKey));
  });

  test('login/init does not tell who exists: a username that cannot log in seems to have a key', async () => {
    const init = (username) => raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username } });
    const u = await newUser('real');
    const real = await init(u.email);
    const ghost = uniqueEmail('ghost');
    const [a, b, other] = [await init(ghost), await init(ghost), await init(uniqueEmail('ghost'))];
    for (const r of [real, a, b, other]) assert.equal(r.status, 200, r.text);
    // the same shape as a real key holder's answer
    assert.deepEqual(Object.keys(a.json).sort(), Object.keys(real.json).sort());
    assert.deepEqual(Object.keys(a.json.allowCredentials).sort(), Object.keys(real.json.allowCredentials).sort());
    assert.equal(real.json.allowCredentials.key.length, 1);
    assert.equal(a.json.allowCredentials.key.length, 1);
    assert.deepEqual(a.json.supportedCredentialKinds, real.json.supportedCredentialKinds);
    // stable for one username (as a real one is), different across usernames, fresh challenges
    assert.equal(a.json.allowCredentials.key[0].id, b.json.allowCredentials.key[0].id);
    assert.notEqual(a.json.allowCredentials.key[0].id, other.json.allowCredentials.key[0].id);
    assert.notEqual(a.json.challenge, b.json.challenge);
    // and it logs nobody in
    const forged = { ...keyAssertion(a.json, { credId: a.json.allowCredentials.key[0].id, privateKey: newKeyPair().privateKey }) };
    const login = await raw(base(), { method: 'POST', path: '/auth/login', body: { challengeIdentifier: a.json.challengeIdentifier, firstFactor: forged } });
    rawRefused(login, 401, 'login with a decoy credential');
  });

  test('Totp second factor: enrolled with a first code, then required at login, each code once', async () => {
    const u = await newUser('totp');
    const ch = await u.client.auth.createCredentialChallenge({ body: { kind: 'Totp' } });
    assert.equal(ch.kind, 'Totp');
    assert.match(ch.otpUrl, /^otpauth:\/\/totp\//);
    const secret = base32Decode(new URL(ch.otpUrl).searchParams.get('secret'));
    const now = () => Math.floor(Date.now() / 1000);
    const body = (otpCode) => ({ credentialKind: 'Totp', credentialName: 'phone', challengeIdentifier: ch.challengeIdentifier, credentialInfo: { otpCode } });

    // a wrong code does not enroll (and does not use the challenge up)
    const wrongCode = totpCode(secret, now() + 3600);
    await refused(() => u.client.auth.createCredential({ body: body(wrongCode) }), 401);
    const cred = await u.client.auth.createCredential({ body: body(totpCode(secret, now())) });
    assert.equal(cred.kind, 'Totp');
    assert.ok(!JSON.stringify(await u.client.auth.listCredentials()).includes(new URL(ch.otpUrl).searchParams.get('secret')), 'the secret is never shown again');
    // one Totp at a time
    await refused(() => u.client.auth.createCredentialChallenge({ body: { kind: 'Totp' } }), 409);

    // the login challenge asks for the second factor; the key alone is refused
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email } });
    assert.ok(init.json.supportedCredentialKinds.some((k) => k.kind === 'Totp' && k.factor === 'second'), JSON.stringify(init.json.supportedCredentialKinds));
    assert.ok(init.json.supportedCredentialKinds.some((k) => k.kind === 'Key' && k.requiresSecondFactor === true));
    const keyOnly = await loginAs(u, { credId: u.reg.credId, privateKey: u.reg.privateKey });
    rawRefused(keyOnly, 401, 'a login without the second factor');

    const loginWith = async (otpCode) => {
      const i = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email } });
      const firstFactor = { ...keyAssertion(i.json, { credId: u.reg.credId, privateKey: u.reg.privateKey }), kind: 'Key' };
      return raw(base(), {
        method: 'POST',
        path: '/auth/login',
        body: { challengeIdentifier: i.json.challengeIdentifier, firstFactor, secondFactor: { kind: 'Totp', otpCode } },
      });
    };
    rawRefused(await loginWith('000000' === totpCode(secret, now() + 30) ? '111111' : '000000'), 401, 'a wrong one-time password');
    // the enrollment used the current step; the next step's code (within the skew) logs in once
    const next = totpCode(secret, now() + 30);
    const ok = await loginWith(next);
    assert.equal(ok.status, 200, ok.text);
    rawRefused(await loginWith(next), 401, 'a one-time password used twice');
    // the session works; SDK user actions (one factor) still work in it
    const session = new DfnsApiClient({ baseUrl: base(), orgId: orgId(), authToken: ok.json.token, signer: u.signer });
    await session.auth.createCredentialCode({ body: { expiration: isoIn(600) } });

    // deactivated, the Totp is no longer required
    await session.auth.deactivateCredential({ body: { credentialUuid: cred.credentialUuid } });
    const plain = await loginAs(u, { credId: u.reg.credId, privateKey: u.reg.privateKey });
    assert.equal(plain.status, 200, plain.text);
  });

  test('an expired code is refused at code/init (401) (the last test: it waits for the expiry)', async () => {
    const wait = expiring.at + 64_000 - Date.now();
    if (wait > 0) await sleep(wait);
    const before = await snapshotCreds(expiring.user);
    rawRefused(await codeInit(expiring.code, 'Key'), 401, 'code/init with an expired code');
    assert.equal(await snapshotCreds(expiring.user), before);
  });
});
