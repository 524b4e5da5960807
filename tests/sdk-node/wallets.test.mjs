// Keys, wallets and signatures through the official SDK and @dfns/lib-viem, against a
// `keyfold dev` with its three signer processes, and a real chain (anvil).
//
// Every signature is checked by viem (address recovery), Node's own crypto or Solana's runtime
// (LiteSVM), never by Keyfold's code.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DfnsWallet } from '@dfns/lib-viem';
import {
  createPublicClient,
  createWalletClient,
  hashMessage,
  http,
  keccak256,
  parseEther,
  recoverAddress,
  recoverMessageAddress,
  recoverTypedDataAddress,
  serializeTransaction,
  parseTransaction,
  signatureToHex,
  toHex,
} from 'viem';
import { publicKeyToAddress, toAccount } from 'viem/accounts';
import {
  address,
  appendTransactionMessageInstruction,
  compileTransaction,
  createNoopSigner,
  createTransactionMessage,
  getAddressEncoder,
  getBase58Decoder,
  getTransactionDecoder,
  getTransactionEncoder,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/kit';
import { getTransferSolInstruction } from '@solana-program/system';
// LiteSVM's native binding, used directly: the `litesvm` wrapper package lists a binary per
// platform as optional dependencies, and `npm ci` refuses a lock file holding only ours.
const { FailedTransactionMetadata, LiteSvm } = createRequire(import.meta.url)('litesvm-linux-x64-gnu');
import { sepolia } from 'viem/chains';

import {
  DfnsError,
  ed25519Verifies,
  expectDfnsError,
  makeTmpDir,
  signedRaw,
  signerPids,
  startAnvil,
  startAndLogin,
  waitSchemeReady,
} from './lib/harness.mjs';

const typedData = {
  domain: { name: 'Keyfold', version: '1', chainId: 11155111, verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC' },
  types: {
    Person: [
      { name: 'name', type: 'string' },
      { name: 'wallet', type: 'address' },
    ],
    Mail: [
      { name: 'from', type: 'Person' },
      { name: 'to', type: 'Person' },
      { name: 'contents', type: 'string' },
    ],
  },
  primaryType: 'Mail',
  message: {
    from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
    to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
    contents: 'Hello, Bob!',
  },
};

describe('wallets and signatures', () => {
  let anvil;
  let s; // { k, client, token, signer }
  let evm; // the EthereumSepolia wallet
  let early; // what happened while ECDSA setup was still running

  before(async () => {
    anvil = await startAnvil();
    const dir = makeTmpDir();
    const cfg = path.join(dir, 'keyfold.toml');
    fs.writeFileSync(
      cfg,
      `[networks.EthereumSepolia]\nrpc_url = "${anvil.url}"\nchain_id = 11155111\n` +
        // Base points at a port nobody listens on: its RPC is "down".
        `[networks.Base]\nrpc_url = "http://127.0.0.1:9"\n[signing]\nready_wait_secs = 1\n`,
    );
    s = await startAndLogin({ signers: true, args: ['--config', cfg] });
    // Right after start-up the signers are still building ECDSA aux info (tens of seconds).
    early = { health: await (await fetch(`${s.k.baseUrl}/healthz`)).json() };
    const body = { network: 'EthereumSepolia' };
    early.ecdsa = await signedRaw(s.k.baseUrl, s.token, s.signer, { method: 'POST', path: '/wallets', body });
    early.ed = await s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519' } });
    early.edSig = await s.client.keys.generateSignature({
      keyId: early.ed.id,
      body: { kind: 'Message', message: '0x6561726c79' },
    });
    early.healthAfter = await (await fetch(`${s.k.baseUrl}/healthz`)).json();
    await waitSchemeReady(s.k.baseUrl, 'ECDSA');
    evm = await s.client.wallets.createWallet({ body: { network: 'EthereumSepolia', name: 'evm' } });
  });

  after(async () => {
    await s?.k.stop();
    await anvil?.stop();
  });

  test('while ECDSA setup runs: EdDSA works, an ECDSA key answers 503 + Retry-After', async () => {
    assert.equal(early.health.schemes.EdDSA.ready, true);
    assert.equal(early.health.schemes.ECDSA.ready, false, JSON.stringify(early.health));
    assert.equal(early.healthAfter.schemes.ECDSA.ready, false, 'setup finished too early for this test');
    assert.equal(early.ecdsa.status, 503, early.ecdsa.text);
    assert.ok(Number(early.ecdsa.headers.get('retry-after')) > 0);
    assert.match(early.ecdsa.json.error.message, /ECDSA/);
    assert.equal(early.edSig.status, 'Signed');
    // No half-made wallet or key was left behind by the refused request.
    const wallets = await s.client.wallets.listWallets({});
    assert.equal(wallets.items.filter((w) => w.network === 'EthereumSepolia').length, 1);
    const keys = await s.client.keys.listKeys({});
    assert.ok(keys.items.every((k) => k.status === 'Active'), JSON.stringify(keys.items));
  });

  test('an EVM wallet: address from its public key, active, listed', async () => {
    assert.equal(evm.status, 'Active');
    assert.equal(evm.network, 'EthereumSepolia');
    assert.equal(evm.signingKey.scheme, 'ECDSA');
    assert.equal(evm.signingKey.curve, 'secp256k1');
    // Dfns gives secp256k1 keys compressed; Node's crypto decompresses independently.
    const uncompressed = crypto.ECDH.convertKey(evm.signingKey.publicKey, 'secp256k1', 'hex', 'hex', 'uncompressed');
    assert.equal(evm.address.toLowerCase(), publicKeyToAddress(`0x${uncompressed}`).toLowerCase());
    const got = await s.client.wallets.getWallet({ walletId: evm.id });
    assert.equal(got.address, evm.address);
    const list = await s.client.wallets.listWallets({});
    assert.ok(list.items.some((w) => w.id === evm.id));
  });

  test('Hash, Message and EIP-712 signatures recover to the wallet address (viem)', async () => {
    const dw = await DfnsWallet.init({ walletId: evm.id, dfnsClient: s.client });
    const account = toAccount(dw);
    assert.equal(account.address.toLowerCase(), evm.address.toLowerCase());

    const hash = keccak256(toHex('keyfold hash'));
    const hs = await dw.signHash(hash);
    const hashSig = `${hs.r}${hs.s.slice(2)}${hs.v === 28n ? '1c' : '1b'}`;
    assert.equal((await recoverAddress({ hash, signature: hashSig })).toLowerCase(), evm.address.toLowerCase());

    const message = 'Hello from Keyfold';
    const msgSig = await account.signMessage({ message });
    assert.equal((await recoverMessageAddress({ message, signature: msgSig })).toLowerCase(), evm.address.toLowerCase());

    const tdSig = await account.signTypedData(typedData);
    assert.equal(
      (await recoverTypedDataAddress({ ...typedData, signature: tdSig })).toLowerCase(),
      evm.address.toLowerCase(),
    );
  });

  test('Eip712 kind: the server hashes the typed data itself', async () => {
    const res = await s.client.wallets.generateSignature({
      walletId: evm.id,
      body: { kind: 'Eip712', types: typedData.types, domain: typedData.domain, message: typedData.message },
    });
    assert.equal(res.status, 'Signed');
    const sig = `${res.signature.r}${res.signature.s.slice(2)}${res.signature.recid ? '1c' : '1b'}`;
    assert.equal(
      (await recoverTypedDataAddress({ ...typedData, signature: sig })).toLowerCase(),
      evm.address.toLowerCase(),
    );
  });

  test('DfnsWallet + viem sendTransaction: mined by anvil', async () => {
    const publicClient = createPublicClient({ chain: sepolia, transport: http(anvil.url) });
    await publicClient.request({ method: 'anvil_setBalance', params: [evm.address, toHex(parseEther('10'))] });
    const dw = await DfnsWallet.init({ walletId: evm.id, dfnsClient: s.client });
    const walletClient = createWalletClient({ account: toAccount(dw), chain: sepolia, transport: http(anvil.url) });
    const to = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
    const before = await publicClient.getBalance({ address: to });
    const hash = await walletClient.sendTransaction({ to, value: parseEther('1.5') });
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, 'success');
    assert.equal(receipt.from.toLowerCase(), evm.address.toLowerCase());
    assert.equal((await publicClient.getBalance({ address: to })) - before, parseEther('1.5'));
  });

  test('Transaction kind returns the signed serialization', async () => {
    const unsigned = serializeTransaction({
      chainId: 11155111,
      type: 'eip1559',
      nonce: 7,
      to: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
      value: 1n,
      gas: 21000n,
      maxFeePerGas: 2_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
    });
    const res = await s.client.wallets.generateSignature({
      walletId: evm.id,
      body: { kind: 'Transaction', transaction: unsigned },
    });
    assert.equal(res.status, 'Signed');
    const signed = res.signedData;
    assert.ok(signed.startsWith('0x02'));
    assert.equal(parseTransaction(signed).nonce, 7);
    const { r, s: sv, v, yParity, ...fields } = parseTransaction(signed);
    const signature = signatureToHex({ r, s: sv, v: yParity === 1 || v === 28n || v === 1n ? 28n : 27n });
    const signer = await recoverAddress({ hash: keccak256(serializeTransaction(fields)), signature });
    assert.equal(signer.toLowerCase(), evm.address.toLowerCase());
  });

  test('EdDSA key: Hash signature verifies with Node crypto', async () => {
    const key = await s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519', name: 'ed' } });
    assert.equal(key.status, 'Active');
    const msg = Buffer.from('keyfold eddsa');
    const res = await s.client.keys.generateSignature({
      keyId: key.id,
      body: { kind: 'Message', message: `0x${msg.toString('hex')}` },
    });
    assert.equal(res.status, 'Signed');
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(key.publicKey, 'hex')]);
    const pub = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const sig = Buffer.from(res.signature.encoded.replace(/^0x/, ''), 'hex');
    assert.ok(crypto.verify(null, msg, pub, sig));
  });

  test('externalId makes a signature request idempotent', async () => {
    const externalId = `ext-${crypto.randomUUID()}`;
    const hash = keccak256(toHex(externalId));
    const body = { kind: 'Hash', hash, externalId };
    const [a, b] = await Promise.all([
      s.client.wallets.generateSignature({ walletId: evm.id, body }),
      s.client.wallets.generateSignature({ walletId: evm.id, body }),
    ]);
    assert.equal(a.id, b.id);
    const c = await s.client.wallets.generateSignature({ walletId: evm.id, body });
    assert.equal(c.id, a.id);
    assert.equal(c.signature.r, a.signature.r);
  });

  test('bad input is a clear 4xx and leaves nothing signed', async () => {
    await expectDfnsError(
      () => s.client.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Hash', hash: '0x1234' } }),
      400,
    );
    await expectDfnsError(
      () => s.client.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Hash', hash: 'zz' } }),
      400,
    );
    await expectDfnsError(
      () => s.client.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Transaction', transaction: '0x02c0ffee' } }),
      400,
    );
    await expectDfnsError(
      () => s.client.wallets.generateSignature({ walletId: 'wa-nope-nope-0000000000000000', body: { kind: 'Hash', hash: keccak256('0x00') } }),
      404,
    );
    await expectDfnsError(
      () => s.client.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Psbt', psbt: '0x00' } }),
      400,
    );
    await expectDfnsError(
      () => s.client.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Eip712', types: {}, domain: {}, message: {} } }),
      400,
    );
  });
  // Last: it kills a signer process, after which key generation (all three) cannot run.
  test('Solana: a Keyfold-signed transfer (legacy and v0) executes in LiteSVM; a tampered copy fails with SignatureFailure', async () => {
    const w = await s.client.wallets.createWallet({ body: { network: 'Solana', name: 'sol' } });
    assert.equal(w.signingKey.scheme, 'EdDSA');
    const payer = address(w.address);
    assert.deepEqual(
      Buffer.from(getAddressEncoder().encode(payer)),
      Buffer.from(w.signingKey.publicKey, 'hex'),
      'the address is the base58 public key',
    );
    const svm = new LiteSvm();
    const bytesOf = (a) => getAddressEncoder().encode(a);
    const send = (bytes, version) =>
      version === 'legacy' ? svm.sendLegacyTransaction(bytes) : svm.sendVersionedTransaction(bytes);
    svm.airdrop(bytesOf(payer), 2_000_000_000n);
    const to = address('Ggs9jkSYm7bVCjvHXSP3LuPJrV7uMC4hFCsMaiw9gVeF');
    let sent = 0n;
    for (const version of ['legacy', 0]) {
      const amount = version === 'legacy' ? 1_000_000n : 2_500_000n;
      const message = pipe(
        createTransactionMessage({ version }),
        (m) => setTransactionMessageFeePayer(payer, m),
        (m) => setTransactionMessageLifetimeUsingBlockhash({ blockhash: svm.latestBlockhash(), lastValidBlockHeight: 1_000_000n }, m),
        (m) => appendTransactionMessageInstruction(getTransferSolInstruction({ source: createNoopSigner(payer), destination: to, amount }), m),
      );
      const unsigned = getTransactionEncoder().encode(compileTransaction(message));
      const res = await s.client.wallets.generateSignature({
        walletId: w.id,
        body: { kind: 'Transaction', transaction: `0x${Buffer.from(unsigned).toString('hex')}` },
      });
      assert.equal(res.status, 'Signed', JSON.stringify(res));
      const signedBytes = Buffer.from(res.signedData.replace(/^0x/, ''), 'hex');
      const signed = getTransactionDecoder().decode(signedBytes);
      assert.equal(res.txHash, getBase58Decoder().decode(signed.signatures[payer]), 'txHash is the transaction id');

      // Tampered first: one byte of the amount flipped breaks the signature. (The amount ends
      // the message, except that v0 adds one byte after it: the empty lookup-table list.)
      const bad = Buffer.from(signedBytes);
      bad[bad.length - (version === 0 ? 2 : 1)] ^= 0x01;
      const rejected = send(bad, version);
      assert.ok(rejected instanceof FailedTransactionMetadata, 'a tampered transaction must fail');
      // (`err()` is a TypeScript const enum with no runtime object; the runtime's own rendering
      // names the error.)
      assert.match(rejected.toString(), /err: SignatureFailure\b/);

      const ok = send(signedBytes, version);
      assert.ok(!(ok instanceof FailedTransactionMetadata), `LiteSVM refused: ${ok.toString?.()}`);
      sent += amount;
      assert.equal(svm.getBalance(bytesOf(to)), sent);
      svm.expireBlockhash();
    }
    // A transaction this wallet is not a signer of: 400, nothing signed.
    const stranger = address('11111111111111111111111111111112');
    const foreign = pipe(
      createTransactionMessage({ version: 0 }),
      (m) => setTransactionMessageFeePayer(stranger, m),
      (m) => setTransactionMessageLifetimeUsingBlockhash({ blockhash: svm.latestBlockhash(), lastValidBlockHeight: 1_000_000n }, m),
      (m) => appendTransactionMessageInstruction(getTransferSolInstruction({ source: createNoopSigner(stranger), destination: to, amount: 1n }), m),
    );
    const foreignBytes = getTransactionEncoder().encode(compileTransaction(foreign));
    for (const transaction of [`0x${Buffer.from(foreignBytes).toString('hex')}`, '0x0102']) {
      const err = await expectDfnsError(
        () => s.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Transaction', transaction } }),
        400,
      );
      assert.match(err.message, /transaction/i);
    }
  });

  test('GET /networks/fees: EIP-1559 levels from the chain (anvil); no endpoint is a 400, a dead one a 503', async () => {
    const publicClient = createPublicClient({ chain: sepolia, transport: http(anvil.url) });
    const fees = await s.client.networks.getFees({ query: { network: 'EthereumSepolia' } });
    assert.equal(fees.kind, 'Eip1559');
    assert.equal(fees.network, 'EthereumSepolia');
    assert.equal(BigInt(fees.blockNumber), await publicClient.getBlockNumber());
    const base = BigInt(fees.baseFeePerGas);
    assert.ok(base > 0n);
    const [slow, standard, fast] = [fees.slow, fees.standard, fees.fast].map((l) => ({
      tip: BigInt(l.maxPriorityFeePerGas),
      max: BigInt(l.maxFeePerGas),
    }));
    assert.ok(slow.tip <= standard.tip && standard.tip <= fast.tip);
    for (const l of [slow, standard, fast]) assert.equal(l.max, 2n * base + l.tip);
    // viem reads the latest block's base fee; ours is the next block's, which EIP-1559 keeps
    // within 12.5 % of it (a little slack for viem's rounding of its 1.2 multiplier).
    const { maxFeePerGas, maxPriorityFeePerGas } = await publicClient.estimateFeesPerGas();
    const viemBase = (maxFeePerGas - maxPriorityFeePerGas) * 10n / 12n; // viem: 1.2 × base + tip
    assert.ok(base * 100n >= viemBase * 87n && base * 100n <= viemBase * 113n, `${base} vs viem ${viemBase}`);

    const noRpc = await expectDfnsError(() => s.client.networks.getFees({ query: { network: 'BaseSepolia' } }), 400);
    assert.match(noRpc.message, /rpc_url/);
    const down = await expectDfnsError(() => s.client.networks.getFees({ query: { network: 'Base' } }), 503);
    assert.doesNotMatch(down.message, /127\.0\.0\.1/, 'the endpoint URL is never echoed');
    await expectDfnsError(() => s.client.networks.getFees({ query: { network: 'Solana' } }), 400);
    await expectDfnsError(() => s.client.networks.getFees({ query: { network: 'Nope' } }), 400);
  });

  test('a signer process killed (SIGKILL) in the middle of a signature: one signature per externalId, and the other two keep signing', async () => {
    const pids = signerPids(s.k.dataDir);
    assert.equal(pids.size, 3, JSON.stringify([...pids]));
    const externalId = `kill-${crypto.randomUUID()}`;
    const hash = keccak256(toHex(externalId));
    const body = { kind: 'Hash', hash, externalId }; // interactive ECDSA: ~1 s of protocol rounds
    const pending = s.client.wallets.generateSignature({ walletId: evm.id, body }).then(
      (r) => ({ ok: r }),
      (e) => ({ err: e }),
    );
    await new Promise((r) => setTimeout(r, 250));
    process.kill(pids.get('signer-1'), 'SIGKILL');
    const first = await pending;
    if (first.err) assert.ok(first.err instanceof DfnsError && first.err.httpStatus >= 500, String(first.err));
    const again = await s.client.wallets.generateSignature({ walletId: evm.id, body });
    if (first.ok) assert.equal(again.id, first.ok.id);
    const all = await s.client.wallets.listSignatures({ walletId: evm.id });
    assert.equal(all.items.filter((x) => x.externalId === externalId).length, 1);
    if (again.status === 'Signed') {
      const sig = `${again.signature.r}${again.signature.s.slice(2)}${again.signature.recid ? '1c' : '1b'}`;
      assert.equal((await recoverAddress({ hash, signature: sig })).toLowerCase(), evm.address.toLowerCase());
    } else {
      assert.equal(again.status, 'Failed');
    }

    // With signer-1 dead, the other two sign every kind.
    const h2 = keccak256(toHex('after the kill'));
    const r2 = await s.client.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Hash', hash: h2 } });
    const sig2 = `${r2.signature.r}${r2.signature.s.slice(2)}${r2.signature.recid ? '1c' : '1b'}`;
    assert.equal((await recoverAddress({ hash: h2, signature: sig2 })).toLowerCase(), evm.address.toLowerCase());
    const account = toAccount(await DfnsWallet.init({ walletId: evm.id, dfnsClient: s.client }));
    const m = await account.signMessage({ message: 'two of three' });
    assert.equal((await recoverMessageAddress({ message: 'two of three', signature: m })).toLowerCase(), evm.address.toLowerCase());
    const ed = await s.client.keys.generateSignature({ keyId: early.ed.id, body: { kind: 'Message', message: '0x6b696c6c6564' } });
    assert.equal(ed.status, 'Signed');
    // Key generation needs every signer. Keys generated ahead of time (at most
    // `pooled_keys_per_scheme` = 8 per scheme) are still handed out and sign with the two
    // left; once the pool is empty, a clean 503, not a half-made key.
    let pooled = 0;
    for (;;) {
      let key;
      try {
        key = await s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519' } });
      } catch (e) {
        assert.ok(e instanceof DfnsError && e.httpStatus === 503, String(e));
        break;
      }
      pooled += 1;
      assert.ok(pooled <= 8, 'more keys than the pool held');
      assert.equal(key.status, 'Active');
      const sig = await s.client.keys.generateSignature({ keyId: key.id, body: { kind: 'Message', message: '0x706f6f6c6564' } });
      assert.ok(ed25519Verifies(key.publicKey, Buffer.from('pooled'), sig.signature.encoded), 'pooled key signs');
    }
    await expectDfnsError(() => s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519' } }), 503);
    const listed = await s.client.keys.listKeys({ query: { limit: 100 } });
    assert.ok(listed.items.every((k) => k.status === 'Active'), 'no half-made key is listed');
  });

});
