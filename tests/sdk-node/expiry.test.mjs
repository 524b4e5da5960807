// Expiry: a `keyfold dev` with every TTL at its minimum (10 s, set through KEYFOLD_AUTH__*),
// one wait of 11 s, then every expired thing is refused with 401 and nothing changed.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  BaseAuthApi,
  actionChallenge,
  expectDfnsError,
  keyAssertion,
  keyAttestation,
  newKeyPair,
  raw,
  sdkLogin,
  snapshotUsers,
  startAndLogin,
  uniqueEmail,
  userAction,
  waitRegistrationCode,
} from './lib/harness.mjs';

const TTL = 10;

describe('expired challenges, user actions, tokens and registration codes', () => {
  let s;
  let base;
  const t = {}; // things minted before the wait
  let snapshot;

  before(async () => {
    s = await startAndLogin({
      env: {
        KEYFOLD_AUTH__CHALLENGE_TTL_SECS: String(TTL),
        KEYFOLD_AUTH__USER_ACTION_TTL_SECS: String(TTL),
        KEYFOLD_AUTH__TOKEN_TTL_SECS: String(TTL),
        KEYFOLD_AUTH__REGISTRATION_CODE_TTL_SECS: String(TTL),
      },
    });
    base = s.k.baseUrl;
    const started = Date.now();

    // two invited users: one will have started registration, one not
    t.emailA = uniqueEmail('expA');
    t.emailB = uniqueEmail('expB');
    t.userA = await s.client.auth.createUser({ body: { email: t.emailA, kind: 'CustomerEmployee' } });
    t.userB = await s.client.auth.createUser({ body: { email: t.emailB, kind: 'CustomerEmployee' } });
    const codeA = await waitRegistrationCode(s.k.dataDir, t.emailA);
    t.codeB = await waitRegistrationCode(s.k.dataDir, t.emailB);
    t.regChallengeA = await BaseAuthApi.createUserRegistrationChallenge(
      { orgId: s.k.admin.orgId, username: t.emailA, registrationCode: codeA },
      { baseUrl: base },
    );

    // a login challenge, signed now, submitted later
    t.loginInit = await BaseAuthApi.createUserLoginChallenge(
      { orgId: s.k.admin.orgId, username: s.k.admin.username },
      { baseUrl: base },
    );
    t.loginAssertion = await s.signer.sign(t.loginInit);

    // a user action challenge, signed now, exchanged later
    t.actionInit = await actionChallenge(base, s.token, { method: 'POST', path: '/auth/users', body: '{}' });
    t.actionAssertion = await s.signer.sign(t.actionInit);

    // a user action token, used later
    t.createBody = JSON.stringify({ email: uniqueEmail('late'), kind: 'CustomerEmployee' });
    t.ua = await userAction(base, s.token, s.signer, { method: 'POST', path: '/auth/users', body: t.createBody });

    const lastMinted = Date.now();
    snapshot = await snapshotUsers(s.client);
    // everything above was minted at or before `lastMinted`: wait out the TTL from there
    const waitMs = TTL * 1000 + 1000 - (Date.now() - lastMinted);
    if (waitMs > 0) await sleep(waitMs);
    console.log(`minted in ${lastMinted - started} ms, waited ${waitMs} ms for expiry`);
  });

  after(async () => {
    await s?.k.stop();
  });

  test('an expired access token is 401', async () => {
    const r = await raw(base, { path: '/auth/users', token: s.token });
    assert.equal(r.status, 401, r.text);
    await expectDfnsError(() => s.client.auth.listUsers(), 401);
  });

  test('an expired login challenge is 401', async () => {
    await expectDfnsError(
      () =>
        BaseAuthApi.createUserLogin(
          { challengeIdentifier: t.loginInit.challengeIdentifier, firstFactor: t.loginAssertion },
          { baseUrl: base },
        ),
      401,
    );
  });

  test('fresh login still works; expired user action challenge and token are 401, nothing changed', async () => {
    const fresh = await sdkLogin(base, s.k.admin);
    await expectDfnsError(
      () =>
        BaseAuthApi.signUserActionChallenge(
          { challengeIdentifier: t.actionInit.challengeIdentifier, firstFactor: t.actionAssertion },
          { baseUrl: base, authToken: fresh.token },
        ),
      401,
    );
    // with the original (expired) token it is 401 as well
    const r0 = await raw(base, {
      method: 'POST',
      path: '/auth/action',
      token: s.token,
      body: { challengeIdentifier: t.actionInit.challengeIdentifier, firstFactor: keyAssertion(t.actionInit, s.k.admin) },
    });
    assert.equal(r0.status, 401, r0.text);
    // the old user action, presented with a fresh session
    const r = await raw(base, { method: 'POST', path: '/auth/users', token: fresh.token, userAction: t.ua, body: t.createBody });
    assert.equal(r.status, 401, `expired user action: ${r.status} ${r.text}`);
    assert.equal(await snapshotUsers(fresh.client), snapshot);
  });

  test('an expired registration code and an expired registration token are 401', async () => {
    await expectDfnsError(
      () =>
        BaseAuthApi.createUserRegistrationChallenge(
          { orgId: s.k.admin.orgId, username: t.emailB, registrationCode: t.codeB },
          { baseUrl: base },
        ),
      401,
    );
    const keys = newKeyPair();
    await expectDfnsError(
      () =>
        BaseAuthApi.createUserRegistration(
          { firstFactorCredential: keyAttestation(t.regChallengeA, keys, { origin: base }) },
          { baseUrl: base, authToken: t.regChallengeA.temporaryAuthenticationToken },
        ),
      401,
    );
    const fresh = await sdkLogin(base, s.k.admin);
    assert.equal((await fresh.client.auth.getUser({ userId: t.userA.userId })).isRegistered, false);
    assert.equal((await fresh.client.auth.getUser({ userId: t.userB.userId })).isRegistered, false);
    assert.equal(await snapshotUsers(fresh.client), snapshot);
  });

  test('a fresh code (resend) works after the old one expired', async () => {
    const r = await raw(base, {
      method: 'PUT',
      path: '/auth/registration/code',
      body: { orgId: s.k.admin.orgId, username: t.emailB },
    });
    assert.equal(r.status, 200, r.text);
    const code = await waitRegistrationCode(s.k.dataDir, t.emailB, { notIn: [t.codeB] });
    const ch = await BaseAuthApi.createUserRegistrationChallenge(
      { orgId: s.k.admin.orgId, username: t.emailB, registrationCode: code },
      { baseUrl: base },
    );
    const res = await BaseAuthApi.createUserRegistration(
      { firstFactorCredential: keyAttestation(ch, newKeyPair(), { origin: base }) },
      { baseUrl: base, authToken: ch.temporaryAuthenticationToken },
    );
    assert.equal(res.user.id, t.userB.userId);
  });
});
