// Permissions (roles) and assignments through the official Dfns SDK (@dfns/sdk 0.8.21 +
// @dfns/sdk-keysigner 0.8.3) against a real `keyfold dev`: CRUD, the built-in immutable
// administrator permission, grants that count on the very next request, refused assignments,
// and callers without the Permissions:* operations. Every refusal is followed by a check that
// nothing changed (permissions, their assignments, users).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  DfnsError,
  expectDfnsError,
  raw,
  registerUser,
  sdkLogin,
  signedRaw,
  snapshotUsers,
  startAndLogin,
  uniqueEmail,
  refused,
} from './lib/harness.mjs';

// ---------------------------------------------------------------------------------------
// helpers

const ID_RE = (prefix) => new RegExp(`^${prefix}-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{16}$`);
const PM_RE = ID_RE('pm');
const AS_RE = ID_RE('as');

/** A syntactically valid id of the same kind that (almost surely) does not exist. */
function unknownLike(id) {
  const tail = id.endsWith('000000') ? '000001' : '000000';
  return `${id.slice(0, -6)}${tail}`;
}

function assertPermissionShape(p) {
  assert.deepEqual(
    Object.keys(p).filter((k) => k !== 'pendingChangeRequest').sort(),
    ['dateCreated', 'dateUpdated', 'id', 'isArchived', 'isImmutable', 'name', 'operations', 'status'],
    `permission fields: ${JSON.stringify(p)}`,
  );
  assert.match(p.id, PM_RE);
  assert.equal(typeof p.name, 'string');
  assert.ok(Array.isArray(p.operations) && p.operations.every((o) => typeof o === 'string'));
  assert.equal(p.status, 'Active');
  assert.equal(typeof p.isImmutable, 'boolean');
  assert.equal(typeof p.isArchived, 'boolean');
  for (const f of ['dateCreated', 'dateUpdated']) {
    assert.equal(typeof p[f], 'string');
    assert.ok(!Number.isNaN(Date.parse(p[f])), `${f} is not a date: ${p[f]}`);
  }
}

function assertAssignmentShape(a) {
  assert.deepEqual(
    Object.keys(a).filter((k) => k !== 'pendingChangeRequest').sort(),
    ['dateCreated', 'dateUpdated', 'id', 'identityId', 'isImmutable', 'permissionId'],
    `assignment fields: ${JSON.stringify(a)}`,
  );
  assert.match(a.id, AS_RE);
  assert.match(a.permissionId, PM_RE);
  assert.equal(typeof a.identityId, 'string');
  assert.equal(typeof a.isImmutable, 'boolean');
  for (const f of ['dateCreated', 'dateUpdated']) assert.ok(!Number.isNaN(Date.parse(a[f])), `${f}: ${a[f]}`);
}

/** Follows nextPageToken; checks page sizes and termination. */
async function walk(fetchPage, limit) {
  const items = [];
  let paginationToken;
  for (let pages = 1; pages < 10_000; pages++) {
    const page = await fetchPage({ limit, paginationToken });
    assert.ok(Array.isArray(page.items));
    assert.ok(page.items.length <= limit, `page of ${page.items.length} with limit ${limit}`);
    items.push(...page.items);
    if (!page.nextPageToken) return { items, pages };
    assert.equal(typeof page.nextPageToken, 'string');
    assert.equal(page.items.length, limit, 'only the last page may be short');
    paginationToken = page.nextPageToken;
  }
  throw new Error('pagination does not terminate');
}

const allPermissions = (client, limit = 100) =>
  walk((query) => client.permissions.listPermissions({ query }), limit).then((r) => r.items);

const allAssignments = (client, permissionId, limit = 100) =>
  walk((query) => client.permissions.listAssignments({ permissionId, query }), limit).then((r) => r.items);

/** Every permission with every assignment, as a stable string (for "nothing changed"). */
async function snapshotPermissions(client) {
  const perms = (await allPermissions(client)).sort((a, b) => (a.id < b.id ? -1 : 1));
  const out = [];
  for (const p of perms) {
    const as = (await allAssignments(client, p.id)).sort((a, b) => (a.id < b.id ? -1 : 1));
    out.push({ p, as });
  }
  return JSON.stringify(out);
}

// ---------------------------------------------------------------------------------------

