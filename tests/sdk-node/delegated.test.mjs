// Delegated identity through the official SDK: a service account (holding
// Auth:Register:Delegated and Auth:Login:Delegated) creates an end user and hands its
// registration challenge to the "device", which registers a key with registerEndUser and gets
// a login token; later the service obtains a session for the end user with delegatedLogin.
// Refusals (no permission, wrong kind, taken email, unknown end user, wallets at registration
// on a server without signers) leave nothing behind. Wallets: delegated-wallets.test.mjs.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  AsymmetricKeySigner,
  DfnsApiClient,
  expectDfnsError,
  keyAttestation,
  newKeyPair,
  raw,
  registerUser,
  sdkLogin,
  startAndLogin,
  uniqueEmail,
  refused,
  newServiceAccount,
} from './lib/harness.mjs';

describe('delegated end users', () => {
  let s;
  let svc; // the service account's client
  let none; // a service account without the delegated operations

  const serviceAccount = async (name, operations) => (await newServiceAccount(s, name, { operations })).client;

  /** The device side: registers a Key for the challenge with the temporary token. */
  async function registerOnDevice(challenge, { wallets = [] } = {}) {
    const keys = newKeyPair();
    const firstFactorCredential = keyAttestation(challenge, keys, { origin: s.baseUrl });
    const device = new DfnsApiClient({ baseUrl: s.baseUrl, authToken: challenge.temporaryAuthenticationToken });
    const res = await device.auth.registerEndUser({ body: { firstFactorCredential, wallets } });
    return { res, keys, credId: firstFactorCredential.credentialInfo.credId };
  }

  before(async () => {
    s = await startAndLogin();
    svc = await serviceAccount('delegator', ['Auth:Register:Delegated', 'Auth:Login:Delegated', 'Auth:Users:Read']);
    none = await serviceAccount('bystander', ['Auth:Users:Read']);
  });

  after(async () => {
    await s?.k.stop();
  });

  test('register an end user through a service account; the device gets a working session', async () => {
    const email = uniqueEmail('enduser');
    const challenge = await svc.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser', externalId: `ext-${email}` } });
    assert.equal(challenge.user.name, email);
    assert.match(challenge.user.id, /^us-/);
    assert.equal(typeof challenge.temporaryAuthenticationToken, 'string');
    assert.ok(challenge.supportedCredentialKinds.firstFactor.includes('Key'));
    assert.ok(challenge.supportedCredentialKinds.firstFactor.includes('Fido2'));

    // The end user exists, unregistered, kind EndUser; no email was sent.
    const u = await s.client.auth.getUser({ userId: challenge.user.id });
    assert.equal(u.kind, 'EndUser');
    assert.equal(u.isRegistered, false);

    const { res, keys, credId } = await registerOnDevice(challenge);
    assert.equal(res.user.id, challenge.user.id);
    assert.equal(res.user.username, email);
    assert.equal(res.credential.kind, 'Key');
    assert.deepEqual(res.wallets, []);
    const session = res.authentication.token;
    const creds = await raw(s.baseUrl, { path: '/auth/credentials', token: session });
    assert.equal(creds.status, 200);
    assert.equal(creds.json.items.length, 1);
    assert.equal(creds.json.items[0].credentialId, credId);
    assert.equal((await s.client.auth.getUser({ userId: challenge.user.id })).isRegistered, true);

    // The end user also logs in by itself with its key.
    const own = await sdkLogin(s.baseUrl, { orgId: s.orgId, username: email, credId, privateKey: keys.privateKey });
    assert.equal(typeof own.token, 'string');

    // The temporary token registered once: a second registration is refused.
    await refused(() => registerOnDevice(challenge), 401);

    // Delegated login: the service gets a session as the end user.
    const { token } = await svc.auth.delegatedLogin({ body: { username: email } });
    const mine = await raw(s.baseUrl, { path: '/auth/credentials', token });
    assert.equal(mine.status, 200);
    assert.equal(mine.json.items[0].credentialId, credId);
  });

  test('refusals: no permission, wrong kind, bad email, taken email, unknown or non-end user, wallets', async () => {
    const email = uniqueEmail('refused');
    await refused(() => none.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser' } }), 403);
    await refused(() => svc.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'CustomerEmployee' } }), 400, 'EndUser');
    await refused(() => svc.auth.createDelegatedRegistrationChallenge({ body: { email: 'not-an-email', kind: 'EndUser' } }), 400);
    // none of these created the user
    const users = await s.client.auth.listUsers({ query: { limit: 100 } });
    assert.ok(!users.items.some((x) => x.username === email));

    // an employee's email is taken
    const employee = uniqueEmail('employee');
    await s.client.auth.createUser({ body: { email: employee, kind: 'CustomerEmployee' } });
    await refused(() => svc.auth.createDelegatedRegistrationChallenge({ body: { email: employee, kind: 'EndUser' } }), 409);
    // delegated login is for end users only, and registered ones
    await refused(() => svc.auth.delegatedLogin({ body: { username: employee } }), 404);
    await refused(() => svc.auth.delegatedLogin({ body: { username: uniqueEmail('ghost') } }), 404);
    await refused(() => none.auth.delegatedLogin({ body: { username: employee } }), 403);

    // a session as an end user never exceeds the caller: an end user holding an operation
    // the service account lacks cannot be logged into by it
    const rich = uniqueEmail('rich');
    const rc = await svc.auth.createDelegatedRegistrationChallenge({ body: { email: rich, kind: 'EndUser' } });
    await registerOnDevice(rc);
    const perm = await s.client.permissions.createPermission({ body: { name: `rich-${Date.now()}`, operations: ['Auth:Users:Create'] } });
    await s.client.permissions.createAssignment({ permissionId: perm.id, body: { identityId: rc.user.id } });
    await refused(() => svc.auth.delegatedLogin({ body: { username: rich } }), 403, 'Auth:Users:Create');

    // one challenge per new end user: asking again for an existing (even unregistered) user
    // is a conflict — the service must not get a second way into someone's registration
    const c1 = await svc.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser' } });
    await refused(() => svc.auth.delegatedLogin({ body: { username: email } }), 404);
    await refused(() => svc.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser' } }), 409);

    // wallets at registration need signers, which this server runs without: refused before
    // anything changes (delegated-wallets.test.mjs creates them); registration then works
    await refused(() => registerOnDevice(c1, { wallets: [{ network: 'KeyEdDSA' }] }), 501, 'signer cluster');
    assert.equal((await s.client.auth.getUser({ userId: c1.user.id })).isRegistered, false);
    const { res } = await registerOnDevice(c1);
    assert.equal(res.user.id, c1.user.id);
    await refused(() => registerOnDevice(c1), 401);
    // now registered: a new delegated registration for it is a conflict
    await refused(() => svc.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser' } }), 409);
  });

  test('an invited employee still registers through the normal path', async () => {
    const email = uniqueEmail('invited');
    await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const r = await registerUser(s.k, email);
    assert.equal(r.response.user.username, email);
  });
});
