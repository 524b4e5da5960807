// Service accounts through the official Dfns SDK (@dfns/sdk 0.8.21 + @dfns/sdk-keysigner 0.8.3)
// against a real `keyfold dev`: creation (shape, the token shown once and never stored, the
// account's own key signing its user actions), exactly the operations of its assignments (and
// grants / revocations counting on its next request), deactivate / activate / delete locking
// its token out, refused creations that leave nothing behind, and a service account that is
// neither a user of GET /auth/users nor able to log in.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import {
  AsymmetricKeySigner,
  BaseAuthApi,
  DfnsApiClient,
  DfnsError,
  actionChallenge,
  expectDfnsError,
  keyAssertion,
  listAllUsers,
  loginStatus,
  newKeyPair,
  payloadOf,
  raw,
  registerUser,
  sdkLogin,
  snapshotUsers,
  startAndLogin,
  uniqueEmail,
  userAction,
  refused,
} from './lib/harness.mjs';

// ---------------------------------------------------------------------------------------
// helpers

const ID_RE = (prefix) => new RegExp(`^${prefix}-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{16}$`);
const US_RE = ID_RE('us');
const CR_RE = ID_RE('cr');
const TO_RE = ID_RE('to');
const PM_RE = ID_RE('pm');
const AS_RE = ID_RE('as');

/** A syntactically valid id of the same kind that (almost surely) does not exist. */
function unknownLike(id) {
  const tail = id.endsWith('000000') ? '000001' : '000000';
  return `${id.slice(0, -6)}${tail}`;
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

/** A fresh key pair of a kind a service account may use, as PEM (SPKI / PKCS#8). */
function keyPairOf(kind) {
  let pair;
  switch (kind) {
    case 'P-256':
      return newKeyPair();
    case 'secp256k1':
      pair = crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      break;
    case 'Ed25519':
      pair = crypto.generateKeyPairSync('ed25519');
      break;
    case 'RSA':
      pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      break;
    case 'P-384': // not supported
      pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
      break;
    default:
      throw new Error(kind);
  }
  return {
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }),
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }),
  };
}

/** Every key (at any depth) of a JSON value. */
function deepKeys(v, out = []) {
  if (Array.isArray(v)) for (const x of v) deepKeys(x, out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      deepKeys(x, out);
    }
  }
  return out;
}

/** The body of a PEM (base64 without the armour and line breaks). */
const pemBody = (pem) => pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');

function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/**
 * Asserts the SDK's ServiceAccount shape ({userInfo, accessTokens}). `withToken`: the create
 * response carries the JWT; every other answer must not.
 */
function assertServiceAccountShape(sa, { withToken = false } = {}) {
  assert.ok(sa && typeof sa === 'object', `service account: ${JSON.stringify(sa)}`);
  assert.deepEqual(Object.keys(sa).sort(), ['accessTokens', 'userInfo'], `service account fields: ${JSON.stringify(sa)}`);
  const u = sa.userInfo;
  for (const f of ['username', 'name', 'userId', 'kind', 'credentialUuid', 'orgId']) {
    assert.equal(typeof u[f], 'string', `userInfo.${f} should be a string in ${JSON.stringify(u)}`);
  }
  for (const f of ['isActive', 'isServiceAccount', 'isRegistered']) {
    assert.equal(typeof u[f], 'boolean', `userInfo.${f} should be a boolean in ${JSON.stringify(u)}`);
  }
  assert.match(u.userId, US_RE);
  assert.match(u.credentialUuid, CR_RE);
  assert.equal(u.kind, 'CustomerEmployee');
  assert.equal(u.isServiceAccount, true);
  assert.equal(u.isRegistered, true);
  assert.ok(Array.isArray(u.permissionAssignments), 'userInfo.permissionAssignments should be an array');
  for (const a of u.permissionAssignments) {
    assert.match(a.permissionId, PM_RE);
    assert.equal(typeof a.permissionName, 'string');
    assert.match(a.assignmentId, AS_RE);
    if (a.operations !== undefined) assert.ok(Array.isArray(a.operations) && a.operations.every((o) => typeof o === 'string'));
  }
  if (u.permissions !== undefined) assert.ok(Array.isArray(u.permissions));

  assert.ok(Array.isArray(sa.accessTokens), 'accessTokens should be an array');
  assert.equal(sa.accessTokens.length, 1, `exactly one access token: ${JSON.stringify(sa.accessTokens)}`);
  const t = sa.accessTokens[0];
  for (const f of ['dateCreated', 'credId', 'linkedUserId', 'linkedAppId', 'name', 'orgId', 'publicKey', 'tokenId']) {
    assert.equal(typeof t[f], 'string', `accessTokens[0].${f} should be a string in ${JSON.stringify(t)}`);
  }
  assert.equal(typeof t.isActive, 'boolean');
  assert.match(t.tokenId, TO_RE);
  assert.ok(t.credId.length > 0);
  assert.equal(t.kind, 'ServiceAccount');
  assert.equal(t.linkedUserId, u.userId);
  assert.equal(t.orgId, u.orgId);
  assert.ok(!Number.isNaN(Date.parse(t.dateCreated)), `dateCreated is not a date: ${t.dateCreated}`);
  assert.match(t.publicKey, /-----BEGIN (RSA )?PUBLIC KEY-----/);
  assert.ok(Array.isArray(t.permissionAssignments), 'accessTokens[0].permissionAssignments should be an array');
  if (withToken) {
    assert.equal(typeof t.accessToken, 'string', 'the create response carries the access token');
    assert.equal(t.accessToken.split('.').length, 3, `the access token is a JWT: ${t.accessToken}`);
  } else {
    assert.equal('accessToken' in t, false, `accessToken must only be in the create response: ${JSON.stringify(t)}`);
  }
  // no private material under any name
  const sensitive = deepKeys(sa).filter((k) => /private|secret|password|encrypted/i.test(k));
  assert.deepEqual(sensitive, [], `private-looking fields: ${sensitive}`);
  assert.ok(!JSON.stringify(sa).includes('PRIVATE KEY'), 'a private key in the answer');
}

