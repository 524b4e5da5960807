// Personal access tokens through the official Dfns SDK (@dfns/sdk 0.8.21 +
// @dfns/sdk-keysigner 0.8.3) against a real `keyfold dev`: creation (shape, the token shown
// once, its own key signing its user actions), operations = its user's ∩ its own assignments
// (counting on the very next request), a PAT key that neither logs in nor signs for the user,
// lifecycle (deactivate / activate / delete), the user's own lifecycle locking its PATs,
// ownership (another user's PAT is not found), externalId uniqueness, and refused creations
// that leave nothing behind.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

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
  startAndLogin,
  uniqueEmail,
  userAction,
  refused,
} from './lib/harness.mjs';

// ---------------------------------------------------------------------------------------
// helpers

const ID_RE = (prefix) => new RegExp(`^${prefix}-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{16}$`);
const US_RE = ID_RE('us');
const TO_RE = ID_RE('to');
const PM_RE = ID_RE('pm');
const AS_RE = ID_RE('as');

/** A syntactically valid id of the same kind that (almost surely) does not exist. */
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

const pemBody = (pem) => pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');

function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** Asserts the SDK's AccessToken shape of a PAT; `withToken`: only the create answer has it. */
function assertPatShape(t, { withToken = false } = {}) {
  assert.ok(t && typeof t === 'object', `PAT: ${JSON.stringify(t)}`);
  for (const f of ['dateCreated', 'credId', 'linkedUserId', 'linkedAppId', 'name', 'orgId', 'publicKey', 'tokenId', 'kind']) {
    assert.equal(typeof t[f], 'string', `PAT.${f} should be a string in ${JSON.stringify(t)}`);
  }
  assert.equal(typeof t.isActive, 'boolean', `PAT.isActive: ${JSON.stringify(t)}`);
  assert.equal(t.kind, 'Pat');
  assert.match(t.tokenId, TO_RE);
  assert.match(t.linkedUserId, US_RE);
  assert.ok(t.credId.length > 0, 'credId is empty');
  assert.ok(!Number.isNaN(Date.parse(t.dateCreated)), `dateCreated is not a date: ${t.dateCreated}`);
  assert.match(t.publicKey, /-----BEGIN PUBLIC KEY-----/);
  assert.ok(Array.isArray(t.permissionAssignments), 'permissionAssignments should be an array');
  for (const a of t.permissionAssignments) {
    assert.match(a.permissionId, PM_RE);
    assert.equal(typeof a.permissionName, 'string');
    assert.match(a.assignmentId, AS_RE);
    if (a.operations !== undefined) assert.ok(Array.isArray(a.operations) && a.operations.every((o) => typeof o === 'string'));
  }
  if (withToken) {
    assert.equal(typeof t.accessToken, 'string', 'the create response carries the access token');
    assert.equal(t.accessToken.split('.').length, 3, `the access token is a JWT: ${t.accessToken}`);
  } else {
    assert.equal('accessToken' in t, false, `accessToken must only be in the create response: ${JSON.stringify(t)}`);
  }
  const sensitive = deepKeys(t).filter((k) => /private|secret|password|encrypted/i.test(k));
  assert.deepEqual(sensitive, [], `private-looking fields: ${sensitive}`);
  assert.ok(!JSON.stringify(t).includes('PRIVATE KEY'), 'a private key in the answer');
}

function withoutToken(t) {
  const copy = structuredClone(t);
  delete copy.accessToken;
  return copy;
}

// ---------------------------------------------------------------------------------------