describe('permissions and assignments via the Dfns SDK', () => {
  let s; // the root: { k, token, signer, client }
  let adminPerm; // the built-in permission
  let rootAssignment; // its immutable assignment to the root

  /** Creates, registers and logs in a user of s's org: { userId, email, session, client }. */
  async function newUser(tag) {
    const email = uniqueEmail(tag);
    const created = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const reg = await registerUser(s.k, email);
    const session = await sdkLogin(s.k.baseUrl, {
      orgId: s.k.admin.orgId,
      username: email,
      credId: reg.credId,
      privateKey: reg.privateKey,
    });
    return { userId: created.userId, email, session, client: session.client };
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

  before(async () => {
    s = await startAndLogin();
  });
  after(async () => {
    await s?.k.stop();
  });

  // -------------------------------------------------------------------------------------
  test('CRUD: create (shape, de-duplicated operations), get, list, update, archive / restore', async () => {
    const name = `readers-${uniqueEmail('p')}`;
    const p = await s.client.permissions.createPermission({
      body: { name, operations: ['Wallets:Read', 'Keys:Read', 'Wallets:Read', 'Keys:Read'] },
    });
    assertPermissionShape(p);
    assert.equal(p.name, name);
    assert.deepEqual([...p.operations].sort(), ['Keys:Read', 'Wallets:Read'], 'operations are de-duplicated');
    assert.equal(p.isImmutable, false);
    assert.equal(p.isArchived, false);

    const got = await s.client.permissions.getPermission({ permissionId: p.id });
    assertPermissionShape(got);
    assert.deepEqual(got, p);
    const listed = (await allPermissions(s.client)).find((x) => x.id === p.id);
    assert.deepEqual(listed, p);

    // rename only: operations kept
    const renamed = await s.client.permissions.updatePermission({ permissionId: p.id, body: { name: `${name}-2` } });
    assertPermissionShape(renamed);
    assert.equal(renamed.id, p.id);
    assert.equal(renamed.name, `${name}-2`);
    assert.deepEqual(renamed.operations, p.operations);
    assert.equal(renamed.dateCreated, p.dateCreated);
    assert.ok(Date.parse(renamed.dateUpdated) >= Date.parse(p.dateUpdated));
    assert.deepEqual(await s.client.permissions.getPermission({ permissionId: p.id }), renamed);

    // operations only: name kept, de-duplicated again
    const reop = await s.client.permissions.updatePermission({
      permissionId: p.id,
      body: { operations: ['Auth:Users:Read', 'Permissions:Read', 'Auth:Users:Read'] },
    });
    assert.equal(reop.name, `${name}-2`);
    assert.deepEqual([...reop.operations].sort(), ['Auth:Users:Read', 'Permissions:Read']);
    assert.deepEqual(await s.client.permissions.getPermission({ permissionId: p.id }), reop);

    // archive, then restore
    const archived = await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: true } });
    assertPermissionShape(archived);
    assert.equal(archived.isArchived, true);
    assert.equal(archived.name, reop.name);
    assert.deepEqual(archived.operations, reop.operations);
    assert.equal((await s.client.permissions.getPermission({ permissionId: p.id })).isArchived, true);
    const restored = await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: false } });
    assert.equal(restored.isArchived, false);
    assert.deepEqual(await s.client.permissions.getPermission({ permissionId: p.id }), restored);
  });

  test('list: newest first, limit 1 walks every page without duplicates, limit outside 1..100 is a 400', async () => {
    const mine = [];
    for (let i = 0; i < 4; i++) {
      mine.push(
        await s.client.permissions.createPermission({ body: { name: `page-${i}`, operations: ['Wallets:Read'] } }),
      );
    }
    const all = await s.client.permissions.listPermissions();
    assert.ok(all.items.length >= 5, `expected >= 5 permissions (4 + the built-in), got ${all.items.length}`);
    for (const p of all.items) assertPermissionShape(p);
    // newest first
    for (let i = 1; i < all.items.length; i++) {
      assert.ok(
        Date.parse(all.items[i - 1].dateCreated) >= Date.parse(all.items[i].dateCreated),
        `list not newest first at ${i}: ${all.items[i - 1].dateCreated} < ${all.items[i].dateCreated}`,
      );
    }
    const pos = mine.map((p) => all.items.findIndex((x) => x.id === p.id));
    assert.ok(pos.every((i) => i >= 0), 'a created permission is missing from the list');
    assert.deepEqual(pos, [...pos].sort((a, b) => b - a), 'later creations must come first');

    const { items, pages } = await walk((query) => s.client.permissions.listPermissions({ query }), 1);
    const ids = items.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'a permission appeared on two pages');
    assert.deepEqual(ids, all.items.map((p) => p.id), 'paged order differs from the unpaged list');
    assert.equal(pages, all.items.length);

    const two = await walk((query) => s.client.permissions.listPermissions({ query }), 2);
    assert.deepEqual(two.items.map((p) => p.id), ids);

    // the SDK drops limit=0 from the query string, so these go by hand
    for (const limit of ['0', '101', '-1', 'abc']) {
      const r = await raw(s.k.baseUrl, { path: `/permissions?limit=${limit}`, token: s.token });
      assert.equal(r.status, 400, `GET /permissions?limit=${limit}: ${r.status} ${r.text}`);
      assert.equal(typeof r.json?.error?.message, 'string', r.text);
    }
    const bad = await raw(s.k.baseUrl, { path: '/permissions?paginationToken=garbage', token: s.token });
    assert.equal(bad.status, 400, `garbage paginationToken: ${bad.status} ${bad.text}`);
    const hundred = await s.client.permissions.listPermissions({ query: { limit: 100 } });
    assert.ok(hundred.items.length >= 5);
  });

  test('create refusals: unknown operation, empty list, empty or missing name → 400, nothing created', async () => {
    const before = await snapshotPermissions(s.client);
    await refused(
      () => s.client.permissions.createPermission({ body: { name: 'fly', operations: ['Wallets:Read', 'Wallets:Fly'] } }),
      400,
      'Wallets:Fly',
    );
    await refused(() => s.client.permissions.createPermission({ body: { name: 'none', operations: [] } }), 400);
    await refused(() => s.client.permissions.createPermission({ body: { name: '', operations: ['Wallets:Read'] } }), 400);
    await refused(() => s.client.permissions.createPermission({ body: { name: '   ', operations: ['Wallets:Read'] } }), 400);
    await refused(() => s.client.permissions.createPermission({ body: { operations: ['Wallets:Read'] } }), 400);
    await refused(() => s.client.permissions.createPermission({ body: { name: 'no-ops' } }), 400);
    await refused(() => s.client.permissions.createPermission({ body: { name: 'num', operations: [42] } }), 400);
    await refused(() => s.client.permissions.createPermission({ body: { name: 'lower', operations: ['wallets:read'] } }), 400, 'wallets:read');
    assert.equal(await snapshotPermissions(s.client), before);
  });

  test('update / archive / get refusals: bad fields → 400, unknown id → 404, nothing changed', async () => {
    const p = await s.client.permissions.createPermission({ body: { name: 'upd-refuse', operations: ['Keys:Read'] } });
    const before = await snapshotPermissions(s.client);
    await refused(
      () => s.client.permissions.updatePermission({ permissionId: p.id, body: { operations: ['Keys:Read', 'Wallets:Fly'] } }),
      400,
      'Wallets:Fly',
    );
    await refused(() => s.client.permissions.updatePermission({ permissionId: p.id, body: { operations: [] } }), 400);
    await refused(() => s.client.permissions.updatePermission({ permissionId: p.id, body: { name: '' } }), 400);
    // a valid name with a bad operation list: neither is applied
    await refused(
      () => s.client.permissions.updatePermission({ permissionId: p.id, body: { name: 'half', operations: ['Nope:Nope'] } }),
      400,
      'Nope:Nope',
    );
    const ghost = unknownLike(p.id);
    assert.match(ghost, PM_RE);
    await refused(() => s.client.permissions.getPermission({ permissionId: ghost }), 404);
    await refused(() => s.client.permissions.getPermission({ permissionId: 'nonsense' }), 404);
    await refused(() => s.client.permissions.updatePermission({ permissionId: ghost, body: { name: 'x' } }), 404);
    await refused(() => s.client.permissions.archivePermission({ permissionId: ghost, body: { isArchived: true } }), 404);
    await refused(() => s.client.permissions.listAssignments({ permissionId: ghost }), 404);
    assert.equal(await snapshotPermissions(s.client), before);
    assert.deepEqual(await s.client.permissions.getPermission({ permissionId: p.id }), p);
  });

  // -------------------------------------------------------------------------------------
  test('the built-in administrator permission: listed, immutable, its root assignment immutable', async () => {
    const perms = await allPermissions(s.client);
    const immutable = perms.filter((p) => p.isImmutable);
    assert.equal(immutable.length, 1, `expected exactly one immutable permission: ${JSON.stringify(immutable)}`);
    adminPerm = immutable[0];
    assertPermissionShape(adminPerm);
    assert.equal(adminPerm.isArchived, false);
    for (const o of [
      'Auth:Users:Read',
      'Auth:Users:Create',
      'Permissions:Create',
      'Permissions:Read',
      'Permissions:Update',
      'Permissions:Archive',
      'Permissions:Assign',
      'Permissions:Revoke',
      'Permissions:Assignments:Read',
      'Wallets:Read',
      'Keys:Read',
    ]) {
      assert.ok(adminPerm.operations.includes(o), `the built-in permission lacks ${o}`);
    }
    assert.deepEqual(await s.client.permissions.getPermission({ permissionId: adminPerm.id }), adminPerm);

    const as = await allAssignments(s.client, adminPerm.id);
    const root = as.filter((a) => a.identityId === s.k.admin.userId);
    assert.equal(root.length, 1, `root assignment: ${JSON.stringify(as)}`);
    rootAssignment = root[0];
    assertAssignmentShape(rootAssignment);
    assert.equal(rootAssignment.permissionId, adminPerm.id);
    assert.equal(rootAssignment.isImmutable, true);
  });

  test('the built-in permission cannot be updated or archived, its assignment cannot be revoked (400), nothing changes', async () => {
    assert.ok(adminPerm && rootAssignment, 'needs the previous test');
    const before = await snapshotPermissions(s.client);
    const pid = adminPerm.id;
    await refused(() => s.client.permissions.updatePermission({ permissionId: pid, body: { name: 'mine now' } }), 400);
    await refused(() => s.client.permissions.updatePermission({ permissionId: pid, body: { operations: ['Wallets:Read'] } }), 400);
    // even a no-op update is refused
    await refused(
      () => s.client.permissions.updatePermission({ permissionId: pid, body: { name: adminPerm.name, operations: adminPerm.operations } }),
      400,
    );
    await refused(() => s.client.permissions.archivePermission({ permissionId: pid, body: { isArchived: true } }), 400);
    await refused(() => s.client.permissions.archivePermission({ permissionId: pid, body: { isArchived: false } }), 400);
    await refused(() => s.client.permissions.deleteAssignment({ permissionId: pid, assignmentId: rootAssignment.id }), 400);
    await refused(
      () => s.client.permissions.deleteAssignment({ permissionId: pid, assignmentId: rootAssignment.id, query: { force: true } }),
      400,
    );
    // assigning it to the root again is a duplicate
    await refused(() => s.client.permissions.createAssignment({ permissionId: pid, body: { identityId: s.k.admin.userId } }), 409);
    assert.equal(await snapshotPermissions(s.client), before);
    assert.deepEqual(await s.client.permissions.getPermission({ permissionId: pid }), adminPerm);

    // the root can still do everything, with its existing session
    await s.client.auth.listUsers({ query: { limit: 1 } });
    const u = await s.client.auth.createUser({ body: { email: uniqueEmail('after-admin'), kind: 'CustomerEmployee' } });
    const p = await s.client.permissions.createPermission({ body: { name: 'still-admin', operations: ['Wallets:Read'] } });
    const a = await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } });
    await s.client.permissions.updatePermission({ permissionId: p.id, body: { name: 'still-admin-2' } });
    await s.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: a.id });
    await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: true } });
  });

  test('the built-in permission can be granted to and revoked from another user (that assignment is mutable)', async () => {
    assert.ok(adminPerm, 'needs the built-in permission');
    const u = await newUser('co-admin');
    await refused(() => u.client.auth.listUsers(), 403);
    const a = await s.client.permissions.createAssignment({ permissionId: adminPerm.id, body: { identityId: u.userId } });
    assertAssignmentShape(a);
    assert.equal(a.isImmutable, false);
    await u.client.auth.listUsers({ query: { limit: 1 } });
    await u.client.permissions.listPermissions();
    await s.client.permissions.deleteAssignment({ permissionId: adminPerm.id, assignmentId: a.id });
    await refused(() => u.client.auth.listUsers(), 403);
    await refused(() => u.client.permissions.listPermissions(), 403);
    // the root's grant is untouched
    const as = await allAssignments(s.client, adminPerm.id);
    assert.deepEqual(as.map((x) => x.id), [rootAssignment.id]);
  });

  // -------------------------------------------------------------------------------------
  test('grants count on the very next request: assign, update, archive, restore, revoke', async () => {
    const u = await newUser('grantee');
    const token = u.session.token;
    const tryList = () => statusOf(() => u.client.auth.listUsers({ query: { limit: 1 } }));
    const tryCreate = async () => {
      const usersBefore = await snapshotUsers(s.client);
      const st = await statusOf(() =>
        u.client.auth.createUser({ body: { email: uniqueEmail('by-grantee'), kind: 'CustomerEmployee' } }),
      );
      if (st !== 200) assert.equal(await snapshotUsers(s.client), usersBefore, `createUser refused with ${st} but changed users`);
      return st;
    };

    // a new user holds nothing
    assert.equal(await tryList(), 403);
    await refused(() => u.client.auth.listUsers(), 403, 'Auth:Users:Read');
    assert.equal(await tryCreate(), 403);

    const p = await s.client.permissions.createPermission({ body: { name: 'user-readers', operations: ['Auth:Users:Read'] } });
    assert.deepEqual(await allAssignments(s.client, p.id), []);

    const a = await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } });
    assertAssignmentShape(a);
    assert.equal(a.permissionId, p.id);
    assert.equal(a.identityId, u.userId);
    assert.equal(a.isImmutable, false);
    assert.deepEqual(await allAssignments(s.client, p.id), [a]);

    // same token, next request
    assert.equal(u.session.token, token);
    const r = await raw(s.k.baseUrl, { path: '/auth/users?limit=1', token });
    assert.equal(r.status, 200, `same token after the assignment: ${r.status} ${r.text}`);
    assert.equal(await tryList(), 200, 'listUsers right after the assignment');
    assert.equal(await tryCreate(), 403, 'createUser is not granted by Auth:Users:Read');

    // widen the permission
    const wide = await s.client.permissions.updatePermission({
      permissionId: p.id,
      body: { operations: ['Auth:Users:Read', 'Auth:Users:Create'] },
    });
    assert.deepEqual([...wide.operations].sort(), ['Auth:Users:Create', 'Auth:Users:Read']);
    assert.equal(await tryCreate(), 200, 'createUser right after adding Auth:Users:Create');
    assert.equal(await tryList(), 200);

    // narrow it: read goes away at once, create stays
    await s.client.permissions.updatePermission({ permissionId: p.id, body: { operations: ['Auth:Users:Create'] } });
    assert.equal(await tryList(), 403, 'listUsers right after removing Auth:Users:Read');
    assert.equal(await tryCreate(), 200);
    await s.client.permissions.updatePermission({ permissionId: p.id, body: { operations: ['Auth:Users:Read', 'Auth:Users:Create'] } });
    assert.equal(await tryList(), 200);

    // archive: everything it grants is gone at once; the assignment itself stays
    await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: true } });
    assert.equal(await tryList(), 403, 'listUsers right after archiving');
    assert.equal(await tryCreate(), 403, 'createUser right after archiving');
    assert.deepEqual(await allAssignments(s.client, p.id), [a]);

    // restore: back at once
    await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: false } });
    assert.equal(await tryList(), 200, 'listUsers right after restoring');
    assert.equal(await tryCreate(), 200, 'createUser right after restoring');

    // a second permission granting the same operation keeps it alive when the first goes
    const p2 = await s.client.permissions.createPermission({ body: { name: 'readers-too', operations: ['Auth:Users:Read'] } });
    const a2 = await s.client.permissions.createAssignment({ permissionId: p2.id, body: { identityId: u.userId } });
    await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: true } });
    assert.equal(await tryList(), 200, 'Auth:Users:Read still granted by the second permission');
    assert.equal(await tryCreate(), 403);
    await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: false } });
    await s.client.permissions.deleteAssignment({ permissionId: p2.id, assignmentId: a2.id });
    assert.deepEqual(await allAssignments(s.client, p2.id), []);
    assert.equal(await tryList(), 200, 'still granted by the first permission');

    // revoke: 204, gone at once
    const del = await raw(s.k.baseUrl, {
      method: 'DELETE',
      path: `/permissions/${p.id}/assignments/${a.id}`,
      token: s.token,
    });
    assert.equal(del.status, 401, `DELETE without a user action must be refused as unsigned (401): ${del.status} ${del.text}`);
    assert.deepEqual(await allAssignments(s.client, p.id), [a], 'an unsigned DELETE changed nothing');
    const signedDel = await signedRaw(s.k.baseUrl, s.token, s.signer, {
      method: 'DELETE',
      path: `/permissions/${p.id}/assignments/${a.id}`,
      body: {},
    });
    assert.equal(signedDel.status, 204, `revoke: ${signedDel.status} ${signedDel.text}`);
    assert.equal(signedDel.text, '');
    assert.equal(await tryList(), 403, 'listUsers right after the revocation');
    assert.equal(await tryCreate(), 403, 'createUser right after the revocation');
    assert.deepEqual(await allAssignments(s.client, p.id), []);

    // revoking again is a 404; re-assigning gives a new assignment and the grant back
    await refused(() => s.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: a.id }), 404);
    const a3 = await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } });
    assert.notEqual(a3.id, a.id);
    assert.equal(await tryList(), 200);
    await s.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: a3.id });
    assert.equal(await tryList(), 403);
  });

  // -------------------------------------------------------------------------------------
  describe('refused assignments', () => {
    let other; // a second keyfold instance: another organization

    after(async () => {
      await other?.k.stop();
    });

    test('unknown, deleted or malformed identity → 404, nothing created', async () => {
      const p = await s.client.permissions.createPermission({ body: { name: 'bad-identity', operations: ['Wallets:Read'] } });
      const archivedUser = await s.client.auth.createUser({ body: { email: uniqueEmail('gone'), kind: 'CustomerEmployee' } });
      await s.client.auth.archiveUser({ userId: archivedUser.userId });
      const before = await snapshotPermissions(s.client);
      const ghostUser = unknownLike(s.k.admin.userId);
      assert.match(ghostUser, ID_RE('us'));
      for (const identityId of [ghostUser, archivedUser.userId, 'nonsense', '', p.id, s.k.admin.orgId]) {
        const st = await statusOf(() => s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId } }));
        assert.ok(
          identityId === '' ? [400, 404].includes(st) : st === 404,
          `assigning to ${JSON.stringify(identityId)}: got ${st}`,
        );
      }
      await refused(() => s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: ghostUser } }), 404);
      assert.equal(await snapshotPermissions(s.client), before);
    });

    test('an identity of another organization → 404, nothing created', async (t) => {
      const t0 = Date.now();
      other = await startAndLogin();
      const startMs = Date.now() - t0;
      assert.notEqual(other.k.admin.orgId, s.k.admin.orgId);
      const otherUser = await other.client.auth.createUser({ body: { email: uniqueEmail('other-org'), kind: 'CustomerEmployee' } });
      const otherPerms = await allPermissions(other.client);
      const otherAdminPerm = otherPerms.find((x) => x.isImmutable);
      assert.ok(otherAdminPerm);

      const p = await s.client.permissions.createPermission({ body: { name: 'cross-org', operations: ['Wallets:Read'] } });
      const before = await snapshotPermissions(s.client);
      const otherBefore = await snapshotPermissions(other.client);
      await refused(() => s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: other.k.admin.userId } }), 404);
      await refused(() => s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: otherUser.userId } }), 404);
      // the other org's permission does not exist here either
      await refused(() => s.client.permissions.getPermission({ permissionId: otherAdminPerm.id }), 404);
      await refused(
        () => s.client.permissions.createAssignment({ permissionId: otherAdminPerm.id, body: { identityId: s.k.admin.userId } }),
        404,
      );
      // and the other way round
      await refused(() => other.client.permissions.createAssignment({ permissionId: otherAdminPerm.id, body: { identityId: s.k.admin.userId } }), 404);
      assert.equal(await snapshotPermissions(s.client), before);
      assert.equal(await snapshotPermissions(other.client), otherBefore);
      t.diagnostic(`second instance started in ${startMs} ms`);
    });

    test('the same permission twice to the same identity → 409, nothing created', async () => {
      const p = await s.client.permissions.createPermission({ body: { name: 'dup', operations: ['Wallets:Read'] } });
      const u = await s.client.auth.createUser({ body: { email: uniqueEmail('dup-assign'), kind: 'CustomerEmployee' } });
      const a = await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } });
      const before = await snapshotPermissions(s.client);
      await refused(() => s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } }), 409);
      assert.equal(await snapshotPermissions(s.client), before);
      assert.deepEqual(await allAssignments(s.client, p.id), [a]);
      // a different permission to the same identity is fine
      const q = await s.client.permissions.createPermission({ body: { name: 'dup-2', operations: ['Wallets:Read'] } });
      await s.client.permissions.createAssignment({ permissionId: q.id, body: { identityId: u.userId } });

      // racing: six identical assignments at once → exactly one wins, the rest are 409
      const r = await s.client.permissions.createPermission({ body: { name: 'dup-race', operations: ['Wallets:Read'] } });
      const statuses = await Promise.all(
        Array.from({ length: 6 }, () =>
          statusOf(() => s.client.permissions.createAssignment({ permissionId: r.id, body: { identityId: u.userId } })),
        ),
      );
      assert.deepEqual([...statuses].sort(), [200, 409, 409, 409, 409, 409], `concurrent duplicates: ${statuses}`);
      assert.equal((await allAssignments(s.client, r.id)).length, 1);
    });

    test('an archived permission cannot be assigned (400); an unknown one is a 404; nothing created', async () => {
      const p = await s.client.permissions.createPermission({ body: { name: 'archived', operations: ['Wallets:Read'] } });
      await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: true } });
      const u = await s.client.auth.createUser({ body: { email: uniqueEmail('arch-assign'), kind: 'CustomerEmployee' } });
      const before = await snapshotPermissions(s.client);
      await refused(() => s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } }), 400);
      const ghost = unknownLike(p.id);
      await refused(() => s.client.permissions.createAssignment({ permissionId: ghost, body: { identityId: u.userId } }), 404);
      await refused(() => s.client.permissions.createAssignment({ permissionId: 'nonsense', body: { identityId: u.userId } }), 404);
      assert.equal(await snapshotPermissions(s.client), before);
      // once restored it can be
      await s.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: false } });
      await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } });
    });

    test('deleting an assignment through the wrong permission, or an unknown one → 404, it stays in force', async () => {
      const u = await newUser('wrong-pair');
      const p = await s.client.permissions.createPermission({ body: { name: 'pair-p', operations: ['Auth:Users:Read'] } });
      const q = await s.client.permissions.createPermission({ body: { name: 'pair-q', operations: ['Wallets:Read'] } });
      const a = await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } });
      const b = await s.client.permissions.createAssignment({ permissionId: q.id, body: { identityId: u.userId } });
      const before = await snapshotPermissions(s.client);
      await refused(() => s.client.permissions.deleteAssignment({ permissionId: q.id, assignmentId: a.id }), 404);
      await refused(() => s.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: b.id }), 404);
      await refused(() => s.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: unknownLike(a.id) }), 404);
      await refused(() => s.client.permissions.deleteAssignment({ permissionId: unknownLike(p.id), assignmentId: a.id }), 404);
      await refused(() => s.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: 'nonsense' }), 404);
      // the root's immutable assignment through a mutable permission: 404 (wrong pair), not 400
      await refused(() => s.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: rootAssignment.id }), 404);
      assert.equal(await snapshotPermissions(s.client), before);
      // still in force
      await u.client.auth.listUsers({ query: { limit: 1 } });
    });

    test('listAssignments paginates (limit 1), newest first, no duplicates', async () => {
      const p = await s.client.permissions.createPermission({ body: { name: 'many', operations: ['Wallets:Read'] } });
      const made = [];
      for (let i = 0; i < 4; i++) {
        const u = await s.client.auth.createUser({ body: { email: uniqueEmail(`as${i}`), kind: 'CustomerEmployee' } });
        made.push(await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } }));
      }
      const all = await s.client.permissions.listAssignments({ permissionId: p.id });
      assert.deepEqual(all.items.map((a) => a.id), made.map((a) => a.id).reverse(), 'newest first');
      assert.equal(all.nextPageToken, undefined);
      for (const a of all.items) assertAssignmentShape(a);
      const { items, pages } = await walk((query) => s.client.permissions.listAssignments({ permissionId: p.id, query }), 1);
      assert.deepEqual(items, all.items);
      assert.equal(pages, 4);
      const r = await raw(s.k.baseUrl, { path: `/permissions/${p.id}/assignments?limit=0`, token: s.token });
      assert.equal(r.status, 400, `limit=0: ${r.status} ${r.text}`);
    });
  });

  // -------------------------------------------------------------------------------------
  test('a user without Permissions:* cannot read, create, change or assign permissions (403), nothing changes', async () => {
    assert.ok(adminPerm && rootAssignment, 'needs the built-in permission');
    const u = await newUser('no-perms');
    const p = await s.client.permissions.createPermission({ body: { name: 'target', operations: ['Auth:Users:Read'] } });
    const a = await s.client.permissions.createAssignment({
      permissionId: p.id,
      body: { identityId: s.k.admin.userId },
    });
    const before = await snapshotPermissions(s.client);
    const usersBefore = await snapshotUsers(s.client);

    await refused(() => u.client.permissions.listPermissions(), 403, 'Permissions:Read');
    await refused(() => u.client.permissions.getPermission({ permissionId: p.id }), 403);
    await refused(() => u.client.permissions.getPermission({ permissionId: adminPerm.id }), 403);
    await refused(() => u.client.permissions.listAssignments({ permissionId: p.id }), 403);
    await refused(
      () => u.client.permissions.createPermission({ body: { name: 'mine', operations: ['Auth:Users:Read'] } }),
      403,
      'Permissions:Create',
    );
    await refused(() => u.client.permissions.updatePermission({ permissionId: p.id, body: { name: 'hijacked' } }), 403);
    await refused(() => u.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: true } }), 403);
    await refused(() => u.client.permissions.deleteAssignment({ permissionId: p.id, assignmentId: a.id }), 403);
    await refused(
      () => u.client.permissions.deleteAssignment({ permissionId: adminPerm.id, assignmentId: rootAssignment.id }),
      403,
    );
    // assigning themselves anything
    await refused(
      () => u.client.permissions.createAssignment({ permissionId: adminPerm.id, body: { identityId: u.userId } }),
      403,
      'Permissions:Assign',
    );
    await refused(() => u.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } }), 403);
    // 403 comes before existence checks: unknown ids are not revealed
    await refused(() => u.client.permissions.getPermission({ permissionId: unknownLike(p.id) }), 403);
    await refused(
      () => u.client.permissions.createAssignment({ permissionId: unknownLike(p.id), body: { identityId: u.userId } }),
      403,
    );
    // nor can the grantee-less user do anything else
    await refused(() => u.client.auth.listUsers(), 403);

    assert.equal(await snapshotPermissions(s.client), before);
    assert.equal(await snapshotUsers(s.client), usersBefore);
  });

  test('a user holding only Permissions:Read (+ Assignments:Read) can look but not escalate (403)', async () => {
    assert.ok(adminPerm, 'needs the built-in permission');
    const u = await newUser('reader');
    const p = await s.client.permissions.createPermission({
      body: { name: 'perm-readers', operations: ['Permissions:Read', 'Permissions:Assignments:Read'] },
    });
    await s.client.permissions.createAssignment({ permissionId: p.id, body: { identityId: u.userId } });
    const before = await snapshotPermissions(s.client);

    // reads work, and agree with what the root sees
    assert.equal(await snapshotPermissions(u.client), before);

    await refused(() => u.client.permissions.createAssignment({ permissionId: adminPerm.id, body: { identityId: u.userId } }), 403);
    // widening their own permission
    await refused(
      () => u.client.permissions.updatePermission({ permissionId: p.id, body: { operations: ['Permissions:Read', 'Permissions:Assign'] } }),
      403,
    );
    await refused(
      () => u.client.permissions.createPermission({ body: { name: 'escalate', operations: ['Permissions:Assign'] } }),
      403,
    );
    await refused(() => u.client.permissions.archivePermission({ permissionId: p.id, body: { isArchived: true } }), 403);
    await refused(() => u.client.auth.listUsers(), 403);
    assert.equal(await snapshotPermissions(s.client), before);
  });

  test('nobody grants more than they hold: with Permissions:Assign/Update/Archive but not the operations, assigning, widening or restoring is a 403', async () => {
    assert.ok(adminPerm, 'needs the built-in permission');
    const u = await newUser('assigner');
    const mine = await s.client.permissions.createPermission({
      body: {
        name: 'perm-assigners',
        operations: ['Permissions:Read', 'Permissions:Assign', 'Permissions:Update', 'Permissions:Archive', 'Auth:Users:Read'],
      },
    });
    await s.client.permissions.createAssignment({ permissionId: mine.id, body: { identityId: u.userId } });
    const readers = await s.client.permissions.createPermission({ body: { name: 'perm-users-read', operations: ['Auth:Users:Read'] } });
    const writers = await s.client.permissions.createPermission({ body: { name: 'perm-users-create', operations: ['Auth:Users:Create'] } });
    const other = await newUser('assignee');
    const before = await snapshotPermissions(s.client);

    // The administrator permission (and anything else beyond their own operations): 403.
    await refused(() => u.client.permissions.createAssignment({ permissionId: adminPerm.id, body: { identityId: u.userId } }), 403, 'do not hold');
    await refused(() => u.client.permissions.createAssignment({ permissionId: writers.id, body: { identityId: other.userId } }), 403, 'Auth:Users:Create');
    // Widening a permission (their own included) with an operation they lack: 403.
    await refused(
      () => u.client.permissions.updatePermission({ permissionId: mine.id, body: { operations: [...mine.operations, 'Auth:Users:Create'] } }),
      403,
      'Auth:Users:Create',
    );
    await refused(() => u.client.auth.createUser({ body: { email: uniqueEmail('nope'), kind: 'CustomerEmployee' } }), 403);
    assert.equal(await snapshotPermissions(s.client), before);

    // Within their reach it works: a permission whose operations they hold.
    const a = await u.client.permissions.createAssignment({ permissionId: readers.id, body: { identityId: other.userId } });
    assert.equal(a.identityId, other.userId);
    // Restoring an archived permission puts its operations back in force: same rule.
    await s.client.permissions.archivePermission({ permissionId: writers.id, body: { isArchived: true } });
    await refused(() => u.client.permissions.archivePermission({ permissionId: writers.id, body: { isArchived: false } }), 403);
    assert.equal((await s.client.permissions.getPermission({ permissionId: writers.id })).isArchived, true);
  });
});
