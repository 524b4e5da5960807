// Wallets delegated to end users, through the official SDK, with a real signer cluster:
// registerEndUser creates the end user's wallets on keys delegated to it; `delegateTo` at
// wallet creation does the same for an existing end user. An end user sees and signs with its
// own wallets only; nobody else — not the service that created it, not the root with every
// permission, not a service holding a session as the end user — can sign with them.
// Signatures are checked with Node's own Ed25519 verifier.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { getBase58Decoder } from '@solana/kit';

import {
  AsymmetricKeySigner,
  BaseAuthApi,
  DfnsApiClient,
  keyAttestation,
  newKeyPair,
  raw,
  signedRaw,
  startAndLogin,
  uniqueEmail,
  waitRegistrationCode,
  refused,
  ed25519Verifies,
  newServiceAccount,
} from './lib/harness.mjs';

describe('wallets delegated to end users', () => {
  let s; // the root administrator (every permission)
  let svc; // a service account that registers end users
  let alice; // { id, client, keys, credId, wallets }

  const serviceAccount = async (name, operations) => (await newServiceAccount(s, name, { operations })).client;

  /** Creates an end user through the service; the "device" registers a key with `wallets`. */
  async function endUser(wallets) {
    const email = uniqueEmail('holder');
    const challenge = await svc.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser' } });
    const keys = newKeyPair();
    const firstFactorCredential = keyAttestation(challenge, keys, { origin: s.baseUrl });
    const device = new DfnsApiClient({ baseUrl: s.baseUrl, authToken: challenge.temporaryAuthenticationToken });
    const res = await device.auth.registerEndUser({ body: { firstFactorCredential, wallets } });
    const credId = firstFactorCredential.credentialInfo.credId;
    const client = new DfnsApiClient({
      baseUrl: s.baseUrl,
      orgId: s.orgId,
      authToken: res.authentication.token,
      signer: new AsymmetricKeySigner({ credId, privateKey: keys.privateKey }),
    });
    return { id: challenge.user.id, email, client, keys, credId, res, challenge, token: res.authentication.token };
  }

  before(async () => {
    s = await startAndLogin({ signers: true });
    svc = await serviceAccount('registrar', ['Auth:Register:Delegated', 'Auth:Login:Delegated', 'Wallets:Read']);
    alice = await endUser([{ network: 'KeyEdDSA', name: 'main' }, { network: 'SolanaDevnet' }]);
  });

  after(async () => {
    await s?.k.stop();
  });

  test('registerEndUser creates the wallets, delegated to the new end user', async () => {
    const ws = alice.res.wallets;
    assert.equal(ws.length, 2);
    assert.deepEqual(ws.map((w) => w.network), ['KeyEdDSA', 'SolanaDevnet']);
    for (const w of ws) {
      assert.match(w.id, /^wa-/);
      assert.equal(w.status, 'Active');
      assert.equal(w.custodial, false);
      assert.equal(w.signingKey.delegatedTo, alice.id);
      assert.equal(w.signingKey.scheme, 'EdDSA');
      assert.equal(w.signingKey.publicKey.length, 64);
    }
    assert.equal(ws[0].name, 'main');
    // The Solana address is the key itself, in base58.
    assert.equal(ws[1].address, getBase58Decoder().decode(Buffer.from(ws[1].signingKey.publicKey, 'hex')));
    // The organization sees them, as non-custodial wallets of that end user.
    const seen = await s.client.wallets.getWallet({ walletId: ws[0].id });
    assert.equal(seen.custodial, false);
    assert.equal(seen.signingKey.delegatedTo, alice.id);
    const key = await s.client.keys.getKey({ keyId: ws[0].signingKey.id });
    assert.equal(key.custodial, false);
  });

  test('the end user lists and signs with its own wallets, and only those', async () => {
    const orgWallet = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', name: 'treasury' } });
    assert.equal(orgWallet.custodial, true);
    assert.equal(orgWallet.signingKey.delegatedTo, undefined);

    const mine = await alice.client.wallets.listWallets({});
    assert.deepEqual(mine.items.map((w) => w.id).sort(), alice.res.wallets.map((w) => w.id).sort());
    const keys = await alice.client.keys.listKeys({});
    assert.deepEqual(keys.items.map((k) => k.id).sort(), alice.res.wallets.map((w) => w.signingKey.id).sort());
    // Another identity's wallet does not exist for it.
    await refused(() => alice.client.wallets.getWallet({ walletId: orgWallet.id }), 404);
    await refused(() => alice.client.keys.getKey({ keyId: orgWallet.signingKey.id }), 404);
    await refused(
      () => alice.client.wallets.generateSignature({ walletId: orgWallet.id, body: { kind: 'Message', message: '0x01' } }),
      404,
    );

    const w = alice.res.wallets[0];
    const msg = Buffer.from('signed by its owner');
    const sig = await alice.client.wallets.generateSignature({
      walletId: w.id,
      body: { kind: 'Message', message: `0x${msg.toString('hex')}` },
    });
    assert.equal(sig.status, 'Signed');
    assert.equal(sig.requester.userId, alice.id);
    assert.ok(ed25519Verifies(w.signingKey.publicKey, msg, sig.signature.encoded));
    const again = await alice.client.wallets.getSignature({ walletId: w.id, signatureId: sig.id });
    assert.equal(again.signature.encoded, sig.signature.encoded);
    // An end user holds no other operation: it cannot create wallets or read users.
    await refused(() => alice.client.wallets.createWallet({ body: { network: 'KeyEdDSA' } }), 403);
    await refused(() => alice.client.auth.listUsers({}), 403);
  });

  test('nobody else signs with a delegated wallet: not the root, not the service, not a session as the end user', async () => {
    const w = alice.res.wallets[0];
    const before = (await alice.client.wallets.listSignatures({ walletId: w.id })).items.length;
    const body = { kind: 'Message', message: '0x74616b656f766572' };

    // The root holds every permission, and still cannot.
    await refused(() => s.client.wallets.generateSignature({ walletId: w.id, body }), 403, 'delegated');
    await refused(() => s.client.keys.generateSignature({ keyId: w.signingKey.id, body }), 403, 'delegated');
    await refused(
      () => s.client.wallets.transferAsset({ walletId: alice.res.wallets[1].id, body: { kind: 'Native', to: alice.res.wallets[1].address, amount: '1' } }),
      403,
      'delegated',
    );

    // The service can obtain a session as the end user (delegated login), but a signature
    // also needs a user action signed by the end user's own credential, which it never holds.
    const { token } = await svc.auth.delegatedLogin({ body: { username: alice.email } });
    const asAlice = await raw(s.baseUrl, { path: '/wallets', token });
    assert.equal(asAlice.status, 200);
    const svcKeys = newKeyPair();
    await refused(
      () =>
        signedRaw(s.baseUrl, token, new AsymmetricKeySigner({ credId: alice.credId, privateKey: svcKeys.privateKey }), {
          method: 'POST',
          path: `/wallets/${w.id}/signatures`,
          body,
        }),
      401,
      'does not verify',
    );

    const after = (await alice.client.wallets.listSignatures({ walletId: w.id })).items.length;
    assert.equal(after, before, 'no refused request left a signature behind');
  });

  test('delegateTo at wallet and key creation; refusals change nothing', async () => {
    const bob = await endUser([]);
    assert.deepEqual(bob.res.wallets, []);
    const w = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: bob.id, externalId: `bob-${bob.id}` } });
    assert.equal(w.custodial, false);
    assert.equal(w.signingKey.delegatedTo, bob.id);
    const k = await s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519', delegateTo: bob.id } });
    assert.equal(k.custodial, false);
    // A retry with the same externalId is the same wallet.
    const retry = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: bob.id, externalId: `bob-${bob.id}` } });
    assert.equal(retry.id, w.id);
    // ... but not a request for another owner: a custodial wallet, or someone else's.
    await refused(() => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', externalId: `bob-${bob.id}` } }), 409);
    await refused(
      () => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: alice.id, externalId: `bob-${bob.id}` } }),
      409,
    );
    // The organization cannot archive an end user's key (it would lock them out).
    await refused(() => s.client.keys.deleteKey({ keyId: k.id }), 403, 'delegated');

    const bobs = await bob.client.wallets.listWallets({});
    assert.deepEqual(bobs.items.map((x) => x.id), [w.id]);
    assert.ok(!(await bob.client.wallets.getWallet({ walletId: w.id })).custodial);
    await refused(() => bob.client.wallets.getWallet({ walletId: alice.res.wallets[0].id }), 404);
    const msg = Buffer.from('bob');
    const sig = await bob.client.keys.generateSignature({ keyId: k.id, body: { kind: 'Message', message: `0x${msg.toString('hex')}` } });
    assert.ok(ed25519Verifies(k.publicKey, msg, sig.signature.encoded));
    // Alice cannot use Bob's key.
    await refused(() => alice.client.keys.generateSignature({ keyId: k.id, body: { kind: 'Message', message: '0x01' } }), 404);

    // Only an active end user of this organization can receive a key.
    const countBefore = (await s.client.wallets.listWallets({ query: { limit: 100 } })).items.length;
    const employee = uniqueEmail('employee');
    const u = await s.client.auth.createUser({ body: { email: employee, kind: 'CustomerEmployee' } });
    await refused(() => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: u.userId } }), 400, 'delegateTo');
    await refused(() => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: 'us-0000000000000000000000000' } }), 400, 'delegateTo');
    await refused(() => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: 'nonsense' } }), 400, 'delegateTo');
    await refused(() => s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519', delegateTo: u.userId } }), 400, 'delegateTo');
    await refused(() => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true, delegateTo: bob.id } }), 400, 'delayDelegation');
    // a reused key cannot change hands
    await refused(
      () => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: bob.id, signingKey: { id: alice.res.wallets[0].signingKey.id } } }),
      400,
      'delegateTo',
    );
    await s.client.auth.deactivateUser({ userId: bob.id });
    await refused(() => s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delegateTo: bob.id } }), 400, 'delegateTo');
    await s.client.auth.activateUser({ userId: bob.id });
    const countAfter = (await s.client.wallets.listWallets({ query: { limit: 100 } })).items.length;
    assert.equal(countAfter, countBefore, 'refused creations left no wallet');
  });

  test('delayDelegation: nobody signs until the wallet is delegated, then only its end user; delegation is final', async () => {
    const carol = await endUser([]);
    const dave = await endUser([]);
    const w = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true } });
    assert.equal(w.custodial, false, 'never the organization\'s');
    assert.equal(w.signingKey.delegatedTo, undefined);
    const body = { kind: 'Message', message: '0x70656e64696e67' };
    await refused(() => s.client.wallets.generateSignature({ walletId: w.id, body }), 403, 'awaits delegation');
    await refused(() => carol.client.wallets.getWallet({ walletId: w.id }), 404);

    // Keys:Delegate is needed.
    const svcOnly = await serviceAccount('no-delegate', ['Wallets:Read']);
    await refused(() => svcOnly.wallets.delegateWallet({ walletId: w.id, body: { userId: carol.id } }), 403);
    // Only to an end user.
    await refused(() => s.client.wallets.delegateWallet({ walletId: w.id, body: { userId: 'us-0000000000000000000000000' } }), 400, 'delegateTo');

    const res = await s.client.wallets.delegateWallet({ walletId: w.id, body: { userId: carol.id } });
    assert.deepEqual(res, { walletId: w.id, status: 'Delegated' });
    const seen = await carol.client.wallets.getWallet({ walletId: w.id });
    assert.equal(seen.signingKey.delegatedTo, carol.id);
    const msg = Buffer.from('now mine');
    const sig = await carol.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Message', message: `0x${msg.toString('hex')}` } });
    assert.ok(ed25519Verifies(w.signingKey.publicKey, msg, sig.signature.encoded));
    await refused(() => s.client.wallets.generateSignature({ walletId: w.id, body }), 403, 'delegated');

    // A retry is harmless; another end user is a conflict; the organization's own wallets
    // never change hands.
    assert.equal((await s.client.wallets.delegateWallet({ walletId: w.id, body: { userId: carol.id } })).status, 'Delegated');
    await refused(() => s.client.wallets.delegateWallet({ walletId: w.id, body: { userId: dave.id } }), 409, 'final');
    const custodial = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA' } });
    await refused(() => s.client.wallets.delegateWallet({ walletId: custodial.id, body: { userId: dave.id } }), 400, 'delayDelegation');
    await refused(() => dave.client.wallets.getWallet({ walletId: w.id }), 404);

    // The same through /keys.
    const k = await s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519', delayDelegation: true } });
    assert.equal(k.custodial, false);
    assert.deepEqual(await s.client.keys.delegateKey({ keyId: k.id, body: { delegateTo: dave.id } }), { keyId: k.id, status: 'Delegated' });
    const daveKeys = await dave.client.keys.listKeys({});
    assert.deepEqual(daveKeys.items.map((x) => x.id), [k.id]);
  });

  test('bad wallets at registration are refused before the registration is spent', async () => {
    const email = uniqueEmail('careful');
    const challenge = await svc.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser' } });
    const keys = newKeyPair();
    const firstFactorCredential = keyAttestation(challenge, keys, { origin: s.baseUrl });
    const device = new DfnsApiClient({ baseUrl: s.baseUrl, authToken: challenge.temporaryAuthenticationToken });
    await refused(() => device.auth.registerEndUser({ body: { firstFactorCredential, wallets: [{ network: 'KeyEdDSA' }, { network: 'Narnia' }] } }), 400, 'Narnia');
    await refused(() => device.auth.registerEndUser({ body: { firstFactorCredential, wallets: [{ network: 'KeyEdDSA', name: 'x'.repeat(1000) }] } }), 400, 'name');
    assert.equal((await s.client.auth.getUser({ userId: challenge.user.id })).isRegistered, false);
    const all = await s.client.wallets.listWallets({ query: { limit: 100 } });
    assert.ok(!all.items.some((w) => w.signingKey.delegatedTo === challenge.user.id));
    // The same challenge then registers, with its wallet.
    const res = await device.auth.registerEndUser({ body: { firstFactorCredential, wallets: [{ network: 'KeyEdDSA' }] } });
    assert.equal(res.wallets.length, 1);
    assert.equal(res.wallets[0].signingKey.delegatedTo, challenge.user.id);
  });

  test('an employee invited by email cannot get wallets through registerEndUser', async () => {
    const email = uniqueEmail('staff');
    await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const code = await waitRegistrationCode(s.k.dataDir, email);
    const challenge = await BaseAuthApi.createUserRegistrationChallenge(
      { orgId: s.orgId, username: email, registrationCode: code },
      { baseUrl: s.baseUrl },
    );
    const keys = newKeyPair();
    const firstFactorCredential = keyAttestation(challenge, keys, { origin: s.baseUrl });
    const device = new DfnsApiClient({ baseUrl: s.baseUrl, authToken: challenge.temporaryAuthenticationToken });
    await refused(() => device.auth.registerEndUser({ body: { firstFactorCredential, wallets: [{ network: 'KeyEdDSA' }] } }), 400, 'end users');
    assert.equal((await s.client.auth.getUser({ userId: challenge.user.id })).isRegistered, false);
  });
});
