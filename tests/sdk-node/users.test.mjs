// Users and registration through the official Dfns SDK (@dfns/sdk 0.8.21 +
// @dfns/sdk-keysigner 0.8.3) against a real `keyfold dev`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BaseAuthApi,
  DfnsApiClient,
  DfnsError,
  assertUserShape,
  expectDfnsError,
  listAllUsers,
  loginStatus,
  raw,
  registerUser,
  sdkLogin,
  snapshotUsers,
  startAndLogin,
  uniqueEmail,
  waitRegistrationCode,
} from './lib/harness.mjs';

describe('users via the Dfns SDK', () => {
  let s; // { k, token, signer, client }

  before(async () => {
    s = await startAndLogin();
  });
  after(async () => {
    await s?.k.stop();
  });

  test('admin.json has exactly the documented fields and logs in with the SDK', async () => {
    assert.deepEqual(Object.keys(s.k.admin).sort(), [
      'baseUrl',
      'credId',
      'orgId',
      'privateKey',
      'userId',
      'username',
    ]);
    assert.equal(s.k.admin.baseUrl, s.k.baseUrl);
    assert.match(s.k.admin.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    // The SDK checks the token's org claim on every call (assertAuthTokenIsSameOrg); check it
    // explicitly too.
    const payload = JSON.parse(Buffer.from(s.token.split('.')[1], 'base64url').toString());
    assert.equal(payload['https://custom/app_metadata']?.orgId, s.k.admin.orgId);
    const me = await s.client.auth.getUser({ userId: s.k.admin.userId });
    assertUserShape(assert, me);
    assert.equal(me.userId, s.k.admin.userId);
    assert.equal(me.username, s.k.admin.username);
    assert.equal(me.orgId, s.k.admin.orgId);
    assert.equal(me.isActive, true);
    assert.equal(me.isRegistered, true);
  });

  test('login challenge has the shape the SDK signer needs', async () => {
    const ch = await BaseAuthApi.createUserLoginChallenge(
      { orgId: s.k.admin.orgId, username: s.k.admin.username },
      { baseUrl: s.k.baseUrl },
    );
    assert.equal(typeof ch.challenge, 'string');
    assert.equal(typeof ch.challengeIdentifier, 'string');
    assert.ok(Array.isArray(ch.allowCredentials?.key));
    assert.ok(Array.isArray(ch.allowCredentials?.webauthn));
    assert.ok(ch.allowCredentials.key.some((c) => c.id === s.k.admin.credId && c.type === 'public-key'));
    assert.ok(Array.isArray(ch.supportedCredentialKinds));
    assert.ok(['required', 'preferred', 'discouraged'].includes(ch.userVerification));
  });

  test('login as an unknown user / into an unknown org is refused (401)', async () => {
    const { orgId, credId, privateKey, username } = s.k.admin;
    // Keyfold answers login/init for unknown users with a decoy challenge (no enumeration);
    // the SDK's signer then refuses locally. The server must refuse the login itself too.
    assert.equal(await loginStatus(s.k.baseUrl, { orgId, username: 'nobody@example.com', credId, privateKey }), 401);
    assert.equal(
      await loginStatus(s.k.baseUrl, { orgId: 'or-aaaaa-aaaaa-aaaaaaaaaaaaaaaa', username, credId, privateKey }),
      401,
    );
    await assert.rejects(
      () => sdkLogin(s.k.baseUrl, { orgId, username: 'nobody@example.com', credId, privateKey }),
      (e) => e instanceof DfnsError && (e.httpStatus === 401 || e.httpStatus === -1),
    );
  });

  test('createUser returns the SDK CreateUserResponse shape and sends a registration mail', async () => {
    const email = uniqueEmail('create');
    const u = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    assertUserShape(assert, u);
    assert.equal(u.username, email);
    assert.equal(u.kind, 'CustomerEmployee');
    assert.equal(u.orgId, s.k.admin.orgId);
    assert.equal(u.isActive, true);
    assert.equal(u.isRegistered, false);
    assert.equal(u.isServiceAccount, false);
    assert.equal(u.isSSORequired, false);
    const code = await waitRegistrationCode(s.k.dataDir, email);
    assert.match(code, /^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/i);

    const got = await s.client.auth.getUser({ userId: u.userId });
    assert.deepEqual(got, u);
  });

  test('createUser with isSSORequired and externalId echoes them', async () => {
    const email = uniqueEmail('sso');
    const u = await s.client.auth.createUser({
      body: { email, kind: 'CustomerEmployee', isSSORequired: true, externalId: `ext-${email}` },
    });
    assert.equal(u.isSSORequired, true);
    assert.equal((await s.client.auth.getUser({ userId: u.userId })).isSSORequired, true);
  });

  test('createUser with an existing email is a 409 and creates nothing', async () => {
    const email = uniqueEmail('dup');
    await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const before = await snapshotUsers(s.client);
    await expectDfnsError(() => s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } }), 409);
    assert.equal(await snapshotUsers(s.client), before);
  });

  test('createUser with a duplicate externalId is a 409 (API.md) and creates nothing', async () => {
    const externalId = `ext-${uniqueEmail('x')}`;
    await s.client.auth.createUser({ body: { email: uniqueEmail('ext1'), kind: 'CustomerEmployee', externalId } });
    const before = await snapshotUsers(s.client);
    const other = uniqueEmail('ext2');
    let status = 200;
    try {
      await s.client.auth.createUser({ body: { email: other, kind: 'CustomerEmployee', externalId } });
    } catch (e) {
      status = e.httpStatus;
    }
    const after = await snapshotUsers(s.client);
    assert.equal(after, before, 'a second user with the same externalId must not be created');
    assert.equal(status, 409, 'duplicate externalId with a different email: expected 409');
  });

  test('getUser of an unknown id is a 404', async () => {
    await expectDfnsError(() => s.client.auth.getUser({ userId: 'us-aaaaa-aaaaa-aaaaaaaaaaaaaaaa' }), 404);
    await expectDfnsError(() => s.client.auth.getUser({ userId: 'nonsense' }), 404);
  });

  test('listUsers paginates with limit + paginationToken, no duplicates, nothing lost', async () => {
    for (let i = 0; i < 5; i++) {
      await s.client.auth.createUser({ body: { email: uniqueEmail(`page${i}`), kind: 'CustomerEmployee' } });
    }
    const all = await s.client.auth.listUsers();
    assert.ok(Array.isArray(all.items));
    for (const u of all.items) assertUserShape(assert, u);
    const total = all.items.length;
    assert.ok(total >= 6, `expected >= 6 users, got ${total}`);
    assert.ok(all.items.some((u) => u.userId === s.k.admin.userId));

    const seen = [];
    let token;
    let pages = 0;
    do {
      const page = await s.client.auth.listUsers({ query: { limit: 2, paginationToken: token } });
      assert.ok(page.items.length <= 2, `page of ${page.items.length} with limit 2`);
      if (page.nextPageToken !== undefined) {
        assert.equal(typeof page.nextPageToken, 'string');
        assert.equal(page.items.length, 2, 'only the last page may be short');
      }
      seen.push(...page.items.map((u) => u.userId));
      token = page.nextPageToken;
      pages++;
      assert.ok(pages <= total + 1, 'pagination does not terminate');
    } while (token);
    assert.equal(new Set(seen).size, seen.length, 'a user appeared on two pages');
    assert.deepEqual(seen, all.items.map((u) => u.userId), 'paged order differs from the unpaged list');
    assert.equal(pages, Math.ceil(total / 2));

    // limit 1, first page only
    const one = await s.client.auth.listUsers({ query: { limit: 1 } });
    assert.equal(one.items.length, 1);
    assert.equal(typeof one.nextPageToken, 'string');
    assert.equal(one.items[0].userId, all.items[0].userId);
  });

  test('listUsers filters by kind', async () => {
    const employees = await s.client.auth.listUsers({ query: { kind: 'CustomerEmployee' } });
    assert.ok(employees.items.length >= 1);
    assert.ok(employees.items.every((u) => u.kind === 'CustomerEmployee'));
    const endUsers = await s.client.auth.listUsers({ query: { kind: 'EndUser' } });
    assert.ok(endUsers.items.every((u) => u.kind === 'EndUser'));
  });

  test('deactivateUser / activateUser flip isActive and are visible in getUser and listUsers', async () => {
    const email = uniqueEmail('act');
    const u = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const d = await s.client.auth.deactivateUser({ userId: u.userId });
    assertUserShape(assert, d);
    assert.equal(d.userId, u.userId);
    assert.equal(d.isActive, false);
    assert.equal((await s.client.auth.getUser({ userId: u.userId })).isActive, false);
    const listed = (await listAllUsers(s.client)).find((x) => x.userId === u.userId);
    assert.equal(listed.isActive, false);

    const a = await s.client.auth.activateUser({ userId: u.userId });
    assert.equal(a.isActive, true);
    assert.equal((await s.client.auth.getUser({ userId: u.userId })).isActive, true);
  });

  test('activate / deactivate / update / archive of an unknown user is a 404', async () => {
    const userId = 'us-aaaaa-aaaaa-aaaaaaaaaaaaaaaa';
    const before = await snapshotUsers(s.client);
    await expectDfnsError(() => s.client.auth.deactivateUser({ userId }), 404);
    await expectDfnsError(() => s.client.auth.activateUser({ userId }), 404);
    await expectDfnsError(() => s.client.auth.updateUser({ userId, body: { isSSORequired: true } }), 404);
    await expectDfnsError(() => s.client.auth.archiveUser({ userId }), 404);
    assert.equal(await snapshotUsers(s.client), before);
  });

  test('updateUser sets isSSORequired', async () => {
    const u = await s.client.auth.createUser({ body: { email: uniqueEmail('upd'), kind: 'CustomerEmployee' } });
    assert.equal(u.isSSORequired, false);
    const up = await s.client.auth.updateUser({ userId: u.userId, body: { isSSORequired: true } });
    assertUserShape(assert, up);
    assert.equal(up.isSSORequired, true);
    assert.equal((await s.client.auth.getUser({ userId: u.userId })).isSSORequired, true);
    const down = await s.client.auth.updateUser({ userId: u.userId, body: { isSSORequired: false } });
    assert.equal(down.isSSORequired, false);
  });

  test('archiveUser (DELETE) removes the user: 404 afterwards, not listed, a second archive is 404', async () => {
    const u = await s.client.auth.createUser({ body: { email: uniqueEmail('arch'), kind: 'CustomerEmployee' } });
    const res = await s.client.auth.archiveUser({ userId: u.userId });
    assert.equal(res.userId, u.userId);
    await expectDfnsError(() => s.client.auth.getUser({ userId: u.userId }), 404);
    assert.ok(!(await listAllUsers(s.client)).some((x) => x.userId === u.userId));
    await expectDfnsError(() => s.client.auth.archiveUser({ userId: u.userId }), 404);
    await expectDfnsError(() => s.client.auth.activateUser({ userId: u.userId }), 404);
  });

  test('archiving or deactivating yourself is refused and changes nothing', async () => {
    const before = await snapshotUsers(s.client);
    let status = 200;
    try {
      await s.client.auth.archiveUser({ userId: s.k.admin.userId });
    } catch (e) {
      status = e.httpStatus;
    }
    assert.ok([400, 403, 409].includes(status), `archiving the caller itself: got ${status}`);
    status = 200;
    try {
      await s.client.auth.deactivateUser({ userId: s.k.admin.userId });
    } catch (e) {
      status = e.httpStatus;
    }
    assert.ok([400, 403, 409].includes(status), `deactivating the caller itself: got ${status}`);
    assert.equal(await snapshotUsers(s.client), before);
  });

  describe('registration of a created user, then SDK login', () => {
    let email;
    let created;
    let reg;
    let userSession;

    test('register with the emailed code (Key credential)', async () => {
      email = uniqueEmail('reg');
      created = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
      reg = await registerUser(s.k, email);
      const r = reg.response;
      assert.equal(r.user.id, created.userId);
      assert.equal(r.user.username, email);
      assert.equal(r.user.orgId, s.k.admin.orgId);
      assert.equal(r.credential.kind, 'Key');
      assert.equal(typeof r.credential.uuid, 'string');
      assert.equal(typeof r.credential.name, 'string');
      // the registration challenge has the SDK's UserRegistrationChallenge shape
      const ch = reg.challenge;
      assert.equal(typeof ch.challenge, 'string');
      assert.equal(typeof ch.temporaryAuthenticationToken, 'string');
      assert.equal(ch.user.id, created.userId);
      assert.ok(ch.supportedCredentialKinds.firstFactor.includes('Key'));

      const after = await s.client.auth.getUser({ userId: created.userId });
      assert.equal(after.isRegistered, true);
      assert.equal(after.credentialUuid, r.credential.uuid);
    });

    test('the registered user logs in with the SDK', async () => {
      userSession = await sdkLogin(s.k.baseUrl, {
        orgId: s.k.admin.orgId,
        username: email,
        credId: reg.credId,
        privateKey: reg.privateKey,
      });
      const payload = JSON.parse(Buffer.from(userSession.token.split('.')[1], 'base64url').toString());
      assert.equal(payload['https://custom/app_metadata']?.orgId, s.k.admin.orgId);
    });

    test('a user without permissions gets 403 on reads and writes, and nothing changes', async () => {
      const before = await snapshotUsers(s.client);
      await expectDfnsError(() => userSession.client.auth.listUsers(), 403);
      await expectDfnsError(() => userSession.client.auth.getUser({ userId: s.k.admin.userId }), 403);
      await expectDfnsError(
        () => userSession.client.auth.createUser({ body: { email: uniqueEmail('nope'), kind: 'CustomerEmployee' } }),
        403,
      );
      await expectDfnsError(() => userSession.client.auth.deactivateUser({ userId: s.k.admin.userId }), 403);
      await expectDfnsError(() => userSession.client.auth.archiveUser({ userId: s.k.admin.userId }), 403);
      assert.equal(await snapshotUsers(s.client), before);
    });

    test('the registration code and the temporary token work once', async () => {
      // the code again
      const code = await waitRegistrationCode(s.k.dataDir, email);
      await expectDfnsError(
        () =>
          BaseAuthApi.createUserRegistrationChallenge(
            { orgId: s.k.admin.orgId, username: email, registrationCode: code },
            { baseUrl: s.k.baseUrl },
          ),
        401,
      );
      // the temporary token again (the user is registered now)
      const r = await raw(s.k.baseUrl, {
        method: 'POST',
        path: '/auth/registration',
        token: reg.challenge.temporaryAuthenticationToken,
        body: { firstFactorCredential: { credentialKind: 'Key', credentialInfo: { credId: 'x', clientData: 'x', attestationData: 'x' } } },
      });
      assert.ok([400, 401].includes(r.status), `reused temporary token: ${r.status} ${r.text}`);
      assert.equal(typeof r.json?.error?.message, 'string');
    });

    test('deactivating the user ends its session; it cannot log in until reactivated', async () => {
      await s.client.auth.deactivateUser({ userId: created.userId });
      // its existing token is dead (401, not 403)
      const r = await raw(s.k.baseUrl, { path: '/auth/users', token: userSession.token });
      assert.equal(r.status, 401, `deactivated user's token on GET /auth/users: ${r.status} ${r.text}`);
      // and it cannot log in
      const creds = { orgId: s.k.admin.orgId, username: email, credId: reg.credId, privateKey: reg.privateKey };
      assert.equal(await loginStatus(s.k.baseUrl, creds), 401, 'login of a deactivated user');
      await assert.rejects(() => sdkLogin(s.k.baseUrl, creds), DfnsError);
      await s.client.auth.activateUser({ userId: created.userId });
      userSession = await sdkLogin(s.k.baseUrl, {
        orgId: s.k.admin.orgId,
        username: email,
        credId: reg.credId,
        privateKey: reg.privateKey,
      });
      assert.ok(userSession.token);
    });

    test('archiving the user kills its session and its login', async () => {
      await s.client.auth.archiveUser({ userId: created.userId });
      const r = await raw(s.k.baseUrl, { path: '/auth/users', token: userSession.token });
      assert.equal(r.status, 401, `archived user's token: ${r.status} ${r.text}`);
      const creds = { orgId: s.k.admin.orgId, username: email, credId: reg.credId, privateKey: reg.privateKey };
      assert.equal(await loginStatus(s.k.baseUrl, creds), 401, 'login of an archived user');
      await assert.rejects(() => sdkLogin(s.k.baseUrl, creds), DfnsError);
    });
  });

  test('resending a registration code (PUT /auth/registration/code) issues a new working code', async () => {
    const email = uniqueEmail('resend');
    const u = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const first = await waitRegistrationCode(s.k.dataDir, email);
    const r = await raw(s.k.baseUrl, {
      method: 'PUT',
      path: '/auth/registration/code',
      body: { orgId: s.k.admin.orgId, username: email },
    });
    assert.equal(r.status, 200, r.text);
    const second = await waitRegistrationCode(s.k.dataDir, email, { notIn: [first] });
    assert.notEqual(second, first);
    const reg = await registerUser(s.k, email, { code: second });
    assert.equal(reg.response.user.id, u.userId);
    // unknown user: same answer, no mail
    const r2 = await raw(s.k.baseUrl, {
      method: 'PUT',
      path: '/auth/registration/code',
      body: { orgId: s.k.admin.orgId, username: 'nobody-at-all@example.com' },
    });
    assert.equal(r2.status, 200, r2.text);
  });

  test('the user action challenge has the SDK UserActionChallenge shape', async () => {
    const { actionChallenge } = await import('./lib/harness.mjs');
    const ch = await actionChallenge(s.k.baseUrl, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
    assert.equal(typeof ch.challenge, 'string');
    assert.equal(typeof ch.challengeIdentifier, 'string');
    assert.ok(ch.allowCredentials.key.some((c) => c.id === s.k.admin.credId && c.type === 'public-key'));
    assert.ok(Array.isArray(ch.allowCredentials.webauthn));
    for (const k of ch.supportedCredentialKinds) {
      assert.ok(['Fido2', 'Key', 'Password', 'Totp', 'RecoveryKey', 'PasswordProtectedKey'].includes(k.kind), k.kind);
      assert.ok(['first', 'second', 'either'].includes(k.factor), k.factor);
      assert.equal(typeof k.requiresSecondFactor, 'boolean');
    }
    assert.ok(['none', 'indirect', 'direct', 'enterprise'].includes(ch.attestation));
    assert.equal(typeof ch.externalAuthenticationUrl, 'string');
  });

  test('/openapi.json lists every implemented endpoint', async () => {
    const r = await raw(s.k.baseUrl, { path: '/openapi.json' });
    assert.equal(r.status, 200);
    const paths = r.json.paths;
    const want = {
      '/auth/login/init': ['post'],
      '/auth/login': ['post'],
      '/auth/logout': ['put'],
      '/auth/action/init': ['post'],
      '/auth/action': ['post'],
      '/auth/registration/init': ['post'],
      '/auth/registration': ['post'],
      '/auth/registration/code': ['put'],
      '/auth/users': ['get', 'post'],
      '/auth/users/{userId}': ['get', 'put', 'delete'],
      '/auth/users/{userId}/activate': ['put'],
      '/auth/users/{userId}/deactivate': ['put'],
    };
    for (const [p, methods] of Object.entries(want)) {
      assert.ok(paths[p], `openapi.json lacks ${p}`);
      for (const m of methods) assert.ok(paths[p][m], `openapi.json lacks ${m.toUpperCase()} ${p}`);
    }
  });

  test('unknown routes, out-of-scope areas and wrong methods answer with the JSON error shape', async () => {
    for (const p of ['/nope', '/staking', '/swaps', '/exchanges', '/auth/users/x/y/z']) {
      const r = await raw(s.k.baseUrl, { path: p, token: s.token });
      assert.ok([404, 501].includes(r.status), `GET ${p}: ${r.status}`);
      assert.equal(typeof r.json?.error?.message, 'string', `GET ${p}: ${r.text}`);
    }
    const r = await raw(s.k.baseUrl, { method: 'PATCH', path: '/auth/users', token: s.token });
    assert.ok([404, 405].includes(r.status), `PATCH /auth/users: ${r.status}`);
    assert.equal(typeof r.json?.error?.message, 'string');
  });

  test('a second SDK client built from the same token works (stateless client)', async () => {
    const c2 = new DfnsApiClient({ baseUrl: s.k.baseUrl, orgId: s.k.admin.orgId, authToken: s.token, signer: s.signer });
    const a = await c2.auth.listUsers({ query: { limit: 1 } });
    assert.equal(a.items.length, 1);
  });
});
