// Abuse cases. Each one also asserts that NOTHING CHANGED: the full user list (every field of
// every user) is identical before and after.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';

import {
  AsymmetricKeySigner,
  BaseAuthApi,
  DfnsApiClient,
  DfnsError,
  actionChallenge,
  expectDfnsError,
  keyAssertion,
  listAllUsers,
  newKeyPair,
  payloadOf,
  raw,
  registerUser,
  sdkLogin,
  signedRaw,
  snapshotUsers,
  startAndLogin,
  uniqueEmail,
  userAction,
  waitRegistrationCode,
} from './lib/harness.mjs';

/** Asserts the JSON error shape {"error":{"message":…}} and the status. */
function assertError(r, status, what) {
  assert.equal(r.status, status, `${what}: expected HTTP ${status}, got ${r.status} ${r.text.slice(0, 300)}`);
  assert.equal(typeof r.json?.error?.message, 'string', `${what}: error body not {"error":{"message"}}: ${r.text.slice(0, 300)}`);
}

describe('abuse cases (nothing may change)', () => {
  let s;
  let base;
  let victim; // an existing user the attacks aim at

  /** Runs `fn` and asserts the user table is byte-for-byte the same afterwards. */
  async function unchanged(fn) {
    const before = await snapshotUsers(s.client);
    await fn();
    const after = await snapshotUsers(s.client);
    assert.equal(after, before, 'the user list changed');
  }

  before(async () => {
    s = await startAndLogin();
    base = s.k.baseUrl;
    victim = await s.client.auth.createUser({ body: { email: uniqueEmail('victim'), kind: 'CustomerEmployee' } });
  });
  after(async () => {
    await s?.k.stop();
  });

  test('control: a hand-made user action + fetch works (so the refusals below mean something)', async () => {
    const email = uniqueEmail('control');
    const r = await signedRaw(base, s.token, s.signer, {
      method: 'POST',
      path: '/auth/users',
      body: { email, kind: 'CustomerEmployee' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.username, email);
  });

  test('replayed user action: the second use is 401 and only one user is created', async () => {
    const email = uniqueEmail('replay');
    const body = JSON.stringify({ email, kind: 'CustomerEmployee' });
    const before = await listAllUsers(s.client);
    const ua = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body });
    const first = await raw(base, { method: 'POST', path: '/auth/users', token: s.token, userAction: ua, body });
    assert.equal(first.status, 200, first.text);
    await unchanged(async () => {
      const second = await raw(base, { method: 'POST', path: '/auth/users', token: s.token, userAction: ua, body });
      assertError(second, 401, 'replayed user action');
      // replay on another, state-changing, endpoint is no better
      const third = await raw(base, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}/deactivate`,
        token: s.token,
        userAction: ua,
      });
      assertError(third, 401, 'user action replayed on another endpoint');
    });
    const afterList = await listAllUsers(s.client);
    assert.equal(afterList.length, before.length + 1);
    assert.equal(afterList.filter((u) => u.username === email).length, 1);
  });

  test('body changed after signing: 401, neither body takes effect', async () => {
    const signedEmail = uniqueEmail('signed');
    const sentEmail = uniqueEmail('sent');
    const signedBody = JSON.stringify({ email: signedEmail, kind: 'CustomerEmployee' });
    await unchanged(async () => {
      const ua = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body: signedBody });
      const r = await raw(base, {
        method: 'POST',
        path: '/auth/users',
        token: s.token,
        userAction: ua,
        body: JSON.stringify({ email: sentEmail, kind: 'CustomerEmployee' }),
      });
      assertError(r, 401, 'changed body');
      // an extra field appended
      const ua2 = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body: signedBody });
      const r2 = await raw(base, {
        method: 'POST',
        path: '/auth/users',
        token: s.token,
        userAction: ua2,
        body: JSON.stringify({ email: signedEmail, kind: 'CustomerEmployee', isSSORequired: true }),
      });
      assertError(r2, 401, 'body with an extra field');
      // signed an update to false, sent true
      const up = `/auth/users/${victim.userId}`;
      const ua3 = await userAction(base, s.token, s.signer, { method: 'PUT', path: up, body: '{"isSSORequired":false}' });
      const r3 = await raw(base, { method: 'PUT', path: up, token: s.token, userAction: ua3, body: '{"isSSORequired":true}' });
      assertError(r3, 401, 'update with a changed body');
    });
  });

  test('action signed for another path or method: 401, nothing changes', async () => {
    const other = await s.client.auth.createUser({ body: { email: uniqueEmail('other'), kind: 'CustomerEmployee' } });
    await unchanged(async () => {
      // signed: deactivate `other`; sent: deactivate `victim`
      const ua = await userAction(base, s.token, s.signer, {
        method: 'PUT',
        path: `/auth/users/${other.userId}/deactivate`,
        body: '{}',
      });
      const r = await raw(base, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}/deactivate`,
        token: s.token,
        userAction: ua,
        body: '{}',
      });
      assertError(r, 401, 'user action for another user id');
      // signed: activate; sent: deactivate (same user)
      const ua2 = await userAction(base, s.token, s.signer, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}/activate`,
        body: '{}',
      });
      const r2 = await raw(base, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}/deactivate`,
        token: s.token,
        userAction: ua2,
        body: '{}',
      });
      assertError(r2, 401, 'user action for another sub-path');
      // signed: PUT /auth/users/:id ; sent: DELETE /auth/users/:id (method differs)
      const ua3 = await userAction(base, s.token, s.signer, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}`,
        body: '{}',
      });
      const r3 = await raw(base, {
        method: 'DELETE',
        path: `/auth/users/${victim.userId}`,
        token: s.token,
        userAction: ua3,
        body: '{}',
      });
      assertError(r3, 401, 'user action for another method');
      // path with a trailing slash / different case is not the signed path either
      const ua4 = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users/', body: '{}' });
      const r4 = await raw(base, {
        method: 'POST',
        path: '/auth/users',
        token: s.token,
        userAction: ua4,
        body: '{}',
      });
      assert.ok([400, 401].includes(r4.status), `user action for '/auth/users/' used on '/auth/users': ${r4.status}`);
    });
    // the legit use of the first action still works afterwards? (it was never spent on `other`)
    // — not required; just make sure `other` was untouched
    assert.equal((await s.client.auth.getUser({ userId: other.userId })).isActive, true);
  });

  test('action signed with a key that is not the credential (same credId): 401, nothing changes', async () => {
    const wrong = newKeyPair();
    await unchanged(async () => {
      // the SDK's own signer, with the admin's credId but another private key
      const badSigner = new AsymmetricKeySigner({ credId: s.k.admin.credId, privateKey: wrong.privateKey });
      const badClient = new DfnsApiClient({
        baseUrl: base,
        orgId: s.k.admin.orgId,
        authToken: s.token,
        signer: badSigner,
      });
      await expectDfnsError(
        () => badClient.auth.createUser({ body: { email: uniqueEmail('badkey'), kind: 'CustomerEmployee' } }),
        401,
      );
      await expectDfnsError(() => badClient.auth.deactivateUser({ userId: victim.userId }), 401);
      await expectDfnsError(() => badClient.auth.archiveUser({ userId: victim.userId }), 401);

      // hand-built: a credId the server never issued, signed with some key
      const ch = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
      await expectDfnsError(
        () =>
          BaseAuthApi.signUserActionChallenge(
            {
              challengeIdentifier: ch.challengeIdentifier,
              firstFactor: keyAssertion(ch, { credId: crypto.randomBytes(32).toString('base64url'), privateKey: wrong.privateKey }),
            },
            { baseUrl: base, authToken: s.token },
          ),
        401,
      );
      // hand-built: right key, but it signs another challenge than the one identified
      const ch2 = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
      await expectDfnsError(
        () =>
          BaseAuthApi.signUserActionChallenge(
            {
              challengeIdentifier: ch2.challengeIdentifier,
              firstFactor: keyAssertion(ch, { credId: s.k.admin.credId, privateKey: s.k.admin.privateKey }),
            },
            { baseUrl: base, authToken: s.token },
          ),
        401,
      );
      // hand-built: valid signature over clientData whose type is not key.get
      const ch3 = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
      const cd = Buffer.from(JSON.stringify({ type: 'key.create', challenge: ch3.challenge }));
      await expectDfnsError(
        () =>
          BaseAuthApi.signUserActionChallenge(
            {
              challengeIdentifier: ch3.challengeIdentifier,
              firstFactor: {
                kind: 'Key',
                credentialAssertion: {
                  credId: s.k.admin.credId,
                  clientData: cd.toString('base64url'),
                  signature: crypto.sign(undefined, cd, s.k.admin.privateKey).toString('base64url'),
                },
              },
            },
            { baseUrl: base, authToken: s.token },
          ),
        401,
      );
      // hand-built: garbage signature bytes
      const ch4 = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
      const a4 = keyAssertion(ch4, s.k.admin);
      a4.credentialAssertion.signature = crypto.randomBytes(70).toString('base64url');
      const r4 = await raw(base, {
        method: 'POST',
        path: '/auth/action',
        token: s.token,
        body: { challengeIdentifier: ch4.challengeIdentifier, firstFactor: a4 },
      });
      assert.ok([400, 401].includes(r4.status), `garbage signature: ${r4.status} ${r4.text}`);
    });
  });

  test("another user's credential or token cannot sign the admin's action", async () => {
    // a registered, logged-in second user (no permissions)
    const email = uniqueEmail('mallory');
    await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const reg = await registerUser(s.k, email);
    const mallory = await sdkLogin(base, { orgId: s.k.admin.orgId, username: email, credId: reg.credId, privateKey: reg.privateKey });
    await unchanged(async () => {
      // admin's challenge, signed by mallory's credential, exchanged with the admin's token
      const ch = await actionChallenge(base, s.token, { method: 'PUT', path: `/auth/users/${victim.userId}/deactivate`, body: '{}' });
      await expectDfnsError(
        () =>
          BaseAuthApi.signUserActionChallenge(
            { challengeIdentifier: ch.challengeIdentifier, firstFactor: keyAssertion(ch, { credId: reg.credId, privateKey: reg.privateKey }) },
            { baseUrl: base, authToken: s.token },
          ),
        401,
      );
      // admin's challenge, signed by the admin key, but exchanged with mallory's token
      const ch2 = await actionChallenge(base, s.token, { method: 'PUT', path: `/auth/users/${victim.userId}/deactivate`, body: '{}' });
      await expectDfnsError(
        () =>
          BaseAuthApi.signUserActionChallenge(
            { challengeIdentifier: ch2.challengeIdentifier, firstFactor: keyAssertion(ch2, s.k.admin) },
            { baseUrl: base, authToken: mallory.token },
          ),
        401,
      );
      // a valid admin user action presented with mallory's bearer token
      const ua = await userAction(base, s.token, s.signer, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}/deactivate`,
        body: '{}',
      });
      const r = await raw(base, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}/deactivate`,
        token: mallory.token,
        userAction: ua,
        body: '{}',
      });
      assert.ok([401, 403].includes(r.status), `admin's user action with mallory's token: ${r.status} ${r.text}`);
      assert.equal(typeof r.json?.error?.message, 'string');
      // the registration temporary token is not an access token
      const r2 = await raw(base, { path: '/auth/users', token: reg.challenge.temporaryAuthenticationToken });
      assertError(r2, 401, 'registration token used as a bearer');
      // a user action token is not an access token
      const r3 = await raw(base, { path: '/auth/users', token: ua });
      assertError(r3, 401, 'user action token used as a bearer');
    });
  });

  test('malformed JSON: 400 everywhere, with the JSON error shape, nothing changes', async () => {
    await unchanged(async () => {
      const bad = '{"email": "x@example.com", "kind": ';
      // signed malformed body: the signature is right, the body is not JSON
      const ua = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body: bad });
      assertError(await raw(base, { method: 'POST', path: '/auth/users', token: s.token, userAction: ua, body: bad }), 400, 'signed malformed createUser');
      for (const p of ['/auth/login/init', '/auth/login', '/auth/registration/init']) {
        assertError(await raw(base, { method: 'POST', path: p, body: bad }), 400, `malformed ${p}`);
      }
      assertError(await raw(base, { method: 'POST', path: '/auth/action/init', token: s.token, body: bad }), 400, 'malformed action/init');
      assertError(await raw(base, { method: 'POST', path: '/auth/action', token: s.token, body: bad }), 400, 'malformed action');
      assertError(await raw(base, { method: 'POST', path: '/auth/login/init', body: '' }), 400, 'empty login/init body');
      assertError(await raw(base, { method: 'POST', path: '/auth/login/init', body: '[1,2]' }), 400, 'array body');
      assertError(await raw(base, { method: 'POST', path: '/auth/login/init', body: '\u00ff\u00fe' }), 400, 'non-UTF-8-ish body');
    });
  });

  test('logged-out token: every call is 401, other sessions live on, nothing changes', async () => {
    const sess = await sdkLogin(base, s.k.admin);
    // a user action minted before the logout must die with the session
    const early = await userAction(base, sess.token, sess.signer, {
      method: 'PUT',
      path: `/auth/users/${victim.userId}/deactivate`,
      body: '{}',
    });
    const out = await BaseAuthApi.userLogout({ baseUrl: base, authToken: sess.token });
    assert.equal(typeof out, 'object');
    await unchanged(async () => {
      await expectDfnsError(() => sess.client.auth.listUsers(), 401);
      await expectDfnsError(() => sess.client.auth.getUser({ userId: victim.userId }), 401);
      await expectDfnsError(
        () => sess.client.auth.createUser({ body: { email: uniqueEmail('after-logout'), kind: 'CustomerEmployee' } }),
        401,
      );
      await expectDfnsError(() => actionChallenge(base, sess.token, { method: 'POST', path: '/auth/users', body: '{}' }), 401);
      const r = await raw(base, {
        method: 'PUT',
        path: `/auth/users/${victim.userId}/deactivate`,
        token: sess.token,
        userAction: early,
        body: '{}',
      });
      assertError(r, 401, 'user action minted before logout');
      await expectDfnsError(() => BaseAuthApi.userLogout({ baseUrl: base, authToken: sess.token }), 401);
    });
    // the main session was not logged out
    await s.client.auth.listUsers({ query: { limit: 1 } });
  });

  test('wrong types and unknown enum values: 400, nothing changes', async () => {
    await unchanged(async () => {
      const bodies = [
        { email: uniqueEmail('bogus'), kind: 'Bogus' },
        { email: uniqueEmail('lower'), kind: 'customeremployee' },
        { email: 42, kind: 'CustomerEmployee' },
        { email: [uniqueEmail('arr')], kind: 'CustomerEmployee' },
        { email: uniqueEmail('nokind') },
        { kind: 'CustomerEmployee' },
        { email: uniqueEmail('sso'), kind: 'CustomerEmployee', isSSORequired: 'yes' },
        { email: uniqueEmail('ext'), kind: 'CustomerEmployee', externalId: 7 },
        { email: 'not-an-email', kind: 'CustomerEmployee' },
        { email: '', kind: 'CustomerEmployee' },
        { email: null, kind: 'CustomerEmployee' },
      ];
      for (const body of bodies) {
        // through the SDK, as a user would make the mistake
        await expectDfnsError(() => s.client.auth.createUser({ body }), 400).catch((e) => {
          throw new Error(`createUser ${JSON.stringify(body)}: ${e.message}`);
        });
      }
      // top-level type wrong (signed)
      for (const body of ['"a string"', '42', 'null', '[]']) {
        const r = await signedRaw(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body });
        assertError(r, 400, `createUser body ${body}`);
      }
      await expectDfnsError(() => s.client.auth.updateUser({ userId: victim.userId, body: { isSSORequired: 'true' } }), 400);
      await expectDfnsError(() => s.client.auth.updateUser({ userId: victim.userId, body: {} }), 400);
      // query strings
      for (const q of ['limit=abc', 'limit=-1', 'limit=0', 'kind=Bogus', 'limit=1.5']) {
        assertError(await raw(base, { path: `/auth/users?${q}`, token: s.token }), 400, `GET /auth/users?${q}`);
      }
      assertError(await raw(base, { path: '/auth/users?paginationToken=garbage!!', token: s.token }), 400, 'garbage paginationToken');
      // the bootstrap endpoints
      const bootstrap = [
        ['/auth/login/init', { orgId: 1, username: s.k.admin.username }],
        ['/auth/login/init', { orgId: s.k.admin.orgId, username: ['a'] }],
        ['/auth/login/init', {}],
        ['/auth/login', { challengeIdentifier: 5, firstFactor: {} }],
        ['/auth/login', { challengeIdentifier: 'x' }],
        ['/auth/registration/init', { orgId: s.k.admin.orgId, username: victim.username, registrationCode: 1234 }],
        ['/auth/registration/init', { orgId: s.k.admin.orgId }],
      ];
      for (const [p, body] of bootstrap) {
        assertError(await raw(base, { method: 'POST', path: p, body }), 400, `POST ${p} ${JSON.stringify(body)}`);
      }
      assertError(
        await raw(base, { method: 'PUT', path: '/auth/registration/code', body: { orgId: s.k.admin.orgId, username: 7 } }),
        400,
        'PUT /auth/registration/code with a numeric username',
      );
      // a user action challenge for an unknown method
      const r = await raw(base, {
        method: 'POST',
        path: '/auth/action/init',
        token: s.token,
        body: { userActionPayload: '{}', userActionHttpMethod: 'BREW', userActionHttpPath: '/auth/users', userActionServerKind: 'Api' },
      });
      assertError(r, 400, 'action/init with userActionHttpMethod BREW');
      const r2 = await raw(base, {
        method: 'POST',
        path: '/auth/action',
        token: s.token,
        body: { challengeIdentifier: 'x', firstFactor: { kind: 'Bogus', credentialAssertion: {} } },
      });
      assert.ok([400, 401].includes(r2.status), `action with firstFactor.kind Bogus: ${r2.status} ${r2.text}`);
    });
  });

  test('limit above the maximum is refused or capped', async () => {
    const r = await raw(base, { path: '/auth/users?limit=100000', token: s.token });
    if (r.status === 200) assert.ok(r.json.items.length <= 100);
    else assertError(r, 400, 'limit=100000');
  });

  test('over-long strings: 400, nothing changes', async () => {
    await unchanged(async () => {
      const long = (n) => 'a'.repeat(n);
      const bodies = [
        { email: `${long(300)}@example.com`, kind: 'CustomerEmployee' },
        { email: uniqueEmail('ext'), kind: 'CustomerEmployee', externalId: long(129) },
        { email: uniqueEmail('pk'), kind: 'CustomerEmployee', publicKey: long(5000) },
        { email: `${long(65)}@example.com`, kind: 'CustomerEmployee' }, // local part > 64
      ];
      for (const body of bodies) {
        await expectDfnsError(() => s.client.auth.createUser({ body }), 400).catch((e) => {
          throw new Error(`createUser with ${Object.keys(body).join(',')} over-long: ${e.message}`);
        });
      }
      assertError(await raw(base, { path: `/auth/users?paginationToken=${long(600)}`, token: s.token }), 400, 'long paginationToken');
      const longId = await raw(base, { path: `/auth/users/us-${long(600)}`, token: s.token });
      assert.ok([400, 404].includes(longId.status), `GET a 600-char user id: ${longId.status}`);
      assert.equal(typeof longId.json?.error?.message, 'string');
      assertError(
        await raw(base, { method: 'POST', path: '/auth/login/init', body: { orgId: s.k.admin.orgId, username: long(10_000) } }),
        400,
        'login/init with a 10 000-char username',
      );
      assertError(
        await raw(base, {
          method: 'POST',
          path: '/auth/registration/init',
          body: { orgId: s.k.admin.orgId, username: long(10_000), registrationCode: long(10_000) },
        }),
        400,
        'registration/init with 10 000-char fields',
      );
    });
  });

  test('oversized body: 413 with the JSON error shape, nothing changes', async () => {
    await unchanged(async () => {
      const huge = JSON.stringify({ email: uniqueEmail('huge'), kind: 'CustomerEmployee', externalId: 'x'.repeat(2 * 1024 * 1024) });
      // raw, with a valid user action for a small body: the size check comes first
      const ua = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body: '{}' });
      assertError(await raw(base, { method: 'POST', path: '/auth/users', token: s.token, userAction: ua, body: huge }), 413, 'oversized createUser');
      // the bootstrap endpoints too
      assertError(await raw(base, { method: 'POST', path: '/auth/action/init', token: s.token, body: huge }), 413, 'oversized action/init');
      assertError(await raw(base, { method: 'POST', path: '/auth/login/init', body: huge }), 413, 'oversized login/init');
      assertError(await raw(base, { method: 'POST', path: '/auth/registration/init', body: huge }), 413, 'oversized registration/init');
      // just over the limit
      const justOver = JSON.stringify({ email: uniqueEmail('over'), kind: 'CustomerEmployee', externalId: 'x'.repeat(1024 * 1024) });
      assertError(await raw(base, { method: 'POST', path: '/auth/login/init', body: justOver }), 413, 'login/init just over 1 MiB');
    });
  });

  test('oversized body through the SDK: DfnsError 413, and the next SDK call still works', async () => {
    // The server answers 413 before reading the whole body and then closes the connection.
    // Unless that 413 says `Connection: close`, a keep-alive client (the SDK: cross-fetch ->
    // node-fetch 2 on Node's keep-alive global agent) puts the socket back in its pool and
    // its NEXT request dies with EPIPE/ECONNRESET. node-fetch 2 can even raise that as an
    // uncaught 'error' event: catch those here so that they fail this test, not the file.
    const stray = [];
    const onUncaught = (e) => stray.push(e);
    process.prependListener('uncaughtException', onUncaught);
    const outcomes = [];
    try {
      await unchanged(async () => {
        const body = { email: uniqueEmail('huge'), kind: 'CustomerEmployee', externalId: 'x'.repeat(2 * 1024 * 1024) };
        for (let i = 0; i < 3; i++) {
          try {
            await s.client.auth.createUser({ body });
            outcomes.push('createUser(2 MiB): 200');
          } catch (e) {
            outcomes.push(`createUser(2 MiB): ${e instanceof DfnsError ? e.httpStatus : e.code || e.message}`);
          }
          try {
            await s.client.auth.listUsers({ query: { limit: 1 } });
            outcomes.push('listUsers: 200');
          } catch (e) {
            outcomes.push(`listUsers: ${e instanceof DfnsError ? e.httpStatus : e.code || e.message}`);
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      });
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
    assert.deepEqual(
      outcomes,
      Array(3).fill(['createUser(2 MiB): 413', 'listUsers: 200']).flat(),
      `uncaught socket errors: ${stray.map((e) => e.code || e.message).join(', ') || 'none'}`,
    );
    assert.deepEqual(stray.map((e) => e.code || e.message), [], 'uncaught socket errors after a 413');
  });

  test('a 413 that closes the connection says so (Connection: close)', async () => {
    const sock = net.connect(s.k.port, '127.0.0.1');
    let resp = '';
    sock.on('data', (d) => {
      resp += d;
    });
    sock.on('error', () => {});
    const closed = new Promise((r) => sock.on('close', r));
    const body = 'x'.repeat(2 * 1024 * 1024);
    sock.write(
      `POST /auth/login/init HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n`,
    );
    sock.write(body);
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
    sock.destroy();
    const head = resp.split('\r\n\r\n')[0];
    assert.match(head, /^HTTP\/1\.1 413 /, `response: ${JSON.stringify(resp.slice(0, 300))}`);
    assert.match(head, /\r\nconnection: close\r?$/im, `413 response without Connection: close: ${JSON.stringify(head)}`);
  });

  test('missing or garbage Authorization: 401, nothing changes', async () => {
    await unchanged(async () => {
      const forged = (() => {
        // the real token with its payload re-signed by nobody: flip a payload character
        const [h, p, sig] = s.token.split('.');
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
        claims.sub = victim.userId;
        return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
      })();
      const algNone = (() => {
        const [, p] = s.token.split('.');
        return `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
      })();
      const variants = [
        { name: 'none', headers: {} },
        { name: 'empty', headers: { authorization: '' } },
        { name: 'Bearer only', headers: { authorization: 'Bearer ' } },
        { name: 'garbage', headers: { authorization: 'Bearer garbage' } },
        { name: 'Basic', headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } },
        { name: 'token without Bearer', headers: { authorization: s.token } },
        { name: 'forged payload', headers: { authorization: `Bearer ${forged}` } },
        { name: 'alg none', headers: { authorization: `Bearer ${algNone}` } },
        { name: 'truncated signature', headers: { authorization: `Bearer ${s.token.slice(0, -4)}` } },
      ];
      for (const v of variants) {
        assertError(await raw(base, { path: '/auth/users', headers: v.headers }), 401, `GET /auth/users, Authorization ${v.name}`);
        assertError(
          await raw(base, { path: `/auth/users/${victim.userId}`, headers: v.headers }),
          401,
          `GET /auth/users/:id, Authorization ${v.name}`,
        );
        assertError(
          await raw(base, {
            method: 'POST',
            path: '/auth/users',
            headers: { ...v.headers, 'x-dfns-useraction': 'garbage' },
            body: { email: uniqueEmail('noauth'), kind: 'CustomerEmployee' },
          }),
          401,
          `POST /auth/users, Authorization ${v.name}`,
        );
        assertError(
          await raw(base, {
            method: 'POST',
            path: '/auth/action/init',
            headers: v.headers,
            body: { userActionPayload: '{}', userActionHttpMethod: 'POST', userActionHttpPath: '/auth/users', userActionServerKind: 'Api' },
          }),
          401,
          `POST /auth/action/init, Authorization ${v.name}`,
        );
        assertError(await raw(base, { method: 'PUT', path: '/auth/logout', headers: v.headers }), 401, `PUT /auth/logout, Authorization ${v.name}`);
      }
      // a good bearer but no / garbage x-dfns-useraction on a write
      const body = { email: uniqueEmail('noua'), kind: 'CustomerEmployee' };
      assertError(await raw(base, { method: 'POST', path: '/auth/users', token: s.token, body }), 401, 'write without x-dfns-useraction');
      assertError(await raw(base, { method: 'POST', path: '/auth/users', token: s.token, userAction: 'garbage', body }), 401, 'garbage x-dfns-useraction');
      assertError(
        await raw(base, { method: 'PUT', path: `/auth/users/${victim.userId}/deactivate`, token: s.token }),
        401,
        'deactivate without x-dfns-useraction',
      );
      assertError(
        await raw(base, { method: 'DELETE', path: `/auth/users/${victim.userId}`, token: s.token }),
        401,
        'delete without x-dfns-useraction',
      );
    });
  });

  test('reused challenges: login, user action and registration challenges work once', async () => {
    await unchanged(async () => {
      // login challenge
      const init = await BaseAuthApi.createUserLoginChallenge(
        { orgId: s.k.admin.orgId, username: s.k.admin.username },
        { baseUrl: base },
      );
      const firstFactor = await s.signer.sign(init);
      const ok = await BaseAuthApi.createUserLogin({ challengeIdentifier: init.challengeIdentifier, firstFactor }, { baseUrl: base });
      assert.equal(typeof ok.token, 'string');
      await expectDfnsError(
        () => BaseAuthApi.createUserLogin({ challengeIdentifier: init.challengeIdentifier, firstFactor }, { baseUrl: base }),
        401,
      );
      // user action challenge
      const ch = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
      const a = await s.signer.sign(ch);
      const ua = await BaseAuthApi.signUserActionChallenge({ challengeIdentifier: ch.challengeIdentifier, firstFactor: a }, { baseUrl: base, authToken: s.token });
      assert.equal(typeof ua.userAction, 'string');
      await expectDfnsError(
        () => BaseAuthApi.signUserActionChallenge({ challengeIdentifier: ch.challengeIdentifier, firstFactor: a }, { baseUrl: base, authToken: s.token }),
        401,
      );
      // a login challenge cannot be used as a user action challenge, nor the reverse
      const init2 = await BaseAuthApi.createUserLoginChallenge(
        { orgId: s.k.admin.orgId, username: s.k.admin.username },
        { baseUrl: base },
      );
      await expectDfnsError(
        () =>
          BaseAuthApi.signUserActionChallenge(
            { challengeIdentifier: init2.challengeIdentifier, firstFactor: keyAssertion(init2, s.k.admin) },
            { baseUrl: base, authToken: s.token },
          ),
        401,
      );
      const ch2 = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
      await expectDfnsError(
        () => BaseAuthApi.createUserLogin({ challengeIdentifier: ch2.challengeIdentifier, firstFactor: keyAssertion(ch2, s.k.admin) }, { baseUrl: base }),
        401,
      );
      // unknown challenge identifier
      await expectDfnsError(
        () => BaseAuthApi.createUserLogin({ challengeIdentifier: 'ch-nope', firstFactor }, { baseUrl: base }),
        401,
      );
    });
  });

  test('a wrong registration code is 401 and does not register the user', async () => {
    await unchanged(async () => {
      await expectDfnsError(
        () =>
          BaseAuthApi.createUserRegistrationChallenge(
            { orgId: s.k.admin.orgId, username: victim.username, registrationCode: 'AAAA-BBBB-CCCC' },
            { baseUrl: base },
          ),
        401,
      );
    });
    assert.equal((await s.client.auth.getUser({ userId: victim.userId })).isRegistered, false);
  });

  test('two requests racing one user action token: exactly one succeeds, one user created', async () => {
    const before = await listAllUsers(s.client);
    const email = uniqueEmail('race');
    const body = JSON.stringify({ email, kind: 'CustomerEmployee' });
    const N = 8;
    for (let round = 0; round < 3; round++) {
      const ua = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body });
      const results = await Promise.all(
        Array.from({ length: N }, () => raw(base, { method: 'POST', path: '/auth/users', token: s.token, userAction: ua, body })),
      );
      const statuses = results.map((r) => r.status).sort();
      if (round === 0) {
        assert.equal(statuses.filter((x) => x === 200).length, 1, `round ${round}: statuses ${statuses}`);
        assert.equal(statuses.filter((x) => x === 401).length, N - 1, `round ${round}: statuses ${statuses}`);
      } else {
        // later rounds: same body again, so the email now exists. Exactly one request may get
        // past the action check (then 409); all others 401.
        assert.equal(statuses.filter((x) => x === 200).length, 0, `round ${round}: statuses ${statuses}`);
        assert.ok(statuses.filter((x) => x === 409).length <= 1, `round ${round}: statuses ${statuses}`);
      }
    }
    // racing a deactivate: exactly one 200
    const target = await s.client.auth.createUser({ body: { email: uniqueEmail('race-t'), kind: 'CustomerEmployee' } });
    const p = `/auth/users/${target.userId}/deactivate`;
    const ua2 = await userAction(base, s.token, s.signer, { method: 'PUT', path: p, body: '{}' });
    const res2 = await Promise.all(
      Array.from({ length: N }, () => raw(base, { method: 'PUT', path: p, token: s.token, userAction: ua2, body: '{}' })),
    );
    const st2 = res2.map((r) => r.status).sort();
    assert.equal(st2.filter((x) => x === 200).length, 1, `deactivate race: ${st2}`);
    assert.equal(st2.filter((x) => x === 401).length, N - 1, `deactivate race: ${st2}`);

    const afterList = await listAllUsers(s.client);
    assert.equal(afterList.filter((u) => u.username === email).length, 1);
    assert.equal(afterList.length, before.length + 2);
  });

  test('concurrent createUser of one email / one externalId: one 200, the rest 409, one user', async () => {
    const before = await listAllUsers(s.client);
    const outcome = (p) => p.then(() => 200, (e) => (e instanceof DfnsError ? e.httpStatus : `${e.code || e.message}`));
    const email = uniqueEmail('same');
    const a = await Promise.all(
      Array.from({ length: 8 }, () => outcome(s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } }))),
    );
    assert.deepEqual(a.sort(), [200, 409, 409, 409, 409, 409, 409, 409], `same email: ${a}`);
    const externalId = `ext-${uniqueEmail('same-ext')}`;
    const b = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        outcome(s.client.auth.createUser({ body: { email: uniqueEmail(`ext${i}`), kind: 'CustomerEmployee', externalId } })),
      ),
    );
    assert.deepEqual(b.sort(), [200, 409, 409, 409, 409, 409, 409, 409], `same externalId: ${b}`);
    // an email differing only in case is the same user
    await expectDfnsError(() => s.client.auth.createUser({ body: { email: email.toUpperCase(), kind: 'CustomerEmployee' } }), 409);
    const after = await listAllUsers(s.client);
    assert.equal(after.length, before.length + 2);
  });

  test('a deactivated or archived invitee cannot register with its code', async () => {
    const e1 = uniqueEmail('deact-reg');
    const u1 = await s.client.auth.createUser({ body: { email: e1, kind: 'CustomerEmployee' } });
    const c1 = await waitRegistrationCode(s.k.dataDir, e1);
    await s.client.auth.deactivateUser({ userId: u1.userId });
    const e2 = uniqueEmail('arch-reg');
    const u2 = await s.client.auth.createUser({ body: { email: e2, kind: 'CustomerEmployee' } });
    const c2 = await waitRegistrationCode(s.k.dataDir, e2);
    await s.client.auth.archiveUser({ userId: u2.userId });
    await unchanged(async () => {
      for (const [email, code] of [
        [e1, c1],
        [e2, c2],
      ]) {
        await expectDfnsError(
          () =>
            BaseAuthApi.createUserRegistrationChallenge(
              { orgId: s.k.admin.orgId, username: email, registrationCode: code },
              { baseUrl: base },
            ),
          401,
        );
      }
    });
  });

  test('racing the same login challenge: exactly one token', async () => {
    const init = await BaseAuthApi.createUserLoginChallenge(
      { orgId: s.k.admin.orgId, username: s.k.admin.username },
      { baseUrl: base },
    );
    const firstFactor = await s.signer.sign(init);
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        raw(base, { method: 'POST', path: '/auth/login', body: { challengeIdentifier: init.challengeIdentifier, firstFactor } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.equal(statuses.filter((x) => x === 200).length, 1, `login race: ${statuses}`);
  });

  test('racing one user action challenge exchange: exactly one user action token', async () => {
    const ch = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
    const firstFactor = await s.signer.sign(ch);
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        raw(base, { method: 'POST', path: '/auth/action', token: s.token, body: { challengeIdentifier: ch.challengeIdentifier, firstFactor } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.equal(statuses.filter((x) => x === 200).length, 1, `action exchange race: ${statuses}`);
  });

  test('payloadOf matches what the SDK signs (sanity of the helpers)', () => {
    assert.equal(payloadOf({ a: 1 }), '{"a":1}');
    assert.equal(payloadOf(undefined), '');
    assert.ok(DfnsError);
  });
});
