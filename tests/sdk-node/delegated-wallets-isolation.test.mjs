// Wallets delegated to end users, a second and independent suite (delegated-wallets.test.mjs is
// the first), written by another tester against the contract alone. Its angles:
//  - the end user's own Solana transfer and transaction (POST /transfers, /transactions) are
//    signed by its delegated key — checked on the bytes a (minimal, fake) Solana node received,
//    with Node's Ed25519 — and every read of them by id is 404 for another end user;
//  - one matrix of every signing path × every other identity: the root, a service account
//    holding the built-in administrator permission, another end user, a PAT of the end user
//    itself (holding Wallets:GenerateSignature & co) — none gets a signature, nothing is left;
//  - permissions assigned to an end user never widen what it (or its PAT) sees;
//  - delegating a pending key hands over every wallet on it; a service account with
//    Keys:Delegate alone can delegate, and still cannot sign;
//  - races: N parallel delegations to N end users (wallet route, key route, mixed);
//  - deactivation locks the end user's live session out at once, for good; after reactivation
//    it logs in again and signs;
//  - malformed delegations are 4xx with {"error":{"message"}} and change nothing.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  address,
  appendTransactionMessageInstruction,
  compileTransaction,
  createNoopSigner,
  createTransactionMessage,
  getBase58Decoder,
  getTransactionEncoder,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/kit';
import { getTransferSolInstruction } from '@solana-program/system';

import {
  AsymmetricKeySigner,
  DfnsApiClient,
  DfnsError,
  keyAttestation,
  loginStatus,
  makeTmpDir,
  newKeyPair,
  raw,
  sdkLogin,
  signedRaw,
  startAndLogin,
  uniqueEmail,
  ed25519Verifies,
  refused,
  newServiceAccount,
} from './lib/harness.mjs';

const b58 = getBase58Decoder(); // bytes -> base58 text
const hex = (bytes) => `0x${Buffer.from(bytes).toString('hex')}`;
const RENT = 890_880;

// ---------------------------------------------------------------------------------------
// helpers

/** The HTTP status of `fn` (200 on success) and the error body. */
async function outcome(fn) {
  try {
    return { status: 200, value: await fn() };
  } catch (e) {
    if (!(e instanceof DfnsError)) throw e;
    return { status: e.httpStatus, body: e.context?.body };
  }
}

/** Solana's compact-u16. */
function shortvec(bytes, at) {
  let value = 0;
  for (let i = 0; i < 3; i++) {
    const b = bytes[at + i];
    value |= (b & 0x7f) << (7 * i);
    if ((b & 0x80) === 0) return { value, next: at + i + 1 };
  }
  throw new Error('bad shortvec');
}

/** A wire transaction → { signatures: [Buffer], message: Buffer }. */
function splitWire(bytes) {
  const n = shortvec(bytes, 0);
  const signatures = [];
  for (let i = 0; i < n.value; i++) signatures.push(Buffer.from(bytes.slice(n.next + 64 * i, n.next + 64 * (i + 1))));
  return { signatures, message: Buffer.from(bytes.slice(n.next + 64 * n.value)) };
}

/**
 * A minimal fake Solana JSON-RPC node: accepts every transaction (recording its bytes),
 * reports it confirmed, every account holds 10 SOL. Enough for Keyfold to plan, sign,
 * broadcast and settle; the test checks the bytes itself.
 */