/** The create response without the (create-only) JWT: what get / list must answer. */
function withoutToken(sa) {
  const copy = structuredClone(sa);
  for (const t of copy.accessTokens) delete t.accessToken;
  return copy;
}

// ---------------------------------------------------------------------------------------

describe('service accounts via the Dfns SDK', () => {
  let s; // the root: { k, token, signer, client }
  let adminPerm; // the built-in administrator permission
  let readOnly; // Auth:Users:Read + Permissions:Read + Auth:ServiceAccounts:Read
  let usersRW; // Auth:Users:Read + Auth:Users:Create

  const base = () => s.k.baseUrl;

  /** An SDK client acting as the service account `created` with its own `privateKey`. */
  function saClient(created, privateKey) {
    const t = created.accessTokens[0];
    const signer = new AsymmetricKeySigner({ credId: t.credId, privateKey });
    return new DfnsApiClient({ baseUrl: base(), orgId: s.k.admin.orgId, authToken: t.accessToken, signer });
  }

  /**
   * Creates a service account (by `by`, the root by default) with a fresh key of `keyKind`:
   * { created, id, token, credId, keys, client, signer }.
   */
  async function newSa({ name, permissionId, externalId, daysValid, keyKind = 'P-256', by } = {}) {
    const keys = keyPairOf(keyKind);
    const body = { name: name ?? `sa-${crypto.randomBytes(4).toString('hex')}`, publicKey: keys.publicKey };
    if (permissionId !== undefined) body.permissionId = permissionId;
    if (externalId !== undefined) body.externalId = externalId;
    if (daysValid !== undefined) body.daysValid = daysValid;
    const created = await (by ?? s.client).auth.createServiceAccount({ body });
    const t = created.accessTokens[0];
    const client = saClient(created, keys.privateKey);
    return {
      created,
      id: created.userInfo.userId,
      username: created.userInfo.username,
      token: t.accessToken,
      credId: t.credId,
      keys,
      client,
      signer: new AsymmetricKeySigner({ credId: t.credId, privateKey: keys.privateKey }),
    };
  }

  /** Every service account, following nextPageToken by hand if the server paginates. */
  async function allServiceAccounts(client = s.client, token = s.token) {
    const first = await client.auth.listServiceAccounts();
    assert.ok(Array.isArray(first.items), `listServiceAccounts: ${JSON.stringify(first)}`);
    const items = [...first.items];
    let next = first.nextPageToken;
    for (let i = 0; next && i < 1000; i++) {
      const r = await raw(base(), { path: `/auth/service-accounts?paginationToken=${encodeURIComponent(next)}`, token });
      assert.equal(r.status, 200, r.text);
      items.push(...r.json.items);
      next = r.json.nextPageToken;
    }
    return items;
  }

  async function snapshotServiceAccounts() {
    const all = await allServiceAccounts();
    return JSON.stringify(all.sort((a, b) => (a.userInfo.userId < b.userInfo.userId ? -1 : 1)));
  }

  async function snapshotAssignments(permissionIds) {
    const out = [];
    for (const permissionId of permissionIds) {
      const r = await s.client.permissions.listAssignments({ permissionId, query: { limit: 100 } });
      out.push([permissionId, r.items.map((a) => a.id).sort()]);
    }
    return JSON.stringify(out);
  }

  /** Creates, registers and logs in a user of s's org: { userId, email, session, client }. */
  async function newUser(tag) {
    const email = uniqueEmail(tag);
    const created = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const reg = await registerUser(s.k, email);
    const session = await sdkLogin(base(), { orgId: s.k.admin.orgId, username: email, credId: reg.credId, privateKey: reg.privateKey });
    return { userId: created.userId, email, session, client: session.client };
  }

  /** Files under the data dir that contain `needle` (as bytes). */
  function dataFilesContaining(needle) {
    const hits = [];
    const bytes = Buffer.from(needle);
    const walk = (dir) => {
      for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, ent.name);
        if (ent.isDirectory()) walk(full);
        else if (ent.isFile()) {
          let buf;
          try {
            buf = fs.readFileSync(full);
          } catch {
            continue;
          }
          if (buf.includes(bytes)) hits.push(path.relative(s.k.dataDir, full));
        }
      }
    };
    walk(s.k.dataDir);
    return hits;
  }

  before(async () => {
    s = await startAndLogin();
    const perms = (await s.client.permissions.listPermissions({ query: { limit: 100 } })).items;
    adminPerm = perms.find((p) => p.isImmutable);
    assert.ok(adminPerm, 'the built-in administrator permission');
    readOnly = await s.client.permissions.createPermission({
      body: { name: 'sa-read-only', operations: ['Auth:Users:Read', 'Permissions:Read', 'Auth:ServiceAccounts:Read'] },
    });
    usersRW = await s.client.permissions.createPermission({
      body: { name: 'sa-users-rw', operations: ['Auth:Users:Read', 'Auth:Users:Create'] },
    });
  });
  after(async () => {
    await s?.k.stop();
  });

  // -------------------------------------------------------------------------------------
  test('create: the SDK shape, its token once, no private material; it reads with its token and signs with its own key', async (t) => {
    for (const o of [
      'Auth:ServiceAccounts:Create',
      'Auth:ServiceAccounts:Read',
      'Auth:ServiceAccounts:Update',
      'Auth:ServiceAccounts:Deactivate',
      'Auth:ServiceAccounts:Activate',
      'Auth:ServiceAccounts:Delete',
    ]) {
      assert.ok(adminPerm.operations.includes(o), `the built-in permission lacks ${o}`);
    }
    const externalId = `ext-${crypto.randomBytes(6).toString('hex')}`;
    const sa = await newSa({ name: 'robot one', permissionId: readOnly.id, externalId });
    const c = sa.created;
    assertServiceAccountShape(c, { withToken: true });
    const u = c.userInfo;
    const tok = c.accessTokens[0];
    assert.equal(u.name, 'robot one');
    assert.equal(u.orgId, s.k.admin.orgId);
    assert.equal(u.isActive, true);
    assert.equal(tok.isActive, true);
    assert.equal(tok.publicKey.trim(), sa.keys.publicKey.trim(), 'the public key is echoed');
    assert.equal(u.permissionAssignments.length, 1, JSON.stringify(u.permissionAssignments));
    const pa = u.permissionAssignments[0];
    assert.equal(pa.permissionId, readOnly.id);
    assert.equal(pa.permissionName, readOnly.name);
    if (pa.operations) assert.deepEqual([...pa.operations].sort(), [...readOnly.operations].sort());
    // the assignment is a real one, visible through the permissions API
    const as = (await s.client.permissions.listAssignments({ permissionId: readOnly.id })).items;
    const mine = as.filter((a) => a.identityId === sa.id);
    assert.deepEqual(mine.map((a) => a.id), [pa.assignmentId], `assignments of ${sa.id}: ${JSON.stringify(as)}`);

    // the private key never left this process; nothing private-looking came back
    assert.ok(!JSON.stringify(c).includes(pemBody(sa.keys.privateKey)));

    // the JWT is scoped to the org (the SDK checks this claim on every call)
    const claims = jwtClaims(sa.token);
    assert.equal(claims['https://custom/app_metadata']?.orgId, s.k.admin.orgId, `claims: ${JSON.stringify(claims)}`);
    t.diagnostic(`token claims: ${Object.keys(claims).join(', ')}`);

    // get and list answer the same account, without the token
    const got = await s.client.auth.getServiceAccount({ serviceAccountId: sa.id });
    assertServiceAccountShape(got);
    assert.deepEqual(got, withoutToken(c), 'getServiceAccount differs from the create response (minus accessToken)');
    const all = await allServiceAccounts();
    for (const x of all) assertServiceAccountShape(x);
    const listed = all.filter((x) => x.userInfo.userId === sa.id);
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0], got);
    assert.ok(!JSON.stringify(all).includes(sa.token), 'the list leaks the token');
    assert.ok(!JSON.stringify(got).includes(sa.token.split('.')[2]), 'get leaks the token');

    // the token is stored only as its id: its signature is nowhere in the data dir or the logs
    const sig = sa.token.split('.')[2];
    assert.deepEqual(dataFilesContaining(sig), [], 'the access token is stored in the data dir');
    assert.ok(!s.k.stderr().includes(sig) && !s.k.stdout().includes(sig), 'the access token is logged');

    // its token works: it reads with its read-only permission
    const users = await sa.client.auth.listUsers();
    assert.ok(users.items.some((x) => x.userId === s.k.admin.userId));
    await sa.client.permissions.getPermission({ permissionId: readOnly.id });
    const seen = await sa.client.auth.listServiceAccounts();
    assert.ok(seen.items.some((x) => x.userInfo.userId === sa.id));
    // ...and cannot create a user yet
    await refused(() => sa.client.auth.createUser({ body: { email: uniqueEmail('sa-early'), kind: 'CustomerEmployee' } }), 403);

    // granted Auth:Users:Create, it creates a user: the SDK signs the user action with the
    // service account's own key (AsymmetricKeySigner over its credId)
    await s.client.permissions.createAssignment({ permissionId: usersRW.id, body: { identityId: sa.id } });
    const email = uniqueEmail('by-sa');
    const made = await sa.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    assert.equal(made.username, email);
    assert.ok((await listAllUsers(s.client)).some((x) => x.userId === made.userId && x.username === email));

    // its action challenges name its credential, not the admin's
    const body = { email: uniqueEmail('sa-wrongkey'), kind: 'CustomerEmployee' };
    const ch = await actionChallenge(base(), sa.token, { method: 'POST', path: '/auth/users', body });
    const allowed = ch.allowCredentials.key.map((x) => x.id);
    assert.ok(allowed.includes(sa.credId), `allowCredentials ${allowed} lacks the service account's ${sa.credId}`);
    assert.ok(!allowed.includes(s.k.admin.credId), "the admin's credential is offered to the service account");
    // its credId with another private key: 401
    const other = newKeyPair();
    await expectDfnsError(
      () =>
        BaseAuthApi.signUserActionChallenge(
          { challengeIdentifier: ch.challengeIdentifier, firstFactor: keyAssertion(ch, { credId: sa.credId, privateKey: other.privateKey }) },
          { baseUrl: base(), authToken: sa.token },
        ),
      401,
    );
    // the admin's credential with the service account's token: 401
    const ch2 = await actionChallenge(base(), sa.token, { method: 'POST', path: '/auth/users', body });
    await expectDfnsError(
      () =>
        BaseAuthApi.signUserActionChallenge(
          { challengeIdentifier: ch2.challengeIdentifier, firstFactor: keyAssertion(ch2, s.k.admin) },
          { baseUrl: base(), authToken: sa.token },
        ),
      401,
    );
    // the service account's key with the admin's token: 401
    const ch3 = await actionChallenge(base(), s.token, { method: 'POST', path: '/auth/users', body });
    await expectDfnsError(
      () =>
        BaseAuthApi.signUserActionChallenge(
          { challengeIdentifier: ch3.challengeIdentifier, firstFactor: keyAssertion(ch3, { credId: sa.credId, privateKey: sa.keys.privateKey }) },
          { baseUrl: base(), authToken: s.token },
        ),
      401,
    );
    assert.ok(!(await listAllUsers(s.client)).some((x) => x.username === body.email), 'a refused action created a user');
  });

  test('every supported key kind (secp256k1, Ed25519, RSA) signs its user actions; daysValid sets the lifetime', async (t) => {
    for (const keyKind of ['secp256k1', 'Ed25519', 'RSA']) {
      const sa = await newSa({ name: `robot ${keyKind}`, permissionId: usersRW.id, keyKind, daysValid: 2 });
      assertServiceAccountShape(sa.created, { withToken: true });
      assert.equal(sa.created.accessTokens[0].publicKey.trim(), sa.keys.publicKey.trim());
      const email = uniqueEmail(`by-${keyKind.toLowerCase()}`);
      const made = await sa.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
      assert.equal(made.username, email, keyKind);
      const claims = jwtClaims(sa.token);
      if (claims.exp !== undefined) {
        const want = Date.now() / 1000 + 2 * 86_400;
        assert.ok(Math.abs(claims.exp - want) < 600, `daysValid 2 but exp is ${new Date(claims.exp * 1000).toISOString()}`);
      } else {
        t.diagnostic(`${keyKind}: the service account JWT has no exp claim`);
      }
    }
  });

  // -------------------------------------------------------------------------------------
  test('a read-only service account reads but cannot create or change anything (403), nothing changes', async () => {
    const sa = await newSa({ name: 'reader bot', permissionId: readOnly.id });
    const victim = await newSa({ name: 'victim bot', permissionId: readOnly.id });
    // reads
    await sa.client.auth.listUsers({ query: { limit: 1 } });
    await sa.client.auth.getUser({ userId: s.k.admin.userId });
    await sa.client.permissions.listPermissions();
    await sa.client.auth.listServiceAccounts();
    await sa.client.auth.getServiceAccount({ serviceAccountId: victim.id });

    const usersBefore = await snapshotUsers(s.client);
    const sasBefore = await snapshotServiceAccounts();
    const asBefore = await snapshotAssignments([adminPerm.id, readOnly.id, usersRW.id]);
    const email = uniqueEmail('ro-sa');
    await refused(() => sa.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } }), 403, 'Auth:Users:Create');
    await refused(() => sa.client.auth.createServiceAccount({ body: { name: 'child', publicKey: newKeyPair().publicKey } }), 403);
    await refused(() => sa.client.auth.updateServiceAccount({ serviceAccountId: sa.id, body: { name: 'renamed' } }), 403);
    await refused(() => sa.client.auth.updateServiceAccount({ serviceAccountId: victim.id, body: { name: 'renamed' } }), 403);
    await refused(() => sa.client.auth.deactivateServiceAccount({ serviceAccountId: victim.id }), 403);
    await refused(() => sa.client.auth.archiveServiceAccount({ serviceAccountId: victim.id }), 403);
    await refused(() => sa.client.permissions.createPermission({ body: { name: 'mine', operations: ['Auth:Users:Create'] } }), 403);
    await refused(() => sa.client.permissions.createAssignment({ permissionId: adminPerm.id, body: { identityId: sa.id } }), 403);
    await refused(() => sa.client.permissions.createAssignment({ permissionId: usersRW.id, body: { identityId: sa.id } }), 403);
    await refused(() => sa.client.wallets.listWallets(), 403);
    assert.equal(await snapshotUsers(s.client), usersBefore);
    assert.equal(await snapshotServiceAccounts(), sasBefore);
    assert.equal(await snapshotAssignments([adminPerm.id, readOnly.id, usersRW.id]), asBefore);
    // the victim still works
    await victim.client.auth.listUsers({ query: { limit: 1 } });
  });

  // -------------------------------------------------------------------------------------
  test('assignments and revocations count on its very next request (same token)', async () => {
    const sa = await newSa({ name: 'grantee bot' });
    assert.deepEqual(sa.created.userInfo.permissionAssignments, [], 'created without a permission it holds none');
    const tryList = () => statusOf(() => sa.client.auth.listUsers({ query: { limit: 1 } }));
    const tryCreate = async () => {
      const email = uniqueEmail('grant-sa');
      const st = await statusOf(() => sa.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } }));
      const exists = (await listAllUsers(s.client)).some((x) => x.username === email);
      assert.equal(exists, st === 200, `createUser answered ${st} but the user ${exists ? 'exists' : 'does not exist'}`);
      return st;
    };
    assert.equal(await tryList(), 403);
    assert.equal(await tryCreate(), 403);

    const readers = await s.client.permissions.createPermission({ body: { name: 'sa-readers', operations: ['Auth:Users:Read'] } });
    const writers = await s.client.permissions.createPermission({ body: { name: 'sa-writers', operations: ['Auth:Users:Create'] } });
    const a = await s.client.permissions.createAssignment({ permissionId: readers.id, body: { identityId: sa.id } });
    assert.equal(a.identityId, sa.id);
    assert.equal(await tryList(), 200, 'listUsers right after the assignment');
    assert.equal(await tryCreate(), 403);
    const got = await s.client.auth.getServiceAccount({ serviceAccountId: sa.id });
    assert.deepEqual(
      got.userInfo.permissionAssignments.map((x) => [x.permissionId, x.assignmentId]),
      [[readers.id, a.id]],
      'getServiceAccount shows the new assignment',
    );

    const b = await s.client.permissions.createAssignment({ permissionId: writers.id, body: { identityId: sa.id } });
    assert.equal(await tryCreate(), 200, 'createUser right after the assignment');

    // archiving the permission takes its operations away at once; restoring gives them back
    await s.client.permissions.archivePermission({ permissionId: writers.id, body: { isArchived: true } });
    assert.equal(await tryCreate(), 403, 'createUser right after archiving the permission');
    await s.client.permissions.archivePermission({ permissionId: writers.id, body: { isArchived: false } });
    assert.equal(await tryCreate(), 200, 'createUser right after restoring the permission');

    // revoke: at once
    await s.client.permissions.deleteAssignment({ permissionId: writers.id, assignmentId: b.id });
    assert.equal(await tryCreate(), 403, 'createUser right after the revocation');
    assert.equal(await tryList(), 200);
    await s.client.permissions.deleteAssignment({ permissionId: readers.id, assignmentId: a.id });
    assert.equal(await tryList(), 403, 'listUsers right after the revocation');
    const after = await s.client.auth.getServiceAccount({ serviceAccountId: sa.id });
    assert.deepEqual(after.userInfo.permissionAssignments, []);
    // the token itself is still fine: a new grant works again
    await s.client.permissions.createAssignment({ permissionId: readers.id, body: { identityId: sa.id } });
    assert.equal(await tryList(), 200);
  });

  // -------------------------------------------------------------------------------------
  test('update: name and externalId; bad name → 400, unknown → 404; its token keeps working', async () => {
    const sa = await newSa({ name: 'old name', permissionId: readOnly.id, externalId: `ext-${crypto.randomBytes(4).toString('hex')}` });
    const up = await s.client.auth.updateServiceAccount({ serviceAccountId: sa.id, body: { name: 'new name' } });
    assertServiceAccountShape(up);
    assert.equal(up.userInfo.userId, sa.id);
    assert.equal(up.userInfo.name, 'new name');
    assert.equal(up.accessTokens[0].tokenId, sa.created.accessTokens[0].tokenId);
    const got = await s.client.auth.getServiceAccount({ serviceAccountId: sa.id });
    assert.deepEqual(got, up);
    const up2 = await s.client.auth.updateServiceAccount({ serviceAccountId: sa.id, body: { externalId: `ext2-${crypto.randomBytes(4).toString('hex')}` } });
    assert.equal(up2.userInfo.name, 'new name', 'updating externalId alone keeps the name');
    const before = await snapshotServiceAccounts();
    await refused(() => s.client.auth.updateServiceAccount({ serviceAccountId: sa.id, body: { name: '' } }), 400);
    await refused(() => s.client.auth.updateServiceAccount({ serviceAccountId: unknownLike(sa.id), body: { name: 'x' } }), 404);
    await refused(() => s.client.auth.updateServiceAccount({ serviceAccountId: s.k.admin.userId, body: { name: 'x' } }), 404);
    assert.equal(await snapshotServiceAccounts(), before);
    assert.equal((await s.client.auth.getUser({ userId: s.k.admin.userId })).name === 'x', false);
    await sa.client.auth.listUsers({ query: { limit: 1 } });
  });

  // -------------------------------------------------------------------------------------
  test('deactivate locks its token out at once (401), activate lets the same token back, delete locks it out for good', async () => {
    const sa = await newSa({ name: 'lifecycle bot', permissionId: usersRW.id });
    const bystander = await newSa({ name: 'bystander bot', permissionId: readOnly.id });
    await sa.client.auth.listUsers({ query: { limit: 1 } });

    // a user action signed while active, used after the deactivation
    const pendingBody = { email: uniqueEmail('pending'), kind: 'CustomerEmployee' };
    const ua = await userAction(base(), sa.token, sa.signer, { method: 'POST', path: '/auth/users', body: pendingBody });

    const d = await s.client.auth.deactivateServiceAccount({ serviceAccountId: sa.id, body: {} });
    assertServiceAccountShape(d);
    assert.equal(d.userInfo.userId, sa.id);
    assert.equal(d.userInfo.isActive, false);
    assert.equal((await s.client.auth.getServiceAccount({ serviceAccountId: sa.id })).userInfo.isActive, false);
    assert.equal((await allServiceAccounts()).find((x) => x.userInfo.userId === sa.id)?.userInfo.isActive, false);

    const locked = async (what) => {
      const r = await raw(base(), { path: '/auth/users?limit=1', token: sa.token });
      assert.equal(r.status, 401, `${what}: GET /auth/users with its token: ${r.status} ${r.text}`);
      const r2 = await raw(base(), { path: `/auth/service-accounts/${sa.id}`, token: sa.token });
      assert.equal(r2.status, 401, `${what}: GET its own service account: ${r2.status} ${r2.text}`);
      await refused(() => sa.client.auth.listUsers(), 401);
      await refused(() => sa.client.auth.createUser({ body: { email: uniqueEmail('locked'), kind: 'CustomerEmployee' } }), 401);
      const init = await raw(base(), {
        method: 'POST',
        path: '/auth/action/init',
        token: sa.token,
        body: { userActionPayload: '{}', userActionHttpMethod: 'POST', userActionHttpPath: '/auth/users', userActionServerKind: 'Api' },
      });
      assert.equal(init.status, 401, `${what}: /auth/action/init with its token: ${init.status} ${init.text}`);
    };
    await locked('deactivated');
    const late = await raw(base(), { method: 'POST', path: '/auth/users', token: sa.token, userAction: ua, body: payloadOf(pendingBody) });
    assert.equal(late.status, 401, `user action signed before the deactivation: ${late.status} ${late.text}`);
    assert.ok(!(await listAllUsers(s.client)).some((x) => x.username === pendingBody.email), 'the pending action created a user');
    // another service account is not affected
    await bystander.client.auth.listUsers({ query: { limit: 1 } });

    const a = await s.client.auth.activateServiceAccount({ serviceAccountId: sa.id });
    assertServiceAccountShape(a);
    assert.equal(a.userInfo.isActive, true);
    assert.equal(a.accessTokens[0].tokenId, sa.created.accessTokens[0].tokenId, 'the same token after activation');
    // the same token works again, reads and signed writes
    await sa.client.auth.listUsers({ query: { limit: 1 } });
    const email = uniqueEmail('reactivated');
    await sa.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });

    // delete while active (the harder case): a user action signed just before dies with it
    const ua2 = await userAction(base(), sa.token, sa.signer, {
      method: 'POST',
      path: '/auth/users',
      body: { email: uniqueEmail('pending2'), kind: 'CustomerEmployee' },
    });
    const del = await s.client.auth.archiveServiceAccount({ serviceAccountId: sa.id });
    assertServiceAccountShape(del);
    assert.equal(del.userInfo.userId, sa.id);
    await locked('deleted');
    const late2 = await raw(base(), {
      method: 'POST',
      path: '/auth/users',
      token: sa.token,
      userAction: ua2,
      body: payloadOf({ email: 'x@example.com', kind: 'CustomerEmployee' }),
    });
    assert.equal(late2.status, 401, `user action of a deleted account: ${late2.status}`);
    assert.ok(!(await allServiceAccounts()).some((x) => x.userInfo.userId === sa.id), 'a deleted service account is still listed');
    await refused(() => s.client.auth.getServiceAccount({ serviceAccountId: sa.id }), 404);
    await refused(() => s.client.auth.activateServiceAccount({ serviceAccountId: sa.id }), 404);
    await refused(() => s.client.auth.deactivateServiceAccount({ serviceAccountId: sa.id }), 404);
    await refused(() => s.client.auth.updateServiceAccount({ serviceAccountId: sa.id, body: { name: 'zombie' } }), 404);
    await refused(() => s.client.auth.archiveServiceAccount({ serviceAccountId: sa.id }), 404);
    await locked('deleted, after the refused activation');
    await bystander.client.auth.listUsers({ query: { limit: 1 } });

    // deactivating the bystander without a body, as SDK callers who omit it do
    await s.client.auth.deactivateServiceAccount({ serviceAccountId: bystander.id });
    assert.equal(await statusOf(() => bystander.client.auth.listUsers()), 401);
    await s.client.auth.activateServiceAccount({ serviceAccountId: bystander.id });
    await bystander.client.auth.listUsers({ query: { limit: 1 } });
  });

  // -------------------------------------------------------------------------------------
  test('refused creations: bad key, bad name, unknown / archived / out-of-reach permission, no Auth:ServiceAccounts:Create; nothing created', async () => {
    const archived = await s.client.permissions.createPermission({ body: { name: 'sa-archived', operations: ['Auth:Users:Read'] } });
    await s.client.permissions.archivePermission({ permissionId: archived.id, body: { isArchived: true } });
    const wide = await s.client.permissions.createPermission({
      body: { name: 'sa-admin-like', operations: ['Auth:Users:Create', 'Auth:Users:Read', 'Permissions:Assign', 'Permissions:Read'] },
    });
    const reachable = await s.client.permissions.createPermission({ body: { name: 'sa-reachable', operations: ['Permissions:Read'] } });
    // a user holding only Auth:ServiceAccounts:Create + Permissions:Read
    const limited = await newUser('sa-creator');
    const creators = await s.client.permissions.createPermission({
      body: { name: 'sa-creators', operations: ['Auth:ServiceAccounts:Create', 'Permissions:Read'] },
    });
    await s.client.permissions.createAssignment({ permissionId: creators.id, body: { identityId: limited.userId } });
    // a user with nothing at all
    const nobody = await newUser('sa-nobody');

    const watched = [adminPerm.id, readOnly.id, usersRW.id, archived.id, wide.id, reachable.id, creators.id];
    const sasBefore = await snapshotServiceAccounts();
    const usersBefore = await snapshotUsers(s.client);
    const asBefore = await snapshotAssignments(watched);
    const good = newKeyPair().publicKey;
    const create = (body, by = s.client) => () => by.auth.createServiceAccount({ body });

    // invalid public keys
    const truncated = good.replace(/^(-----BEGIN PUBLIC KEY-----\n.{20}).*?(\n-----END)/s, '$1$2');
    const garbled = good.replace(/(-----BEGIN PUBLIC KEY-----\n)./, '$1!');
    for (const [what, publicKey] of [
      ['not a PEM', 'not a pem'],
      ['empty', ''],
      ['truncated PEM', truncated],
      ['garbled PEM', garbled],
      ['a private key', newKeyPair().privateKey],
      ['P-384 (unsupported curve)', keyPairOf('P-384').publicKey],
      ['a certificate-looking armour', good.replace(/PUBLIC KEY/g, 'CERTIFICATE')],
    ]) {
      const st = await statusOf(create({ name: `bad key ${what}`, publicKey }));
      assert.equal(st, 400, `publicKey ${what}: expected 400, got ${st}`);
    }
    await refused(create({ name: 'num key', publicKey: 42 }), 400);
    await refused(create({ name: 'no key' }), 400);
    // bad names
    await refused(create({ name: '', publicKey: good }), 400);
    await refused(create({ name: '   ', publicKey: good }), 400);
    await refused(create({ publicKey: good }), 400);
    // permissions: unknown → 404, archived → 400
    await refused(create({ name: 'ghost perm', publicKey: good, permissionId: unknownLike(readOnly.id) }), 404);
    await refused(create({ name: 'nonsense perm', publicKey: good, permissionId: 'nonsense' }), 404);
    await refused(create({ name: 'archived perm', publicKey: good, permissionId: archived.id }), 400);
    // a permission beyond the creator's operations → 403
    await refused(create({ name: 'too wide', publicKey: good, permissionId: adminPerm.id }, limited.client), 403);
    await refused(create({ name: 'too wide 2', publicKey: good, permissionId: wide.id }, limited.client), 403);
    // no Auth:ServiceAccounts:Create → 403 (before any existence check)
    await refused(create({ name: 'nobody', publicKey: good }, nobody.client), 403, 'Auth:ServiceAccounts:Create');
    await refused(create({ name: 'nobody 2', publicKey: good, permissionId: readOnly.id }, nobody.client), 403);
    await refused(create({ name: 'nobody 3', publicKey: good, permissionId: unknownLike(readOnly.id) }, nobody.client), 403);
    // nor list / read them
    await refused(() => nobody.client.auth.listServiceAccounts(), 403);
    await refused(() => limited.client.auth.listServiceAccounts(), 403);

    assert.equal(await snapshotServiceAccounts(), sasBefore, 'a refused creation left a service account');
    assert.equal(await snapshotUsers(s.client), usersBefore, 'a refused creation left a user');
    assert.equal(await snapshotAssignments(watched), asBefore, 'a refused creation left an assignment');
    // the refused key is still usable: nothing was half-registered with it
    const ok = await s.client.auth.createServiceAccount({ body: { name: 'after refusals', publicKey: good } });
    assertServiceAccountShape(ok, { withToken: true });

    // positive controls for the limited creator: it can create one (so the 403s above were
    // about the permission), and one with a permission it holds all the operations of
    const mine = await limited.client.auth.createServiceAccount({ body: { name: 'limited-made', publicKey: newKeyPair().publicKey } });
    assertServiceAccountShape(mine, { withToken: true });
    const within = await limited.client.auth.createServiceAccount({
      body: { name: 'limited reachable', publicKey: newKeyPair().publicKey, permissionId: reachable.id },
    });
    assert.deepEqual(within.userInfo.permissionAssignments.map((x) => x.permissionId), [reachable.id]);
  });

  // -------------------------------------------------------------------------------------
  test('a service account is not a user of GET /auth/users and cannot log in; ids of other kinds → 404', async (t) => {
    const sa = await newSa({ name: 'no-login bot', permissionId: readOnly.id });
    const users = await listAllUsers(s.client);
    assert.ok(!users.some((u) => u.userId === sa.id || u.username === sa.username), 'a service account is listed as a user');
    const employees = await s.client.auth.listUsers({ query: { kind: 'CustomerEmployee', limit: 100 } });
    assert.ok(!employees.items.some((u) => u.userId === sa.id));
    // The /auth/users/{id} endpoints do not reach a service account (it is managed, and
    // permission-checked, under /auth/service-accounts only).
    await refused(() => s.client.auth.getUser({ userId: sa.id }), 404);
    await refused(() => s.client.auth.deactivateUser({ userId: sa.id }), 404);
    await refused(() => s.client.auth.archiveUser({ userId: sa.id }), 404);
    assert.equal((await s.client.auth.getServiceAccount({ serviceAccountId: sa.id })).userInfo.isActive, true);
    await sa.client.auth.listUsers({ query: { limit: 1 } });
    // Logging out its token would brick it: refused, and the token keeps working.
    const out = await fetch(`${base()}/auth/logout`, { method: 'PUT', headers: { authorization: `Bearer ${sa.token}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(out.status, 400, await out.text());
    await sa.client.auth.listUsers({ query: { limit: 1 } });

    // login with its username, its credId and its own key: no session
    const orgId = s.k.admin.orgId;
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId, username: sa.username } });
    t.diagnostic(
      `login/init for a service account: HTTP ${init.status}` +
        (init.status === 200 ? `, offers its credId: ${init.json?.allowCredentials?.key?.some((c) => c.id === sa.credId)}` : ''),
    );
    const st = await loginStatus(base(), { orgId, username: sa.username, credId: sa.credId, privateKey: sa.keys.privateKey });
    assert.ok([400, 401, 403, 404].includes(st), `login of a service account answered ${st}`);
    t.diagnostic(`login of a service account with its own key: HTTP ${st}`);
    await assert.rejects(
      () => sdkLogin(base(), { orgId, username: sa.username, credId: sa.credId, privateKey: sa.keys.privateKey }),
      (e) => e instanceof DfnsError,
    );
    // its user id as the username is no better (if they differ)
    if (sa.username !== sa.id) {
      const st2 = await loginStatus(base(), { orgId, username: sa.id, credId: sa.credId, privateKey: sa.keys.privateKey });
      assert.ok([400, 401, 403, 404].includes(st2), `login with the service account's id answered ${st2}`);
    }
    // and its token still works (a refused login changes nothing)
    await sa.client.auth.listUsers({ query: { limit: 1 } });

    // ids of other kinds, or unknown, through the service-account endpoints → 404
    const plain = await s.client.auth.createUser({ body: { email: uniqueEmail('plain'), kind: 'CustomerEmployee' } });
    for (const id of [s.k.admin.userId, plain.userId, unknownLike(sa.id), readOnly.id, 'nonsense']) {
      await refused(() => s.client.auth.getServiceAccount({ serviceAccountId: id }), 404);
    }
    const usersBefore = await snapshotUsers(s.client);
    for (const id of [s.k.admin.userId, plain.userId]) {
      await refused(() => s.client.auth.deactivateServiceAccount({ serviceAccountId: id }), 404);
      await refused(() => s.client.auth.activateServiceAccount({ serviceAccountId: id }), 404);
      await refused(() => s.client.auth.archiveServiceAccount({ serviceAccountId: id }), 404);
      await refused(() => s.client.auth.updateServiceAccount({ serviceAccountId: id, body: { name: 'hijack' } }), 404);
    }
    assert.equal(await snapshotUsers(s.client), usersBefore, 'a service-account endpoint changed a user');
    // the root is untouched
    await s.client.auth.listUsers({ query: { limit: 1 } });
    await s.client.auth.createUser({ body: { email: uniqueEmail('still-root'), kind: 'CustomerEmployee' } });
  });
});