describe('personal access tokens via the Dfns SDK', () => {
  let s; // the root: { k, token, signer, client }
  let adminPerm; // the built-in administrator permission
  let userPerm; // what the test users hold: PAT creation, users read/create, permissions read
  let patPerm; // what their PATs usually get: users read/create
  let readUsers; // Auth:Users:Read
  let readPerms; // Permissions:Read
  const expiring = {}; // a PAT with secondsValid 60, made first, checked last

  const base = () => s.k.baseUrl;
  const orgId = () => s.k.admin.orgId;

  /** Creates, registers and logs in a user; `perms`: permissions the admin assigns to it. */
  async function newUser(tag, perms = []) {
    const email = uniqueEmail(tag);
    const created = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const assignments = [];
    for (const p of perms) {
      assignments.push(await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: created.userId } }));
    }
    const reg = await registerUser(s.k, email);
    const session = await sdkLogin(base(), { orgId: orgId(), username: email, credId: reg.credId, privateKey: reg.privateKey });
    return { userId: created.userId, email, reg, session, client: session.client, token: session.token, signer: session.signer, assignments };
  }

  /** An SDK client acting as the PAT `created` with its own `privateKey`. */
  function patClient(created, privateKey) {
    const signer = new AsymmetricKeySigner({ credId: created.credId, privateKey });
    return { signer, client: new DfnsApiClient({ baseUrl: base(), orgId: orgId(), authToken: created.accessToken, signer }) };
  }

  /** Creates a PAT through `by` (a user from newUser, or anything with .client). */
  async function newPat(by, { name, permissionId, externalId, daysValid, secondsValid } = {}) {
    const keys = newKeyPair();
    const body = { name: name ?? `pat-${crypto.randomBytes(4).toString('hex')}`, publicKey: keys.publicKey };
    if (permissionId !== undefined) body.permissionId = permissionId;
    if (externalId !== undefined) body.externalId = externalId;
    if (daysValid !== undefined) body.daysValid = daysValid;
    if (secondsValid !== undefined) body.secondsValid = secondsValid;
    const created = await by.client.auth.createPersonalAccessToken({ body });
    const { client, signer } = patClient(created, keys.privateKey);
    return { created, id: created.tokenId, token: created.accessToken, credId: created.credId, keys, client, signer };
  }

  /** GET /auth/users?limit=1 with the PAT's token: the status. */
  const readStatus = async (pat) => (await raw(base(), { path: '/auth/users?limit=1', token: pat.token })).status;

  /** Creates a user through `pat` (a user action signed with the PAT key): the status. */
  async function createStatus(pat) {
    const email = uniqueEmail('by-pat');
    const st = await statusOf(() => pat.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } }));
    const exists = (await listAllUsers(s.client)).some((x) => x.username === email);
    assert.equal(exists, st === 200, `createUser through a PAT answered ${st} but the user ${exists ? 'exists' : 'does not exist'}`);
    return st;
  }

  /** The ids of `user`'s live PATs, in the listed order. */
  const listIds = async (user) => (await user.client.auth.listPersonalAccessTokens()).items.map((x) => x.tokenId);

  before(async () => {
    s = await startAndLogin({ signers: false });
    const perms = (await s.client.permissions.listPermissions({ query: { limit: 100 } })).items;
    adminPerm = perms.find((p) => p.isImmutable);
    assert.ok(adminPerm, 'the built-in administrator permission');
    userPerm = await s.client.permissions.createPermission({
      body: { name: 'pat-users', operations: ['Auth:Pats:Create', 'Auth:Users:Read', 'Auth:Users:Create', 'Permissions:Read'] },
    });
    patPerm = await s.client.permissions.createPermission({ body: { name: 'pat-rw', operations: ['Auth:Users:Read', 'Auth:Users:Create'] } });
    readUsers = await s.client.permissions.createPermission({ body: { name: 'pat-read-users', operations: ['Auth:Users:Read'] } });
    readPerms = await s.client.permissions.createPermission({ body: { name: 'pat-read-perms', operations: ['Permissions:Read'] } });
    expiring.user = await newUser('pat-expiry', [userPerm]);
    expiring.at = Date.now();
    expiring.pat = await newPat(expiring.user, { secondsValid: 60, permissionId: patPerm.id });
    assert.equal(await readStatus(expiring.pat), 200);
  });
  after(async () => {
    await s?.k.stop();
  });

  // -------------------------------------------------------------------------------------
  test('create: the SDK AccessToken shape, the token once; get / list agree; it reads and signs with its own key', async (t) => {
    assert.ok(adminPerm.operations.includes('Auth:Pats:Create'), 'the built-in permission lacks Auth:Pats:Create');
    const u = await newUser('pat-owner', [userPerm]);
    const pat = await newPat(u, { name: 'ci token', permissionId: patPerm.id, externalId: `ext-${crypto.randomBytes(6).toString('hex')}` });
    const c = pat.created;
    assertPatShape(c, { withToken: true });
    assert.equal(c.name, 'ci token');
    assert.equal(c.linkedUserId, u.userId, 'a PAT is linked to its user');
    assert.equal(c.orgId, orgId());
    assert.equal(c.isActive, true);
    assert.equal(c.publicKey.trim(), pat.keys.publicKey.trim(), 'the public key is echoed');
    assert.notEqual(c.credId, u.reg.credId, "the PAT's credId is its own");
    assert.equal(c.permissionAssignments.length, 1, JSON.stringify(c.permissionAssignments));
    const pa = c.permissionAssignments[0];
    assert.equal(pa.permissionId, patPerm.id);
    assert.equal(pa.permissionName, patPerm.name);
    if (pa.operations) assert.deepEqual([...pa.operations].sort(), [...patPerm.operations].sort());
    // a real assignment to the token id, visible through the permissions API
    const as = (await s.client.permissions.listAssignments({ permissionId: patPerm.id, query: { limit: 100 } })).items;
    assert.deepEqual(as.filter((a) => a.identityId === pat.id).map((a) => a.id), [pa.assignmentId]);
    assert.ok(!JSON.stringify(c).includes(pemBody(pat.keys.privateKey)));

    const claims = jwtClaims(pat.token);
    assert.equal(claims['https://custom/app_metadata']?.orgId, orgId(), `claims: ${JSON.stringify(claims)}`);
    t.diagnostic(`PAT claims: ${JSON.stringify(claims)}`);

    // get and list (by the user) answer the same token, without the JWT
    const got = await u.client.auth.getPersonalAccessToken({ tokenId: pat.id });
    assertPatShape(got);
    assert.deepEqual(got, withoutToken(c), 'getPersonalAccessToken differs from the create response (minus accessToken)');
    const list = await u.client.auth.listPersonalAccessTokens();
    assert.ok(Array.isArray(list.items), `listPersonalAccessTokens: ${JSON.stringify(list)}`);
    for (const x of list.items) assertPatShape(x);
    assert.deepEqual(list.items, [got]);
    assert.ok(!JSON.stringify(list).includes(pat.token.split('.')[2]), 'the list leaks the token');

    // the PAT acts for its user: reads, and a signed write (its own key, via the SDK signer)
    const users = await pat.client.auth.listUsers({ query: { limit: 100 } });
    assert.ok(Array.isArray(users.items));
    const email = uniqueEmail('made-by-pat');
    const made = await pat.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    assert.equal(made.username, email);
    // it reads its user's PATs too
    assert.deepEqual((await pat.client.auth.listPersonalAccessTokens()).items.map((x) => x.tokenId), [pat.id]);
    assert.deepEqual(await pat.client.auth.getPersonalAccessToken({ tokenId: pat.id }), got);

    // the admin does not see the user's PATs as its own
    assert.ok(!(await s.client.auth.listPersonalAccessTokens()).items.some((x) => x.tokenId === pat.id));

    // a second and a third: listed oldest first
    const p2 = await newPat(u, { name: 'second', permissionId: readUsers.id });
    const p3 = await newPat(u, { name: 'third' });
    assert.deepEqual(await listIds(u), [pat.id, p2.id, p3.id], 'GET /auth/pats lists oldest first');
    assert.deepEqual((await u.client.auth.getPersonalAccessToken({ tokenId: p3.id })).permissionAssignments, []);
  });

  // -------------------------------------------------------------------------------------
  test('lifetime: daysValid / secondsValid set the JWT exp', async () => {
    const u = await newUser('pat-ttl', [userPerm]);
    const now = Date.now() / 1000;
    const d = await newPat(u, { daysValid: 2 });
    assert.ok(Math.abs(jwtClaims(d.token).exp - (now + 2 * 86_400)) < 120, `daysValid 2: exp ${jwtClaims(d.token).exp}`);
    const sv = await newPat(u, { secondsValid: 3600 });
    assert.ok(Math.abs(jwtClaims(sv.token).exp - (now + 3600)) < 120, `secondsValid 3600: exp ${jwtClaims(sv.token).exp}`);
    const max = await newPat(u, { daysValid: 3650 });
    assert.ok(Math.abs(jwtClaims(max.token).exp - (now + 3650 * 86_400)) < 120);
    const min = await newPat(u, { secondsValid: 60 });
    assert.ok(Math.abs(jwtClaims(min.token).exp - (now + 60)) < 120);
  });

  // -------------------------------------------------------------------------------------
  test('without a permission it holds no operations; an assignment to it counts on the next request, a revocation too', async () => {
    const u = await newUser('pat-grantee', [userPerm]);
    const pat = await newPat(u);
    assert.deepEqual(pat.created.permissionAssignments, []);
    assert.equal(await readStatus(pat), 403, 'a PAT without permissions reads users');
    await refused(() => pat.client.auth.listUsers(), 403, 'Auth:Users:Read');
    await refused(() => pat.client.permissions.listPermissions(), 403);
    assert.equal(await createStatus(pat), 403);
    await refused(
      () => pat.client.auth.createPersonalAccessToken({ body: { name: 'child', publicKey: newKeyPair().publicKey } }),
      403,
      'Auth:Pats:Create',
    );
    // its user can do all of that
    await u.client.auth.listUsers({ query: { limit: 1 } });
    await u.client.permissions.listPermissions({ query: { limit: 1 } });

    const a = await s.client.permissions.createAssignment({ permissionId: readUsers.id, body: { identityId: pat.id } });
    assert.equal(a.identityId, pat.id);
    assert.equal(await readStatus(pat), 200, 'reading right after the assignment');
    assert.equal(await createStatus(pat), 403);
    const got = await u.client.auth.getPersonalAccessToken({ tokenId: pat.id });
    assert.deepEqual(got.permissionAssignments.map((x) => [x.permissionId, x.assignmentId]), [[readUsers.id, a.id]]);

    const b = await s.client.permissions.createAssignment({ permissionId: patPerm.id, body: { identityId: pat.id } });
    assert.equal(await createStatus(pat), 200, 'creating right after the assignment');
    // Permissions:Read: the user has it, the PAT does not
    await refused(() => pat.client.permissions.listPermissions(), 403);

    await s.client.permissions.deleteAssignment({ permissionId: patPerm.id, assignmentId: b.id });
    assert.equal(await createStatus(pat), 403, 'creating right after the revocation');
    assert.equal(await readStatus(pat), 200);
    await s.client.permissions.deleteAssignment({ permissionId: readUsers.id, assignmentId: a.id });
    assert.equal(await readStatus(pat), 403, 'reading right after the revocation');
    assert.deepEqual((await u.client.auth.getPersonalAccessToken({ tokenId: pat.id })).permissionAssignments, []);
  });

  // -------------------------------------------------------------------------------------
  test("its operations are its user's ∩ its own: the user losing one (revoked, archived) takes it from the PAT at once", async () => {
    const u = await newUser('pat-intersect', [userPerm]);
    const userAssignment = u.assignments[0];
    const pat = await newPat(u, { permissionId: patPerm.id });
    assert.equal(await readStatus(pat), 200);
    assert.equal(await createStatus(pat), 200);

    // the user's assignment revoked → the PAT loses everything, at once
    await s.client.permissions.deleteAssignment({ permissionId: userPerm.id, assignmentId: userAssignment.id });
    assert.equal(await readStatus(pat), 403, 'the PAT reads after its user lost Auth:Users:Read');
    assert.equal(await createStatus(pat), 403, 'the PAT creates after its user lost Auth:Users:Create');
    // re-granted → back
    const again = await s.client.permissions.createAssignment({ permissionId: userPerm.id, body: { identityId: u.userId } });
    assert.equal(await readStatus(pat), 200, 'the PAT reads once its user holds the operation again');
    assert.equal(await createStatus(pat), 200);

    // the user's permission archived → gone; restored → back
    const mine = await s.client.permissions.createPermission({ body: { name: 'pat-intersect-user', operations: ['Auth:Users:Read', 'Auth:Users:Create', 'Auth:Pats:Create'] } });
    const u2 = await newUser('pat-intersect2', [mine]);
    const pat2 = await newPat(u2, { permissionId: patPerm.id });
    assert.equal(await createStatus(pat2), 200);
    await s.client.permissions.archivePermission({ permissionId: mine.id, body: { isArchived: true } });
    assert.equal(await readStatus(pat2), 403, "the PAT reads after its user's permission was archived");
    assert.equal(await createStatus(pat2), 403);

    // while the user lacks the operations, the admin cannot give them to the PAT either
    await refused(() => s.client.permissions.createAssignment({ permissionId: readUsers.id, body: { identityId: pat2.id } }), 403);
    assert.equal(await readStatus(pat2), 403);

    await s.client.permissions.archivePermission({ permissionId: mine.id, body: { isArchived: false } });
    assert.equal(await readStatus(pat2), 200, "the PAT reads once its user's permission is restored");
    assert.equal(await createStatus(pat2), 200);

    // the PAT's own permission archived → gone; restored → back (the user is unaffected)
    const own = await s.client.permissions.createPermission({ body: { name: 'pat-own', operations: ['Auth:Users:Read'] } });
    const pat3 = await newPat(u, { permissionId: own.id });
    assert.equal(await readStatus(pat3), 200);
    await s.client.permissions.archivePermission({ permissionId: own.id, body: { isArchived: true } });
    assert.equal(await readStatus(pat3), 403, "the PAT reads after its own permission was archived");
    await u.client.auth.listUsers({ query: { limit: 1 } });
    await s.client.permissions.archivePermission({ permissionId: own.id, body: { isArchived: false } });
    assert.equal(await readStatus(pat3), 200);

    // the user revoked again: the second grant was the only one
    await s.client.permissions.deleteAssignment({ permissionId: userPerm.id, assignmentId: again.id });
    assert.equal(await readStatus(pat), 403);
    assert.equal(await readStatus(pat3), 403);
  });

  // -------------------------------------------------------------------------------------
  test('never more than the user: asking for, or being assigned, operations the user lacks → 403, nothing created', async () => {
    const u = await newUser('pat-reach', [userPerm]);
    const pat = await newPat(u, { permissionId: readUsers.id });
    const before = await listIds(u);
    const asBefore = JSON.stringify((await s.client.permissions.listAssignments({ permissionId: adminPerm.id, query: { limit: 100 } })).items);
    const wide = await s.client.permissions.createPermission({ body: { name: 'pat-wide', operations: ['Auth:Users:Read', 'Wallets:Read'] } });
    const good = newKeyPair().publicKey;
    // at creation
    await refused(() => u.client.auth.createPersonalAccessToken({ body: { name: 'too wide', publicKey: good, permissionId: adminPerm.id } }), 403);
    await refused(() => u.client.auth.createPersonalAccessToken({ body: { name: 'too wide 2', publicKey: good, permissionId: wide.id } }), 403);
    assert.deepEqual(await listIds(u), before, 'a refused creation left a PAT');
    // by the admin, afterwards
    await refused(() => s.client.permissions.createAssignment({ permissionId: adminPerm.id, body: { identityId: pat.id } }), 403);
    await refused(() => s.client.permissions.createAssignment({ permissionId: wide.id, body: { identityId: pat.id } }), 403);
    assert.equal(
      JSON.stringify((await s.client.permissions.listAssignments({ permissionId: adminPerm.id, query: { limit: 100 } })).items),
      asBefore,
    );
    assert.deepEqual((await s.client.permissions.listAssignments({ permissionId: wide.id, query: { limit: 100 } })).items, []);
    assert.deepEqual(
      (await u.client.auth.getPersonalAccessToken({ tokenId: pat.id })).permissionAssignments.map((x) => x.permissionId),
      [readUsers.id],
    );
    // an archived permission → 400; an unknown / revoked token id → 404
    const arch = await s.client.permissions.createPermission({ body: { name: 'pat-arch-assign', operations: ['Auth:Users:Read'] } });
    await s.client.permissions.archivePermission({ permissionId: arch.id, body: { isArchived: true } });
    await refused(() => s.client.permissions.createAssignment({ permissionId: arch.id, body: { identityId: pat.id } }), 400);
    await refused(() => s.client.permissions.createAssignment({ permissionId: readPerms.id, body: { identityId: unknownLike(pat.id) } }), 404);

    // a PAT creating a PAT: only with Auth:Pats:Create itself, never beyond its own operations
    const maker = await s.client.permissions.createPermission({ body: { name: 'pat-maker', operations: ['Auth:Pats:Create', 'Auth:Users:Read'] } });
    const p = await newPat(u, { permissionId: maker.id });
    await refused(
      () => p.client.auth.createPersonalAccessToken({ body: { name: 'beyond the PAT', publicKey: good, permissionId: patPerm.id } }),
      403,
    );
    await refused(
      () => p.client.auth.createPersonalAccessToken({ body: { name: 'beyond the PAT 2', publicKey: good, permissionId: readPerms.id } }),
      403,
    );
    // even within its reach: a PAT never mints PATs (a child would outlive a leaked parent)
    const n = (await listIds(u)).length;
    await refused(() => newPat(p, { name: 'made by a PAT', permissionId: readUsers.id }), 403, 'personal access token');
    assert.equal((await listIds(u)).length, n);
  });

  // -------------------------------------------------------------------------------------
  test("its key signs only its own actions: it cannot log in, nor sign the user's actions; the user's key cannot sign for it", async () => {
    const u = await newUser('pat-keys', [userPerm]);
    const pat = await newPat(u, { permissionId: patPerm.id });
    const patCred = { credId: pat.credId, privateKey: pat.keys.privateKey };
    const userCred = { credId: u.reg.credId, privateKey: u.reg.privateKey };

    // login with the PAT key as the user → 401; the user's login challenge does not offer it
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: u.email } });
    assert.equal(init.status, 200, init.text);
    assert.ok(!JSON.stringify(init.json.allowCredentials).includes(pat.credId), 'login/init offers the PAT key');
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, ...patCred }), 401);
    await assert.rejects(() => sdkLogin(base(), { orgId: orgId(), username: u.email, ...patCred }), (e) => e instanceof DfnsError);
    // nor does the user's credential list show it
    const creds = await u.client.auth.listCredentials();
    assert.ok(!creds.items.some((c) => c.credentialId === pat.credId), 'GET /auth/credentials lists the PAT key');

    const body = { email: uniqueEmail('pat-keys'), kind: 'CustomerEmployee' };
    // a PAT caller's action challenge names its key only
    const ch = await actionChallenge(base(), pat.token, { method: 'POST', path: '/auth/users', body });
    assert.deepEqual(ch.allowCredentials.key.map((c) => c.id), [pat.credId], `PAT action challenge: ${JSON.stringify(ch.allowCredentials)}`);
    assert.deepEqual(ch.allowCredentials.webauthn ?? [], []);
    assert.ok(!(ch.allowCredentials.passwordProtectedKey ?? []).length);
    // the user's credential answering a PAT's challenge → 401
    await refused(
      () =>
        BaseAuthApi.signUserActionChallenge(
          { challengeIdentifier: ch.challengeIdentifier, firstFactor: keyAssertion(ch, userCred) },
          { baseUrl: base(), authToken: pat.token },
        ),
      401,
    );
    // the PAT credId with another key → 401
    const ch1 = await actionChallenge(base(), pat.token, { method: 'POST', path: '/auth/users', body });
    await refused(
      () =>
        BaseAuthApi.signUserActionChallenge(
          { challengeIdentifier: ch1.challengeIdentifier, firstFactor: keyAssertion(ch1, { credId: pat.credId, privateKey: newKeyPair().privateKey }) },
          { baseUrl: base(), authToken: pat.token },
        ),
      401,
    );
    // the user's session: its challenge does not offer the PAT key, and the PAT key → 401
    const ch2 = await actionChallenge(base(), u.token, { method: 'POST', path: '/auth/users', body });
    assert.ok(ch2.allowCredentials.key.some((c) => c.id === u.reg.credId));
    assert.ok(!ch2.allowCredentials.key.some((c) => c.id === pat.credId), "the user's action challenge offers the PAT key");
    await refused(
      () =>
        BaseAuthApi.signUserActionChallenge(
          { challengeIdentifier: ch2.challengeIdentifier, firstFactor: keyAssertion(ch2, patCred) },
          { baseUrl: base(), authToken: u.token },
        ),
      401,
    );
    assert.ok(!(await listAllUsers(s.client)).some((x) => x.username === body.email), 'a refused action created a user');

    // the PAT still signs with its own key
    const ua = await userAction(base(), pat.token, pat.signer, { method: 'POST', path: '/auth/users', body });
    const r = await raw(base(), { method: 'POST', path: '/auth/users', token: pat.token, userAction: ua, body: payloadOf(body) });
    assert.equal(r.status, 200, r.text);
  });

  // -------------------------------------------------------------------------------------
  test("a user action signed through the PAT is not accepted on the user's session, nor the reverse", async () => {
    const u = await newUser('pat-ua-bind', [userPerm]);
    // a PAT that may not create users: its signature must not let the session create one
    const pat = await newPat(u, { permissionId: readUsers.id });
    const body = { email: uniqueEmail('pat-ua-bind'), kind: 'CustomerEmployee' };
    const uaByPat = await userAction(base(), pat.token, pat.signer, { method: 'POST', path: '/auth/users', body });
    const r1 = await raw(base(), { method: 'POST', path: '/auth/users', token: u.token, userAction: uaByPat, body: payloadOf(body) });
    // and one signed by the user (its own key), used with the PAT token
    const body2 = { email: uniqueEmail('pat-ua-bind2'), kind: 'CustomerEmployee' };
    const full = await newPat(u, { permissionId: patPerm.id });
    const uaByUser = await userAction(base(), u.token, u.signer, { method: 'POST', path: '/auth/users', body: body2 });
    const r2 = await raw(base(), { method: 'POST', path: '/auth/users', token: full.token, userAction: uaByUser, body: payloadOf(body2) });
    const users = await listAllUsers(s.client);
    const made1 = users.some((x) => x.username === body.email);
    const made2 = users.some((x) => x.username === body2.email);
    // both directions are checked before either is asserted, so a failure reports both
    const problems = [];
    if (r1.status !== 401 || made1) {
      problems.push(`user action signed with the PAT key (a PAT without Auth:Users:Create), sent with the user's session token: HTTP ${r1.status}, user created: ${made1}`);
    }
    if (r2.status !== 401 || made2) {
      problems.push(`user action signed with the user's key, sent with the PAT token: HTTP ${r2.status}, user created: ${made2}`);
    }
    assert.deepEqual(problems, [], 'a user action must be bound to the token it was signed through');
    rawRefused(r1, 401, 'PAT-signed action on the session');
    rawRefused(r2, 401, 'session-signed action on the PAT');
  });

  // -------------------------------------------------------------------------------------
  test("only the caller's user's PATs: another user's id, a malformed or unknown id → 404; nothing changes", async () => {
    const a = await newUser('pat-a', [userPerm]);
    const b = await newUser('pat-b', [userPerm]);
    const pa = await newPat(a, { name: 'a-token', permissionId: readUsers.id });
    const pb = await newPat(b, { name: 'b-token', permissionId: readUsers.id });
    assert.deepEqual(await listIds(a), [pa.id]);
    assert.deepEqual(await listIds(b), [pb.id]);
    const bBefore = await b.client.auth.getPersonalAccessToken({ tokenId: pb.id });

    for (const [who, c] of [
      ['user A', a.client],
      ["A's PAT", (await newPat(a, { permissionId: patPerm.id })).client],
      ['the admin', s.client],
    ]) {
      for (const id of [pb.id, unknownLike(pb.id), 'nonsense', 'to-xyz', b.userId, readUsers.id]) {
        const m = `${who}, id ${id}`;
        assert.equal(await statusOf(() => c.auth.getPersonalAccessToken({ tokenId: id })), 404, `get: ${m}`);
        assert.equal(await statusOf(() => c.auth.updatePersonalAccessToken({ tokenId: id, body: { name: 'hijack' } })), 404, `update: ${m}`);
        assert.equal(await statusOf(() => c.auth.deactivatePersonalAccessToken({ tokenId: id })), 404, `deactivate: ${m}`);
        assert.equal(await statusOf(() => c.auth.activatePersonalAccessToken({ tokenId: id })), 404, `activate: ${m}`);
        assert.equal(await statusOf(() => c.auth.archivePersonalAccessToken({ tokenId: id })), 404, `delete: ${m}`);
      }
      await refused(() => c.auth.getPersonalAccessToken({ tokenId: pb.id }), 404);
    }
    // B's PAT is untouched and still works
    assert.deepEqual(await b.client.auth.getPersonalAccessToken({ tokenId: pb.id }), bBefore);
    assert.equal(await readStatus(pb), 200);
    assert.ok(!(await a.client.auth.listPersonalAccessTokens()).items.some((x) => x.tokenId === pb.id));
  });

  // -------------------------------------------------------------------------------------
  test('update: rename, externalId (409 if taken); bad bodies 400; the token keeps working', async () => {
    const u = await newUser('pat-update', [userPerm]);
    const other = await newUser('pat-update-other', [userPerm]);
    const pat = await newPat(u, { name: 'before', permissionId: readUsers.id });
    const up = await u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: 'after' } });
    assertPatShape(up);
    assert.equal(up.name, 'after');
    assert.equal(up.tokenId, pat.id);
    assert.equal(up.credId, pat.credId);
    assert.equal(up.dateCreated, pat.created.dateCreated);
    assert.deepEqual(up.permissionAssignments, pat.created.permissionAssignments);
    assert.deepEqual(await u.client.auth.getPersonalAccessToken({ tokenId: pat.id }), up);
    assert.equal(await readStatus(pat), 200);

    const ext = `ext-${crypto.randomBytes(6).toString('hex')}`;
    const up2 = await u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { externalId: ext } });
    assert.equal(up2.name, 'after', 'updating externalId alone keeps the name');
    // the externalId is now taken in the org: by a PAT of the same user, or of another user
    const beforeU = await listIds(u);
    const beforeO = await listIds(other);
    await refused(() => u.client.auth.createPersonalAccessToken({ body: { name: 'dup', publicKey: newKeyPair().publicKey, externalId: ext } }), 409);
    await refused(() => other.client.auth.createPersonalAccessToken({ body: { name: 'dup', publicKey: newKeyPair().publicKey, externalId: ext } }), 409);
    assert.deepEqual(await listIds(u), beforeU);
    assert.deepEqual(await listIds(other), beforeO);
    const second = await newPat(u, { name: 'second' });
    await refused(() => u.client.auth.updatePersonalAccessToken({ tokenId: second.id, body: { externalId: ext } }), 409);
    const ext2 = `ext2-${crypto.randomBytes(6).toString('hex')}`;
    await u.client.auth.updatePersonalAccessToken({ tokenId: second.id, body: { externalId: ext2 } });
    // setting its own externalId again is not a conflict with itself
    const same = await u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { externalId: ext } });
    assert.equal(same.tokenId, pat.id);

    // bad bodies
    const snap = JSON.stringify((await u.client.auth.listPersonalAccessTokens()).items);
    await refused(() => u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: '' } }), 400);
    await refused(() => u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: '   ' } }), 400);
    await refused(() => u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: 'x'.repeat(1000) } }), 400);
    await refused(() => u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: 'ok', isActive: false } }), 400);
    await refused(() => u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { permissionId: adminPerm.id } }), 400);
    assert.equal(JSON.stringify((await u.client.auth.listPersonalAccessTokens()).items), snap, 'a refused update changed a PAT');
    assert.equal(await readStatus(pat), 200);

    // a PAT cannot rename itself or a sibling: PATs are managed from the user's own session
    await refused(() => pat.client.auth.updatePersonalAccessToken({ tokenId: second.id, body: { name: 'renamed by a PAT' } }), 403);
    await refused(() => pat.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: 'renamed by itself' } }), 403);
    assert.equal((await u.client.auth.getPersonalAccessToken({ tokenId: second.id })).name, 'second');
    assert.equal((await u.client.auth.getPersonalAccessToken({ tokenId: pat.id })).name, 'after');
  });

  // -------------------------------------------------------------------------------------
  test('deactivate → 401 on its next request, activate → the same token works again; delete → 401 for good, 404 after', async () => {
    const u = await newUser('pat-life', [userPerm]);
    const pat = await newPat(u, { permissionId: patPerm.id });
    const bystander = await newPat(u, { permissionId: readUsers.id });
    assert.equal(await readStatus(pat), 200);

    const pendingBody = { email: uniqueEmail('pat-pending'), kind: 'CustomerEmployee' };
    const ua = await userAction(base(), pat.token, pat.signer, { method: 'POST', path: '/auth/users', body: pendingBody });

    const d = await u.client.auth.deactivatePersonalAccessToken({ tokenId: pat.id });
    assertPatShape(d);
    assert.equal(d.tokenId, pat.id);
    assert.equal(d.isActive, false);
    assert.equal((await u.client.auth.getPersonalAccessToken({ tokenId: pat.id })).isActive, false);
    assert.equal((await u.client.auth.listPersonalAccessTokens()).items.find((x) => x.tokenId === pat.id)?.isActive, false, 'a deactivated PAT is still listed, inactive');

    const locked = async (what) => {
      assert.equal(await readStatus(pat), 401, `${what}: GET /auth/users`);
      const r = await raw(base(), { path: '/auth/pats', token: pat.token });
      rawRefused(r, 401, `${what}: GET /auth/pats`);
      await refused(() => pat.client.auth.listUsers(), 401);
      await refused(() => pat.client.auth.createUser({ body: { email: uniqueEmail('locked'), kind: 'CustomerEmployee' } }), 401);
      const init = await raw(base(), {
        method: 'POST',
        path: '/auth/action/init',
        token: pat.token,
        body: { userActionPayload: '{}', userActionHttpMethod: 'POST', userActionHttpPath: '/auth/users', userActionServerKind: 'Api' },
      });
      rawRefused(init, 401, `${what}: /auth/action/init`);
    };
    await locked('deactivated');
    const late = await raw(base(), { method: 'POST', path: '/auth/users', token: pat.token, userAction: ua, body: payloadOf(pendingBody) });
    rawRefused(late, 401, 'a user action signed before the deactivation');
    assert.ok(!(await listAllUsers(s.client)).some((x) => x.username === pendingBody.email));
    assert.equal(await readStatus(bystander), 200, 'another PAT of the user is unaffected');
    await u.client.auth.listUsers({ query: { limit: 1 } });
    // deactivating twice is harmless
    await u.client.auth.deactivatePersonalAccessToken({ tokenId: pat.id });

    const a = await u.client.auth.activatePersonalAccessToken({ tokenId: pat.id });
    assertPatShape(a);
    assert.equal(a.isActive, true);
    assert.equal(a.tokenId, pat.id);
    assert.equal(await readStatus(pat), 200, 'the same token works again');
    assert.equal(await createStatus(pat), 200);

    // delete while active: a user action signed just before dies with it
    const ua2 = await userAction(base(), pat.token, pat.signer, { method: 'POST', path: '/auth/users', body: pendingBody });
    const del = await u.client.auth.archivePersonalAccessToken({ tokenId: pat.id });
    assertPatShape(del);
    assert.equal(del.tokenId, pat.id);
    assert.equal(del.isActive, false);
    await locked('deleted');
    const late2 = await raw(base(), { method: 'POST', path: '/auth/users', token: pat.token, userAction: ua2, body: payloadOf(pendingBody) });
    rawRefused(late2, 401, 'a user action of a deleted PAT');
    assert.ok(!(await listIds(u)).includes(pat.id), 'a deleted PAT is still listed');
    await refused(() => u.client.auth.getPersonalAccessToken({ tokenId: pat.id }), 404);
    await refused(() => u.client.auth.activatePersonalAccessToken({ tokenId: pat.id }), 404);
    await refused(() => u.client.auth.deactivatePersonalAccessToken({ tokenId: pat.id }), 404);
    await refused(() => u.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: 'zombie' } }), 404);
    await refused(() => u.client.auth.archivePersonalAccessToken({ tokenId: pat.id }), 404);
    await locked('deleted, after the refused activation');
    // its assignment cannot be renewed either
    await refused(() => s.client.permissions.createAssignment({ permissionId: readPerms.id, body: { identityId: pat.id } }), 404);
    assert.equal(await readStatus(bystander), 200);
    // its key is gone with it: it cannot sign for the user
    assert.equal(await loginStatus(base(), { orgId: orgId(), username: u.email, credId: pat.credId, privateKey: pat.keys.privateKey }), 401);

    // a narrow PAT cannot (re)activate, deactivate or revoke its siblings …
    const selfish = await newPat(u, { permissionId: readUsers.id });
    await u.client.auth.deactivatePersonalAccessToken({ tokenId: bystander.id });
    await refused(() => selfish.client.auth.activatePersonalAccessToken({ tokenId: bystander.id }), 403);
    assert.equal(await readStatus(bystander), 401, 'the user-deactivated sibling stays off');
    await refused(() => selfish.client.auth.archivePersonalAccessToken({ tokenId: bystander.id }), 403);
    await refused(() => selfish.client.auth.deactivatePersonalAccessToken({ tokenId: selfish.id }), 403);
    await u.client.auth.activatePersonalAccessToken({ tokenId: bystander.id });
    assert.equal(await readStatus(bystander), 200);
    // … but may revoke itself: its very next request is refused, for good
    const gone = await selfish.client.auth.archivePersonalAccessToken({ tokenId: selfish.id });
    assert.equal(gone.isActive, false);
    assert.equal(await readStatus(selfish), 401);
    await refused(() => u.client.auth.activatePersonalAccessToken({ tokenId: selfish.id }), 404);
  });

  // -------------------------------------------------------------------------------------
  test('the user deactivated → all its PATs 401 at once, reactivated → they work again; the user deleted → 401 for good', async () => {
    const u = await newUser('pat-user-life', [userPerm]);
    const p1 = await newPat(u, { permissionId: patPerm.id });
    const p2 = await newPat(u, { permissionId: readUsers.id });
    const other = await newUser('pat-user-life-other', [userPerm]);
    const po = await newPat(other, { permissionId: readUsers.id });
    assert.equal(await readStatus(p1), 200);
    assert.equal(await readStatus(p2), 200);
    const ua = await userAction(base(), p1.token, p1.signer, { method: 'POST', path: '/auth/users', body: { email: uniqueEmail('x'), kind: 'CustomerEmployee' } });

    await s.client.auth.deactivateUser({ userId: u.userId });
    assert.equal(await readStatus(p1), 401, 'PAT 1 of a deactivated user');
    assert.equal(await readStatus(p1), 401, 'PAT 1 of a deactivated user, again');
    assert.equal(await readStatus(p2), 401, 'PAT 2 of a deactivated user');
    await refused(() => p1.client.auth.listUsers(), 401);
    rawRefused(await raw(base(), { path: '/auth/pats', token: p2.token }), 401, 'GET /auth/pats by a PAT of a deactivated user');
    rawRefused(
      await raw(base(), { method: 'POST', path: '/auth/users', token: p1.token, userAction: ua, body: payloadOf({ email: 'y@example.com', kind: 'CustomerEmployee' }) }),
      401,
      'a user action of a deactivated user',
    );
    assert.equal(await readStatus(po), 200, "another user's PAT is unaffected");

    await s.client.auth.activateUser({ userId: u.userId });
    assert.equal(await readStatus(p1), 200, 'PAT 1 after the user is reactivated');
    assert.equal(await readStatus(p2), 200, 'PAT 2 after the user is reactivated');
    assert.equal(await createStatus(p1), 200);
    const relogged = await sdkLogin(base(), { orgId: orgId(), username: u.email, credId: u.reg.credId, privateKey: u.reg.privateKey });
    const listed = (await relogged.client.auth.listPersonalAccessTokens()).items;
    assert.deepEqual(listed.map((x) => [x.tokenId, x.isActive]), [[p1.id, true], [p2.id, true]]);

    await s.client.auth.archiveUser({ userId: u.userId });
    assert.equal(await readStatus(p1), 401, 'PAT 1 of a deleted user');
    assert.equal(await readStatus(p2), 401, 'PAT 2 of a deleted user');
    assert.equal(await statusOf(() => s.client.auth.activateUser({ userId: u.userId })), 404, 'activating a deleted user');
    assert.equal(await readStatus(p1), 401, 'PAT 1 of a deleted user, after a refused activation');
    assert.equal(await readStatus(p2), 401);
    await refused(() => s.client.permissions.createAssignment({ permissionId: readPerms.id, body: { identityId: p2.id } }), 404);
    assert.equal(await readStatus(po), 200);
  });

  // -------------------------------------------------------------------------------------
  test('refused creations: bad name / key / lifetime / permission / fields, no Auth:Pats:Create, a service account; nothing created', async () => {
    const u = await newUser('pat-bad', [userPerm]);
    const nobody = await newUser('pat-nobody');
    const archived = await s.client.permissions.createPermission({ body: { name: 'pat-archived', operations: ['Auth:Users:Read'] } });
    await s.client.permissions.archivePermission({ permissionId: archived.id, body: { isArchived: true } });
    const takenExt = `ext-${crypto.randomBytes(6).toString('hex')}`;
    await newPat(u, { name: 'existing', externalId: takenExt });
    const before = await listIds(u);
    const good = newKeyPair().publicKey;
    const create = (body, by = u.client) => () => by.auth.createPersonalAccessToken({ body });

    await refused(create({ publicKey: good }), 400);
    await refused(create({ name: '', publicKey: good }), 400);
    await refused(create({ name: '   ', publicKey: good }), 400);
    await refused(create({ name: 'x'.repeat(1000), publicKey: good }), 400);
    await refused(create({ name: 'no key' }), 400);
    await refused(create({ name: 'bad key', publicKey: 'not a pem' }), 400);
    await refused(create({ name: 'empty key', publicKey: '' }), 400);
    await refused(create({ name: 'private key', publicKey: newKeyPair().privateKey }), 400);
    await refused(create({ name: 'garbled key', publicKey: good.replace(/(-----BEGIN PUBLIC KEY-----\n)./, '$1!') }), 400);
    await refused(create({ name: 'num key', publicKey: 42 }), 400);
    await refused(create({ name: 'days 0', publicKey: good, daysValid: 0 }), 400);
    await refused(create({ name: 'days 3651', publicKey: good, daysValid: 3651 }), 400);
    await refused(create({ name: 'days -1', publicKey: good, daysValid: -1 }), 400);
    await refused(create({ name: 'days str', publicKey: good, daysValid: 'ten' }), 400);
    await refused(create({ name: 'secs 59', publicKey: good, secondsValid: 59 }), 400);
    await refused(create({ name: 'secs 0', publicKey: good, secondsValid: 0 }), 400);
    await refused(create({ name: 'ghost perm', publicKey: good, permissionId: unknownLike(readUsers.id) }), 404);
    await refused(create({ name: 'nonsense perm', publicKey: good, permissionId: 'nonsense' }), 404);
    await refused(create({ name: 'archived perm', publicKey: good, permissionId: archived.id }), 400);
    await refused(create({ name: 'unknown field', publicKey: good, isActive: true }), 400);
    await refused(create({ name: 'unknown field 2', publicKey: good, linkedUserId: s.k.admin.userId }), 400);
    await refused(create({ name: 'dup ext', publicKey: good, externalId: takenExt }), 409);
    await refused(create({ name: 'empty ext', publicKey: good, externalId: '' }), 400);
    // no Auth:Pats:Create → 403, before any other check
    await refused(create({ name: 'nobody', publicKey: good }, nobody.client), 403, 'Auth:Pats:Create');
    await refused(create({ name: 'nobody 2', publicKey: 'not a pem' }, nobody.client), 403);
    assert.deepEqual(await listIds(u), before, 'a refused creation left a PAT');
    assert.deepEqual(await listIds(nobody), []);
    // non-JSON bodies
    const ua = await userAction(base(), u.token, u.signer, { method: 'POST', path: '/auth/pats', body: 'not json' });
    rawRefused(await raw(base(), { method: 'POST', path: '/auth/pats', token: u.token, userAction: ua, body: 'not json' }), 400, 'a non-JSON body');
    // without a user action → 401
    rawRefused(
      await raw(base(), { method: 'POST', path: '/auth/pats', token: u.token, body: { name: 'unsigned', publicKey: good } }),
      401,
      'POST /auth/pats without a user action',
    );
    assert.deepEqual(await listIds(u), before);
    // the refused key is still usable
    const ok = await u.client.auth.createPersonalAccessToken({ body: { name: 'after refusals', publicKey: good } });
    assertPatShape(ok, { withToken: true });

    // a service account, even one holding Auth:Pats:Create → 403
    const saKeys = newKeyPair();
    const sa = await s.client.auth.createServiceAccount({ body: { name: 'pat-sa', publicKey: saKeys.publicKey, permissionId: userPerm.id } });
    const saTok = sa.accessTokens[0];
    const saClient = new DfnsApiClient({
      baseUrl: base(),
      orgId: orgId(),
      authToken: saTok.accessToken,
      signer: new AsymmetricKeySigner({ credId: saTok.credId, privateKey: saKeys.privateKey }),
    });
    await saClient.auth.listUsers({ query: { limit: 1 } }); // positive control: its token works
    await refused(create({ name: 'by a service account', publicKey: newKeyPair().publicKey }, saClient), 403);
    assert.deepEqual((await saClient.auth.listPersonalAccessTokens()).items, [], 'a service account has PATs');

  });

  // -------------------------------------------------------------------------------------
  test('a PAT cannot log out (400) and its token keeps working; unauthenticated calls → 401', async () => {
    const u = await newUser('pat-logout', [userPerm]);
    const pat = await newPat(u, { permissionId: readUsers.id });
    const out = await raw(base(), { method: 'PUT', path: '/auth/logout', token: pat.token, body: {} });
    rawRefused(out, 400, 'PUT /auth/logout with a PAT');
    assert.equal(await readStatus(pat), 200, 'the PAT works after the refused logout');
    rawRefused(await raw(base(), { path: '/auth/pats' }), 401, 'GET /auth/pats without a token');
    rawRefused(await raw(base(), { path: `/auth/pats/${pat.id}` }), 401, 'GET /auth/pats/:id without a token');
    // a forged token (its signature changed) → 401
    const parts = pat.token.split('.');
    const forged = `${parts[0]}.${parts[1]}.${parts[2].slice(0, -4)}AAAA`;
    rawRefused(await raw(base(), { path: '/auth/users?limit=1', token: forged }), 401, 'a forged PAT');
    // the user's own session is not logged out by anything above
    await u.client.auth.listPersonalAccessTokens();
  });

  // -------------------------------------------------------------------------------------
  test('secondsValid 60: the PAT works until it expires, then 401 (the last test: it waits for the expiry)', async () => {
    const { pat, user } = expiring;
    assert.equal(await readStatus(pat), 200, 'before its expiry');
    // a user action minted before the expiry, used after it
    const body = { email: uniqueEmail('pat-expired'), kind: 'CustomerEmployee' };
    const ua = await userAction(base(), pat.token, pat.signer, { method: 'POST', path: '/auth/users', body });
    const wait = expiring.at + 62_000 - Date.now();
    if (wait > 0) await sleep(wait);
    assert.equal(await readStatus(pat), 401, 'after its expiry');
    rawRefused(await raw(base(), { path: '/auth/pats', token: pat.token }), 401, 'GET /auth/pats with an expired PAT');
    rawRefused(
      await raw(base(), { method: 'POST', path: '/auth/users', token: pat.token, userAction: ua, body: payloadOf(body) }),
      401,
      'a user action of an expired PAT',
    );
    assert.ok(!(await listAllUsers(s.client)).some((x) => x.username === body.email));
    // activating it does not bring it back
    const st = await statusOf(() => user.client.auth.activatePersonalAccessToken({ tokenId: pat.id }));
    assert.ok([200, 400, 404].includes(st), `activating an expired PAT answered ${st}`);
    assert.equal(await readStatus(pat), 401, 'an expired PAT after activate');
  });
});
