// Keys, wallets and signatures through the official SDK and @dfns/lib-viem, against a
// `keyfold dev` with its three signer processes, and a real chain (anvil).
//
// Every signature is checked by viem (address recovery) or Node's own crypto, never by
// Keyfold's code.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
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
import { sepolia } from 'viem/chains';

import {
  DfnsError,
  expectDfnsError,
  makeTmpDir,
  signedRaw,
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

  before(async () => {
    anvil = await startAnvil();
    const dir = makeTmpDir();
    const cfg = path.join(dir, 'keyfold.toml');
    fs.writeFileSync(cfg, `[networks.EthereumSepolia]\nrpc_url = "${anvil.url}"\nchain_id = 11155111\n`);
    s = await startAndLogin({ signers: true, args: ['--config', cfg] });
    await waitSchemeReady(s.k.baseUrl, 'ECDSA');
    evm = await s.client.wallets.createWallet({ body: { network: 'EthereumSepolia', name: 'evm' } });
  });

  after(async () => {
    await s?.k.stop();
    await anvil?.stop();
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
});