async function startFakeSolana() {
  const sent = []; // { bytes, sig }
  const known = new Set();
  const blockhash = b58.decode(crypto.randomBytes(32));
  let slot = 100;
  const methods = {
    sendTransaction([b64]) {
      const bytes = Buffer.from(b64, 'base64');
      const sig = b58.decode(splitWire(bytes).signatures[0]);
      sent.push({ bytes, sig });
      known.add(sig);
      slot += 1;
      return sig;
    },
    getSignatureStatuses([sigs]) {
      return {
        context: { slot },
        value: sigs.map((s) => (known.has(s) ? { slot, confirmations: 1, err: null, status: { Ok: null }, confirmationStatus: 'confirmed' } : null)),
      };
    },
    getTransaction([sig]) {
      return known.has(sig) ? { slot, blockTime: Math.floor(Date.now() / 1000), meta: { err: null, fee: 5000 } } : null;
    },
    getBalance: () => ({ context: { slot }, value: 10_000_000_000 }),
    getMinimumBalanceForRentExemption: () => RENT,
    getLatestBlockhash: () => ({ context: { slot }, value: { blockhash, lastValidBlockHeight: slot + 150 } }),
    getRecentPrioritizationFees: () => [],
    getSlot: () => slot,
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const answer = (r) => {
        const fn = Object.hasOwn(methods, r.method) ? methods[r.method] : null;
        if (!fn) return { jsonrpc: '2.0', id: r.id ?? null, error: { code: -32601, message: 'Method not found' } };
        return { jsonrpc: '2.0', id: r.id ?? null, result: fn(r.params ?? []) };
      };
      let out;
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        out = Array.isArray(body) ? body.map(answer) : answer(body);
      } catch (e) {
        out = { jsonrpc: '2.0', id: null, error: { code: -32603, message: String(e) } };
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    sent,
    blockhash,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------

describe('delegated wallets — second review', () => {
  let fake;
  let s; // the root
  let svc; // registers end users
  let adminPerm; // the built-in administrator permission
  let orgSol; // a custodial SolanaDevnet wallet of the organization
  let alice; // end user with a KeyEdDSA and a SolanaDevnet wallet
  let bob; // end user with a SolanaDevnet wallet
  const done = {}; // what earlier tests made, for later ones

  const msgBody = (text) => ({ kind: 'Message', message: hex(Buffer.from(text)) });

  const serviceAccount = (name, opts) => newServiceAccount(s, name, opts);

  async function endUser(wallets = []) {
    const email = uniqueEmail('eu');
    const challenge = await svc.client.auth.createDelegatedRegistrationChallenge({ body: { email, kind: 'EndUser' } });
    const keys = newKeyPair();
    const firstFactorCredential = keyAttestation(challenge, keys, { origin: s.baseUrl });
    const device = new DfnsApiClient({ baseUrl: s.baseUrl, authToken: challenge.temporaryAuthenticationToken });
    const res = await device.auth.registerEndUser({ body: { firstFactorCredential, wallets } });
    const credId = firstFactorCredential.credentialInfo.credId;
    const signer = new AsymmetricKeySigner({ credId, privateKey: keys.privateKey });
    const client = new DfnsApiClient({ baseUrl: s.baseUrl, orgId: s.orgId, authToken: res.authentication.token, signer });
    return { id: challenge.user.id, email, client, keys, credId, signer, res, token: res.authentication.token, wallets: res.wallets };
  }

  /** Every wallet id the root sees, sorted, plus each one's delegation. */
  async function orgWalletsSnapshot() {
    const items = [];
    let paginationToken;
    for (;;) {
      const page = await s.client.wallets.listWallets({ query: { limit: 100, paginationToken } });
      items.push(...page.items);
      if (!page.nextPageToken) break;
      paginationToken = page.nextPageToken;
    }
    return JSON.stringify(items.map((w) => [w.id, w.custodial, w.signingKey.delegatedTo ?? null, w.status]).sort());
  }

  /** Polls `get()` until the record is final (the API's tracker settles it in the background). */
  async function waitFinal(get, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = await get();
      if (['Confirmed', 'Failed', 'Rejected'].includes(t.status)) return t;
      if (Date.now() > deadline) throw new Error(`not final: ${JSON.stringify(t)}`);
      await sleep(100);
    }
  }
  const waitTransferFinal = (client, walletId, transferId) => waitFinal(() => client.wallets.getTransfer({ walletId, transferId }));
  const waitTransactionFinal = (client, walletId, transactionId) =>
    waitFinal(() => client.wallets.getTransaction({ walletId, transactionId }));

  /** An unsigned SOL transfer from `payer` (wire bytes, zeroed signature). */
  function unsignedTransfer(payer, to, amount) {
    const from = address(payer);
    const msg = pipe(
      createTransactionMessage({ version: 0 }),
      (m) => setTransactionMessageFeePayer(from, m),
      (m) => setTransactionMessageLifetimeUsingBlockhash({ blockhash: fake.blockhash, lastValidBlockHeight: 1000n }, m),
      (m) =>
        appendTransactionMessageInstruction(
          getTransferSolInstruction({ source: createNoopSigner(from), destination: address(to), amount }),
          m,
        ),
    );
    return new Uint8Array(getTransactionEncoder().encode(compileTransaction(msg)));
  }

  before(async () => {
    fake = await startFakeSolana();
    const cfg = path.join(makeTmpDir(), 'keyfold.toml');
    fs.writeFileSync(cfg, `[networks.SolanaDevnet]\nrpc_url = "${fake.url}"\n[transfers]\ntracker_interval_ms = 100\n`);
    s = await startAndLogin({ signers: true, args: ['--config', cfg] });
    adminPerm = (await s.client.permissions.listPermissions({ query: { limit: 100 } })).items.find((p) => p.isImmutable);
    assert.ok(adminPerm, 'the built-in administrator permission');
    svc = await serviceAccount('registrar', { operations: ['Auth:Register:Delegated'] });
    [alice, bob, orgSol] = await Promise.all([
      endUser([{ network: 'KeyEdDSA', name: 'a-key' }, { network: 'SolanaDevnet', name: 'a-sol' }]),
      endUser([{ network: 'SolanaDevnet', name: 'b-sol' }]),
      s.client.wallets.createWallet({ body: { network: 'SolanaDevnet', name: 'org-sol' } }),
    ]);
  });

  after(async () => {
    await s?.k.stop();
    await fake?.stop();
  });

  test("the end user's own transfer and transaction are signed by its delegated key, and nobody else reads them", async () => {
    const w = alice.wallets[1];
    assert.equal(w.network, 'SolanaDevnet');
    const sentBefore = fake.sent.length;

    // POST /wallets/{id}/transfers, by the end user's own session, with no permission.
    const tr = await alice.client.wallets.transferAsset({ walletId: w.id, body: { kind: 'Native', to: bob.wallets[0].address, amount: String(RENT + 1) } });
    assert.match(tr.id, /^xfr-|^tf-|^[a-z]+-/);
    assert.equal(tr.requester?.userId, alice.id, JSON.stringify(tr));
    const trDone = await waitTransferFinal(alice.client, w.id, tr.id);
    assert.equal(trDone.status, 'Confirmed', JSON.stringify(trDone));

    // POST /wallets/{id}/transactions: a transaction the end user built.
    const unsigned = unsignedTransfer(w.address, orgSol.address, 1_000_000n);
    const tx = await alice.client.wallets.broadcastTransaction({ walletId: w.id, body: { kind: 'Transaction', transaction: hex(unsigned) } });
    const txDone = await waitTransactionFinal(alice.client, w.id, tx.id);
    assert.equal(txDone.status, 'Confirmed', JSON.stringify(txDone));

    // What the node received: two transactions, each signed (fee payer slot) by the delegated key.
    const got = fake.sent.slice(sentBefore);
    assert.equal(got.length, 2, 'one send each');
    for (const g of got) {
      const { signatures, message } = splitWire(g.bytes);
      assert.ok(ed25519Verifies(w.signingKey.publicKey, message, signatures[0]), 'signature verifies under the delegated key');
    }
    assert.deepEqual(splitWire(got[1].bytes).message, splitWire(unsigned).message, 'the transaction is sent as built');
    assert.equal(trDone.txHash, got[0].sig);
    assert.equal(txDone.txHash, got[1].sig);

    // Listings of the end user hold them; another end user sees none of it, by any path.
    assert.ok((await alice.client.wallets.listTransfers({ walletId: w.id })).items.some((x) => x.id === tr.id));
    assert.ok((await alice.client.wallets.listTransactions({ walletId: w.id })).items.some((x) => x.id === tx.id));
    const b = bob.client.wallets;
    const bw = bob.wallets[0].id;
    await refused(() => b.getTransfer({ walletId: w.id, transferId: tr.id }), 404);
    await refused(() => b.getTransfer({ walletId: bw, transferId: tr.id }), 404);
    await refused(() => b.getTransaction({ walletId: w.id, transactionId: tx.id }), 404);
    await refused(() => b.getTransaction({ walletId: bw, transactionId: tx.id }), 404);
    await refused(() => b.listTransfers({ walletId: w.id }), 404);
    await refused(() => b.listTransactions({ walletId: w.id }), 404);
    await refused(() => b.listSignatures({ walletId: w.id }), 404);
    await refused(() => b.getWalletAssets({ walletId: w.id }), 404);
    await refused(() => b.getWalletHistory({ walletId: w.id }), 404);
    await refused(() => b.getWalletAssets({ walletId: orgSol.id }), 404);
    await refused(() => b.getWalletHistory({ walletId: orgSol.id }), 404);
    await refused(() => bob.client.keys.listSignatures({ keyId: w.signingKey.id }), 404);
    assert.ok(!(await b.listTransfers({ walletId: bw })).items.some((x) => x.id === tr.id));
    assert.ok(!(await b.listTransactions({ walletId: bw })).items.some((x) => x.id === tx.id));
    // The end user reads its own assets and history.
    const assets = await alice.client.wallets.getWalletAssets({ walletId: w.id });
    assert.equal(assets.walletId, w.id);
    const hist = await alice.client.wallets.getWalletHistory({ walletId: w.id });
    assert.ok(Array.isArray(hist.items));

    // A signature of alice's, by its id, through bob's own wallet path or alice's.
    const sig = await alice.client.wallets.generateSignature({ walletId: alice.wallets[0].id, body: msgBody('mine') });
    assert.ok(ed25519Verifies(alice.wallets[0].signingKey.publicKey, Buffer.from('mine'), sig.signature.encoded));
    await refused(() => b.getSignature({ walletId: alice.wallets[0].id, signatureId: sig.id }), 404);
    await refused(() => b.getSignature({ walletId: bw, signatureId: sig.id }), 404);
    await refused(() => bob.client.keys.getSignature({ keyId: alice.wallets[0].signingKey.id, signatureId: sig.id }), 404);
    await refused(() => bob.client.keys.getSignature({ keyId: bob.wallets[0].signingKey.id, signatureId: sig.id }), 404);
    // The end user cannot reach the organization's transfers either.
    await refused(() => alice.client.wallets.listTransfers({ walletId: orgSol.id }), 404);
    done.transfer = { tr, tx };
  });

  test('no other identity signs with a delegated key by any path — root, all-powerful service account, other end user, the end user\'s own PAT', async (t) => {
    const sol = alice.wallets[1];
    const key = alice.wallets[0];

    // The end user, given Auth:Pats:Create and every signing operation, makes a PAT with them.
    const perm = await s.client.permissions.createPermission({
      body: {
        name: `eu-pat-${crypto.randomUUID()}`,
        operations: [
          'Auth:Pats:Create',
          'Wallets:Read',
          'Keys:Read',
          'Wallets:GenerateSignature',
          'Keys:Signatures:Create',
          'Wallets:Transfers:Create',
          'Wallets:Transactions:Create',
        ],
      },
    });
    await s.client.permissions.createAssignment({ permissionId: perm.id, body: { identityId: alice.id } });
    const patKeys = newKeyPair();
    const pat = await alice.client.auth.createPersonalAccessToken({ body: { name: 'alice-pat', publicKey: patKeys.publicKey, permissionId: perm.id } });
    assert.equal(pat.linkedUserId, alice.id);
    const patClient = new DfnsApiClient({
      baseUrl: s.baseUrl,
      orgId: s.orgId,
      authToken: pat.accessToken,
      signer: new AsymmetricKeySigner({ credId: pat.credId, privateKey: patKeys.privateKey }),
    });
    // The PAT, like its end user, sees only the end user's wallets (if it sees any).
    const patList = await outcome(() => patClient.wallets.listWallets({}));
    t.diagnostic(`PAT listWallets: ${patList.status}`);
    if (patList.status === 200) {
      assert.deepEqual(patList.value.items.map((x) => x.id).sort(), alice.wallets.map((x) => x.id).sort(), 'a PAT of an end user sees only its wallets');
    }
    // The permissions widen nothing for the end user either.
    assert.deepEqual((await alice.client.wallets.listWallets({})).items.map((x) => x.id).sort(), alice.wallets.map((x) => x.id).sort());
    assert.deepEqual((await alice.client.keys.listKeys({})).items.map((x) => x.id).sort(), alice.wallets.map((x) => x.signingKey.id).sort());
    await refused(() => alice.client.wallets.getWallet({ walletId: orgSol.id }), 404);
    await refused(() => patClient.wallets.getWallet({ walletId: orgSol.id }), 404);

    const boss = await serviceAccount('all-powerful', { permissionId: adminPerm.id });
    const identities = [
      ['root', s.client, [403]],
      ['admin service account', boss.client, [403]],
      ['another end user', bob.client, [404]],
      ["the end user's PAT", patClient, [403, 404]],
    ];
    const before = {
      walletSigs: (await alice.client.wallets.listSignatures({ walletId: key.id })).items.length,
      keySigs: (await alice.client.keys.listSignatures({ keyId: sol.signingKey.id })).items.length,
      transfers: (await alice.client.wallets.listTransfers({ walletId: sol.id })).items.length,
      transactions: (await alice.client.wallets.listTransactions({ walletId: sol.id })).items.length,
      sent: fake.sent.length,
    };
    const unsigned = unsignedTransfer(sol.address, orgSol.address, 1_000_000n);
    for (const [who, c, allowed] of identities) {
      const paths = [
        ['wallet signature', () => c.wallets.generateSignature({ walletId: key.id, body: msgBody(`as ${who}`) })],
        ['key signature', () => c.keys.generateSignature({ keyId: sol.signingKey.id, body: msgBody(`as ${who}`) })],
        ['transfer', () => c.wallets.transferAsset({ walletId: sol.id, body: { kind: 'Native', to: orgSol.address, amount: String(RENT + 7) } })],
        ['transaction', () => c.wallets.broadcastTransaction({ walletId: sol.id, body: { kind: 'Transaction', transaction: hex(unsigned) } })],
      ];
      for (const [what, fn] of paths) {
        const r = await outcome(fn);
        t.diagnostic(`${who} / ${what}: ${r.status} ${r.body?.error?.message}`);
        assert.ok(allowed.includes(r.status), `${who} / ${what}: expected ${allowed}, got ${r.status} ${JSON.stringify(r.body ?? r.value)}`);
        assert.equal(typeof r.body?.error?.message, 'string', `${who} / ${what}: no {error:{message}}`);
      }
    }
    const afterCounts = {
      walletSigs: (await alice.client.wallets.listSignatures({ walletId: key.id })).items.length,
      keySigs: (await alice.client.keys.listSignatures({ keyId: sol.signingKey.id })).items.length,
      transfers: (await alice.client.wallets.listTransfers({ walletId: sol.id })).items.length,
      transactions: (await alice.client.wallets.listTransactions({ walletId: sol.id })).items.length,
      sent: fake.sent.length,
    };
    assert.deepEqual(afterCounts, before, 'refused requests left nothing behind and sent nothing');
    // The end user itself still signs (its own session), through the key route too.
    const m = Buffer.from('still mine');
    const sig = await alice.client.keys.generateSignature({ keyId: sol.signingKey.id, body: { kind: 'Message', message: hex(m) } });
    assert.ok(ed25519Verifies(sol.signingKey.publicKey, m, sig.signature.encoded));
  });

  test('delegating a pending key hands over every wallet on it; Keys:Delegate alone delegates but never signs', async () => {
    const carol = await endUser();
    const dave = await endUser();
    const delegator = await serviceAccount('delegator', { operations: ['Keys:Delegate'] });
    const a = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true, name: 'pending-a' } });
    const b = await s.client.wallets.createWallet({
      body: { network: 'SolanaDevnet', delayDelegation: true, signingKey: { id: a.signingKey.id }, name: 'pending-b' },
    });
    assert.equal(b.signingKey.id, a.signingKey.id);
    assert.equal(b.custodial, false);
    await refused(() => s.client.wallets.generateSignature({ walletId: b.id, body: msgBody('x') }), 403);
    await refused(() => carol.client.wallets.getWallet({ walletId: b.id }), 404);
    assert.deepEqual((await carol.client.wallets.listWallets({})).items, []);
    assert.deepEqual((await carol.client.keys.listKeys({})).items, []);

    const res = await delegator.client.keys.delegateKey({ keyId: a.signingKey.id, body: { delegateTo: carol.id } });
    assert.deepEqual(res, { keyId: a.signingKey.id, status: 'Delegated' });
    assert.deepEqual((await carol.client.wallets.listWallets({})).items.map((x) => x.id).sort(), [a.id, b.id].sort());
    for (const w of [a, b]) {
      assert.equal((await s.client.wallets.getWallet({ walletId: w.id })).signingKey.delegatedTo, carol.id);
      const m = Buffer.from(`carol via ${w.network}`);
      const sig = await carol.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Message', message: hex(m) } });
      assert.ok(ed25519Verifies(a.signingKey.publicKey, m, sig.signature.encoded));
      await refused(() => delegator.client.wallets.generateSignature({ walletId: w.id, body: msgBody('x') }), 403);
      await refused(() => s.client.wallets.generateSignature({ walletId: w.id, body: msgBody('x') }), 403);
    }
    // Final, whichever route is asked: the other wallet of the key, or the key.
    await refused(() => s.client.wallets.delegateWallet({ walletId: b.id, body: { userId: dave.id } }), 409);
    await refused(() => delegator.client.keys.delegateKey({ keyId: a.signingKey.id, body: { delegateTo: dave.id } }), 409);
    assert.equal((await s.client.wallets.delegateWallet({ walletId: b.id, body: { userId: carol.id } })).status, 'Delegated');
    // Custodial keys never change hands, through the key route either.
    await refused(() => s.client.keys.delegateKey({ keyId: orgSol.signingKey.id, body: { delegateTo: dave.id } }), 400);
    await refused(() => delegator.client.wallets.delegateWallet({ walletId: orgSol.id, body: { userId: dave.id } }), 400);
    assert.equal((await s.client.wallets.getWallet({ walletId: orgSol.id })).custodial, true);
    // Nor does an end user's key already delegated at creation.
    await refused(() => s.client.keys.delegateKey({ keyId: alice.wallets[0].signingKey.id, body: { delegateTo: dave.id } }), 409);
    // An end user cannot delegate (no Keys:Delegate), not even to itself.
    const c = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true } });
    await refused(() => dave.client.wallets.delegateWallet({ walletId: c.id, body: { userId: dave.id } }), 403);
    assert.equal((await s.client.wallets.getWallet({ walletId: c.id })).signingKey.delegatedTo, undefined);
    assert.deepEqual((await dave.client.wallets.listWallets({})).items, []);
  });

  test('races: N parallel delegations of one pending wallet to N end users — exactly one wins, only it signs', async () => {
    const N = 6;
    const users = await Promise.all(Array.from({ length: N }, () => endUser()));
    const same = await Promise.all(Array.from({ length: 3 }, () => endUser()));

    const rounds = [
      ['wallet route', (w, u) => s.client.wallets.delegateWallet({ walletId: w.id, body: { userId: u.id } })],
      ['key route', (w, u) => s.client.keys.delegateKey({ keyId: w.signingKey.id, body: { delegateTo: u.id } })],
      [
        'mixed routes',
        (w, u, i) =>
          i % 2
            ? s.client.wallets.delegateWallet({ walletId: w.id, body: { userId: u.id } })
            : s.client.keys.delegateKey({ keyId: w.signingKey.id, body: { delegateTo: u.id } }),
      ],
    ];
    for (const [round, call] of rounds) {
      const w = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true, name: `race-${round}` } });
      const results = await Promise.all(users.map((u, i) => outcome(() => call(w, u, i))));
      const statuses = results.map((r) => r.status);
      assert.equal(statuses.filter((x) => x === 200).length, 1, `${round}: exactly one winner: ${statuses}`);
      assert.equal(statuses.filter((x) => x === 409).length, N - 1, `${round}: the others 409: ${statuses}`);
      for (const r of results) if (r.status === 409) assert.equal(typeof r.body?.error?.message, 'string');
      const winner = users[statuses.indexOf(200)];
      assert.equal((await s.client.wallets.getWallet({ walletId: w.id })).signingKey.delegatedTo, winner.id, round);
      const m = Buffer.from(`won ${round}`);
      const sig = await winner.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Message', message: hex(m) } });
      assert.ok(ed25519Verifies(w.signingKey.publicKey, m, sig.signature.encoded));
      for (const u of users) {
        if (u === winner) continue;
        await refused(() => u.client.wallets.generateSignature({ walletId: w.id, body: msgBody('lost') }), 404);
        await refused(() => u.client.keys.generateSignature({ keyId: w.signingKey.id, body: msgBody('lost') }), 404);
      }
      assert.equal((await s.client.wallets.listSignatures({ walletId: w.id })).items.length, 1, `${round}: one signature`);
    }
    for (const u of users) {
      // Each end user holds at most the wallets it won, nothing else.
      for (const x of (await u.client.wallets.listWallets({})).items) assert.equal(x.signingKey.delegatedTo, u.id);
    }

    // The same end user N times at once: all succeed (a retry is harmless).
    const w2 = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true } });
    const again = await Promise.all(Array.from({ length: 4 }, () => outcome(() => s.client.wallets.delegateWallet({ walletId: w2.id, body: { userId: same[0].id } }))));
    assert.deepEqual(again.map((r) => r.status), [200, 200, 200, 200], JSON.stringify(again.map((r) => r.body)));
    assert.deepEqual((await same[0].client.wallets.listWallets({})).items.map((x) => x.id), [w2.id]);
  });

  test('deactivating an end user locks its live session out at once; reactivation restores it', async () => {
    const erin = await endUser([{ network: 'KeyEdDSA' }]);
    const w = erin.wallets[0];
    assert.equal((await raw(s.baseUrl, { path: '/wallets', token: erin.token })).status, 200);

    await s.client.auth.deactivateUser({ userId: erin.id });
    const list = await raw(s.baseUrl, { path: '/wallets', token: erin.token });
    assert.equal(list.status, 401, `deactivated end user listing: ${list.status} ${list.text}`);
    assert.equal(typeof list.json?.error?.message, 'string');
    assert.equal((await raw(s.baseUrl, { path: `/wallets/${w.id}`, token: erin.token })).status, 401);
    await refused(() => erin.client.wallets.generateSignature({ walletId: w.id, body: msgBody('locked') }), 401);
    const login = await loginStatus(s.baseUrl, { orgId: s.orgId, username: erin.email, credId: erin.credId, privateKey: erin.keys.privateKey });
    assert.ok(login >= 400 && login < 500, `a deactivated end user logs in: ${login}`);
    // Its key is still its own: the organization still cannot sign, nor hand it on.
    await refused(() => s.client.wallets.generateSignature({ walletId: w.id, body: msgBody('x') }), 403);
    // A pending wallet cannot be delegated to it while deactivated.
    const p = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true } });
    await refused(() => s.client.wallets.delegateWallet({ walletId: p.id, body: { userId: erin.id } }), 400);
    assert.equal((await s.client.wallets.getWallet({ walletId: p.id })).signingKey.delegatedTo, undefined);
    assert.equal((await s.client.wallets.listSignatures({ walletId: w.id })).items.length, 0, 'no signature while locked');
    // Other end users are not affected.
    assert.equal((await raw(s.baseUrl, { path: '/wallets', token: bob.token })).status, 200);

    await s.client.auth.activateUser({ userId: erin.id });
    // The session that was live at deactivation stays dead: deactivation revokes a user's
    // tokens for good (keyfold-domain users.rs); reactivation means logging in again.
    const back = await raw(s.baseUrl, { path: '/wallets', token: erin.token });
    assert.equal(back.status, 401, `old session after reactivation: ${back.status} ${back.text}`);
    // Reactivation restores the end user: it logs in again, sees and signs with its wallet.
    const fresh = await sdkLogin(s.baseUrl, { orgId: s.orgId, username: erin.email, credId: erin.credId, privateKey: erin.keys.privateKey });
    assert.deepEqual((await fresh.client.wallets.listWallets({})).items.map((x) => x.id), [w.id]);
    const m = Buffer.from('back again');
    const sig = await fresh.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Message', message: hex(m) } });
    assert.ok(ed25519Verifies(w.signingKey.publicKey, m, sig.signature.encoded));
    assert.equal(sig.requester.userId, erin.id);
  });

  test('malformed or impossible delegations are 4xx with {error:{message}} and change nothing', async () => {
    const frank = await endUser();
    const gone = await endUser();
    await s.client.auth.archiveUser({ userId: gone.id });
    const employee = await s.client.auth.createUser({ body: { email: uniqueEmail('emp'), kind: 'CustomerEmployee' } });
    const sa = await serviceAccount('not-an-end-user', { operations: ['Wallets:Read'] });
    const p = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true, name: 'target' } });
    const rootUserId = s.k.admin.userId;
    assert.match(rootUserId, /^us-/);

    const before = await orgWalletsSnapshot();
    const frankBefore = (await frank.client.wallets.listWallets({})).items.length;

    const cases = [
      // unknown / malformed wallet and key ids
      ['POST', '/wallets/not-a-wallet-id/delegate', { userId: frank.id }],
      ['POST', '/wallets/wa-00000-00000-0000000000000000/delegate', { userId: frank.id }],
      ['POST', `/wallets/${p.signingKey.id}/delegate`, { userId: frank.id }], // a key id on the wallet route
      ['POST', '/keys/nonsense/delegate', { delegateTo: frank.id }],
      ['POST', `/keys/${p.id}/delegate`, { delegateTo: frank.id }], // a wallet id on the key route
      // delegates that are not active end users
      ['POST', `/wallets/${p.id}/delegate`, { userId: sa.id }],
      ['POST', `/keys/${p.signingKey.id}/delegate`, { delegateTo: sa.id }],
      ['POST', `/wallets/${p.id}/delegate`, { userId: gone.id }],
      ['POST', `/keys/${p.signingKey.id}/delegate`, { delegateTo: gone.id }],
      ['POST', `/keys/${p.signingKey.id}/delegate`, { delegateTo: employee.userId }],
      ['POST', `/keys/${p.signingKey.id}/delegate`, { delegateTo: 'us-00000-00000-0000000000000000' }],
      ['POST', `/wallets/${p.id}/delegate`, { userId: rootUserId }],
      // wrong body types / fields
      ['POST', `/wallets/${p.id}/delegate`, { userId: 42 }],
      ['POST', `/wallets/${p.id}/delegate`, { userId: null }],
      ['POST', `/wallets/${p.id}/delegate`, { userId: [frank.id] }],
      ['POST', `/wallets/${p.id}/delegate`, { userId: { id: frank.id } }],
      ['POST', `/wallets/${p.id}/delegate`, {}],
      ['POST', `/wallets/${p.id}/delegate`, { delegateTo: frank.id }],
      ['POST', `/wallets/${p.id}/delegate`, { userId: '' }],
      ['POST', `/wallets/${p.id}/delegate`, 'not json at all'],
      ['POST', `/wallets/${p.id}/delegate`, `"${frank.id}"`],
      ['POST', `/keys/${p.signingKey.id}/delegate`, { delegateTo: 42 }],
      ['POST', `/keys/${p.signingKey.id}/delegate`, { userId: frank.id }],
    ];
    const bad = [];
    for (const [method, p2, body] of cases) {
      const r = await signedRaw(s.baseUrl, s.token, s.signer, { method, path: p2, body });
      if (!(r.status >= 400 && r.status < 500) || typeof r.json?.error?.message !== 'string') {
        bad.push(`${method} ${p2} ${JSON.stringify(body)} → ${r.status} ${r.text}`);
      }
    }
    assert.deepEqual(bad, [], 'every malformed delegation is a 4xx with {error:{message}}');

    assert.equal(await orgWalletsSnapshot(), before, 'the organization\'s wallets are unchanged');
    assert.equal((await frank.client.wallets.listWallets({})).items.length, frankBefore);
    assert.equal((await s.client.wallets.getWallet({ walletId: p.id })).signingKey.delegatedTo, undefined);
    await refused(() => s.client.wallets.generateSignature({ walletId: p.id, body: msgBody('x') }), 403);
    // The wallet is still pending: the right request delegates it now.
    assert.equal((await s.client.wallets.delegateWallet({ walletId: p.id, body: { userId: frank.id } })).status, 'Delegated');
    assert.deepEqual((await frank.client.wallets.listWallets({})).items.map((x) => x.id), [p.id]);
  });

  test('a JSON array is not a delegation body (wrong body type): 4xx, and the key stays pending', async () => {
    const grace = await endUser();
    const p = await s.client.wallets.createWallet({ body: { network: 'KeyEdDSA', delayDelegation: true } });
    const before = await orgWalletsSnapshot();
    const r = await signedRaw(s.baseUrl, s.token, s.signer, { method: 'POST', path: `/keys/${p.signingKey.id}/delegate`, body: [grace.id] });
    assert.ok(r.status >= 400 && r.status < 500, `POST /keys/{id}/delegate with body ["${grace.id}"] → ${r.status} ${r.text}`);
    assert.equal(typeof r.json?.error?.message, 'string');
    assert.equal(await orgWalletsSnapshot(), before, 'nothing changed');
    assert.deepEqual((await grace.client.wallets.listWallets({})).items, []);
  });
});
