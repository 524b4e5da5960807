// POST /wallets/{id}/transactions on a Solana network, end to end through the official SDK,
// against a `keyfold dev` with its three signer processes and a FAKE Solana JSON-RPC node
// BACKED BY THE REAL RUNTIME (`startLiteSvmRpc()` below): an HTTP server in this test process
// that answers the JSON-RPC calls Keyfold makes (sendTransaction, getSignatureStatuses,
// getTransaction, getBalance) by executing the transactions in LiteSVM — Solana's own bank and
// programs (system program, signature verification, fees, rent) in a library.
//
// What is fake: the node around the runtime. There is no gossip, no leader, no mempool: a
// transaction sendTransaction accepts is executed at once, in the current slot, and reported
// "confirmed" from then on; the slot then advances by one. What is real: whether a transaction
// is valid, what it does to balances, whether its signatures verify, the fee it costs. A
// sendTransaction runs the node's preflight (signature check + simulation) and answers its
// failures the way a real node does (-32002 "Transaction simulation failed: …", -32003), with
// nothing executed. One fault knob, `drop(n)`: the node accepts a transaction and the network
// then loses it (its status stays null), as happens on real clusters.
//
// Every check is made against LiteSVM or with independent code (Node's ed25519, @solana/kit's
// codecs), never with Keyfold's own code.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import {
  address,
  appendTransactionMessageInstruction,
  compileTransaction,
  createNoopSigner,
  createSolanaRpc,
  createTransactionMessage,
  generateKeyPairSigner,
  getAddressEncoder,
  getBase58Decoder,
  getBase58Encoder,
  getCompiledTransactionMessageDecoder,
  getTransactionDecoder,
  getTransactionEncoder,
  partiallySignTransactionMessageWithSigners,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/kit';
import { getTransferSolInstruction } from '@solana-program/system';

import { expectDfnsError, makeTmpDir, startAndLogin } from './lib/harness.mjs';

// LiteSVM's native binding, used directly (see wallets.test.mjs: the `litesvm` wrapper lists a
// binary per platform as optional dependencies, and `npm ci` refuses a lock holding only ours).
const { FailedTransactionMetadata, LiteSvm } = createRequire(import.meta.url)('litesvm-linux-x64-gnu');

const b58 = getBase58Decoder(); // bytes -> base58 text
const unb58 = getBase58Encoder(); // base58 text -> bytes
const addrBytes = (a) => getAddressEncoder().encode(a);
const hex = (bytes) => `0x${Buffer.from(bytes).toString('hex')}`;

/** Solana's wire size limit for one transaction (PACKET_DATA_SIZE). */
const PACKET_DATA_SIZE = 1232;
/** Solana's base fee per signature, in lamports (no priority fee is set by these tests). */
const LAMPORTS_PER_SIGNATURE = 5000n;

// ---------------------------------------------------------------------------------------
// wire format

/** Solana's compact-u16 ("shortvec") at `at`: { value, next } or null. */
function shortvec(bytes, at) {
  let value = 0;
  for (let i = 0; i < 3; i++) {
    if (at + i >= bytes.length) return null;
    const b = bytes[at + i];
    value |= (b & 0x7f) << (7 * i);
    if (!(b & 0x80)) return { value, next: at + i + 1 };
  }
  return null;
}

/**
 * Splits wire bytes into { signatures: [Uint8Array(64)], message, version, numSigners }, or null
 * when they are not exactly one well-formed transaction. Parsed here (with @solana/kit's
 * message decoder), independently of Keyfold and of LiteSVM.
 */
function splitWire(bytes) {
  const n = shortvec(bytes, 0);
  if (!n || n.value === 0) return null;
  const msgStart = n.next + 64 * n.value;
  if (msgStart >= bytes.length) return null;
  const signatures = [];
  for (let i = 0; i < n.value; i++) signatures.push(bytes.slice(n.next + 64 * i, n.next + 64 * (i + 1)));
  const message = bytes.slice(msgStart);
  let compiled;
  let read;
  try {
    [compiled, read] = getCompiledTransactionMessageDecoder().read(message, 0);
  } catch {
    return null;
  }
  if (read !== message.length) return null; // trailing bytes
  if (compiled.header.numSignerAccounts !== n.value) return null;
  return { signatures, message, version: compiled.version, numSigners: n.value, compiled };
}

// ---------------------------------------------------------------------------------------
// LiteSVM's errors in the shape a real node gives them

/**
 * Rust Debug text (what LiteSVM's `toString()` prints) to serde's externally tagged JSON, the
 * shape a real node puts in `err`: `InstructionError(0, Custom(1))` →
 * `{"InstructionError":[0,{"Custom":1}]}`, `InsufficientFundsForRent { account_index: 1 }` →
 * `{"InsufficientFundsForRent":{"account_index":1}}`, `AlreadyProcessed` → `"AlreadyProcessed"`.
 * (The binding's `err()` returns TypeScript const-enum numbers, which have no names at runtime.)
 */
function debugToJson(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const value = () => {
    ws();
    const num = /^-?\d+/.exec(text.slice(i));
    if (num) {
      i += num[0].length;
      return Number(num[0]);
    }
    if (text[i] === '"') {
      const end = text.indexOf('"', i + 1);
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    if (text[i] === '[') {
      i++;
      return list(']');
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
    if (!id) throw new Error(`cannot read ${JSON.stringify(text.slice(i, i + 20))}`);
    i += id[0].length;
    ws();
    if (text[i] === '(') {
      i++;
      const items = list(')');
      return { [id[0]]: items.length === 1 ? items[0] : items };
    }
    if (text[i] === '{') {
      i++;
      const o = {};
      for (;;) {
        ws();
        if (text[i] === '}') {
          i++;
          break;
        }
        const f = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))[0];
        i += f.length;
        ws();
        i++; // ':'
        o[f] = value();
        ws();
        if (text[i] === ',') i++;
      }
      return { [id[0]]: o };
    }
    return id[0];
  };
  const list = (close) => {
    const items = [];
    for (;;) {
      ws();
      if (text[i] === close) {
        i++;
        return items;
      }
      items.push(value());
      ws();
      if (text[i] === ',') i++;
    }
  };
  return value();
}

/** The `err` of a LiteSVM result, as JSON (null when it succeeded). */
function errJson(result) {
  if (!(result instanceof FailedTransactionMetadata)) return null;
  const m = /FailedTransactionMetadata \{ err: (.*?), meta: TransactionMetadata/.exec(result.toString());
  if (!m) return result.toString();
  try {
    return debugToJson(m[1]);
  } catch {
    return m[1];
  }
}

/** A transaction error as solana-sdk's Display renders it (the text real nodes put in messages). */
function errDisplay(err) {
  const fixed = {
    AlreadyProcessed: 'This transaction has already been processed',
    BlockhashNotFound: 'Blockhash not found',
    AccountNotFound: 'Attempt to debit an account but found no record of a prior credit.',
    InsufficientFundsForFee: 'Insufficient funds for fee',
    SignatureFailure: 'Transaction did not pass signature verification',
  };
  if (typeof err === 'string') return fixed[err] ?? err;
  if (err?.InstructionError) {
    const [index, inner] = err.InstructionError;
    const what = inner?.Custom !== undefined ? `custom program error: 0x${inner.Custom.toString(16)}` : JSON.stringify(inner);
    return `Error processing Instruction ${index}: ${what}`;
  }
  if (err?.InsufficientFundsForRent) {
    return `Transaction results in an account (${err.InsufficientFundsForRent.account_index}) with insufficient funds for rent`;
  }
  return JSON.stringify(err);
}

/**
 * The fee LiteSVM charged. Its JS binding (1.5) has no getter for it, but its Debug rendering
 * of the result carries it (`fee: 5000`); if that ever changes, Solana's base fee per
 * signature (5000 lamports, no priority fee here) is used instead.
 */
function feeOf(result, numSigners) {
  const m = /fee: (\d+)/.exec(result.toString());
  return m ? BigInt(m[1]) : LAMPORTS_PER_SIGNATURE * BigInt(numSigners);
}

// ---------------------------------------------------------------------------------------
// the fake node

class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

/**
 * A FAKE Solana JSON-RPC node BACKED BY THE REAL RUNTIME: an HTTP JSON-RPC server on a free
 * loopback port whose state is a LiteSVM instance. Returns
 *   { url, svm, sent, calls, landed, drop(n), sendsOf(sig), stop() }
 * where `sent` lists every sendTransaction ({ bytes, sig, outcome }), `calls` counts requests
 * by method, and `landed` maps a base58 signature to { slot, blockTime, fee, err } for what
 * LiteSVM executed.
 */
async function startLiteSvmRpc() {
  const svm = new LiteSvm();
  const sent = [];
  const calls = new Map();
  const landed = new Map();
  let dropsLeft = 0; // fault knob: see `drop(n)`
  const slot = () => svm.getClock().slot;
  const context = () => ({ slot: Number(slot()), apiVersion: '2.2.0' });

  function sendTransaction([data, cfg = {}]) {
    if (typeof data !== 'string') throw new RpcError(-32602, 'Invalid params: expected a string transaction');
    const encoding = cfg.encoding ?? 'base58'; // a real node's default
    let bytes;
    if (encoding === 'base64') bytes = new Uint8Array(Buffer.from(data, 'base64'));
    else if (encoding === 'base58') bytes = unb58.encode(data);
    else throw new RpcError(-32602, `Invalid params: unsupported encoding: ${encoding}`);
    const entry = { bytes, sig: null, outcome: null, at: Date.now() };
    sent.push(entry);
    if (bytes.length > PACKET_DATA_SIZE) {
      entry.outcome = 'too large';
      throw new RpcError(
        -32602,
        `${encoding} encoded solana_transaction::versioned::VersionedTransaction too large: ${bytes.length} bytes (max: encoded/raw 1644/${PACKET_DATA_SIZE})`,
      );
    }
    // LiteSVM aborts the whole process on bytes it cannot deserialize, so they are checked
    // first; a real node answers them with this -32602.
    const wire = splitWire(bytes);
    if (!wire) {
      entry.outcome = 'undecodable';
      throw new RpcError(-32602, 'invalid transaction: failed to deserialize solana_transaction::versioned::VersionedTransaction');
    }
    const sig = b58.decode(wire.signatures[0]);
    entry.sig = sig;
    const legacy = wire.version === 'legacy';
    const simulate = () => (legacy ? svm.simulateLegacyTransaction(bytes) : svm.simulateVersionedTransaction(bytes));
    const execute = () => (legacy ? svm.sendLegacyTransaction(bytes) : svm.sendVersionedTransaction(bytes));

    // Preflight, as a real node runs it unless skipPreflight: signature verification, then a
    // simulation against the bank. A failure is answered with the node's error codes and the
    // transaction is NOT forwarded: nothing executes, no fee is charged. (A transaction already
    // processed fails its simulation with AlreadyProcessed: that message is what a real node
    // answers a re-send with.)
    if (!cfg.skipPreflight) {
      const sim = simulate();
      if (sim instanceof FailedTransactionMetadata) {
        const err = errJson(sim);
        entry.outcome = `preflight: ${JSON.stringify(err)}`;
        if (err === 'SignatureFailure') throw new RpcError(-32003, 'Transaction signature verification failure');
        const meta = sim.meta();
        throw new RpcError(-32002, `Transaction simulation failed: ${errDisplay(err)}`, {
          err,
          logs: meta.logs(),
          accounts: null,
          unitsConsumed: Number(meta.computeUnitsConsumed()),
          returnData: null,
        });
      }
    }
    // Fault knob: accepted and forwarded, then lost before any leader executed it (a real
    // node answers such a send with the signature just the same; the status stays null).
    if (dropsLeft > 0) {
      dropsLeft--;
      entry.outcome = 'dropped';
      return sig;
    }
    // Forwarded and executed at once, in the current slot.
    const s = slot();
    const result = execute();
    // Whether it landed is LiteSVM's verdict: a transaction is in its history when the bank
    // processed it (successfully, or failing in a program and paying its fee); one refused
    // before that (bad blockhash, no fee, duplicate, bad signature) never lands, as on a chain.
    const inHistory = svm.getTransaction(wire.signatures[0]) !== null;
    if (inHistory && !landed.has(sig)) {
      landed.set(sig, {
        slot: s,
        // LiteSVM's clock starts at Unix time 0; the node stamps its own time, as a validator
        // stamps a block.
        blockTime: Math.floor(Date.now() / 1000),
        fee: feeOf(result instanceof FailedTransactionMetadata ? result.meta() : result, wire.numSigners),
        err: errJson(result),
        logs: (result instanceof FailedTransactionMetadata ? result.meta() : result).logs(),
      });
      svm.warpToSlot(s + 1n); // the next transaction lands in a later slot
      entry.outcome = result instanceof FailedTransactionMetadata ? `landed, failed: ${JSON.stringify(errJson(result))}` : 'landed';
    } else {
      entry.outcome = `not landed: ${JSON.stringify(errJson(result))}`;
    }
    return sig;
  }

  function status(sig) {
    let sigBytes;
    try {
      sigBytes = unb58.encode(sig);
    } catch {
      throw new RpcError(-32602, `Invalid param: ${sig}`);
    }
    if (sigBytes.length !== 64) throw new RpcError(-32602, `Invalid param: ${sig}`);
    const rec = landed.get(sig);
    // Known to LiteSVM, or nothing: an unknown signature is null, as on a real node.
    if (!rec || svm.getTransaction(sigBytes) === null) return null;
    return rec;
  }

  const methods = {
    sendTransaction,
    getSignatureStatuses([sigs]) {
      if (!Array.isArray(sigs)) throw new RpcError(-32602, 'Invalid params: expected an array of signatures');
      return {
        context: context(),
        value: sigs.map((sig) => {
          const rec = status(sig);
          if (!rec) return null;
          return {
            slot: Number(rec.slot),
            confirmations: Number(slot() - rec.slot),
            err: rec.err,
            status: rec.err === null ? { Ok: null } : { Err: rec.err },
            confirmationStatus: 'confirmed',
          };
        }),
      };
    },
    // The parts of a real answer that LiteSVM knows: slot, block time, fee, error, logs.
    // (Balances before/after and the decoded transaction are not reproduced.)
    getTransaction([sig]) {
      const rec = status(sig);
      if (!rec) return null;
      return {
        slot: Number(rec.slot),
        blockTime: rec.blockTime,
        meta: {
          err: rec.err,
          status: rec.err === null ? { Ok: null } : { Err: rec.err },
          fee: Number(rec.fee),
          logMessages: rec.logs,
        },
      };
    },
    getBalance([addr]) {
      let bytes;
      try {
        bytes = addrBytes(address(addr));
      } catch {
        throw new RpcError(-32602, 'Invalid param: Invalid');
      }
      return { context: context(), value: Number(svm.getBalance(bytes) ?? 0n) };
    },
    getLatestBlockhash() {
      return {
        context: context(),
        value: { blockhash: svm.latestBlockhash(), lastValidBlockHeight: Number(slot()) + 150 },
      };
    },
    getSlot: () => Number(slot()),
    getHealth: () => 'ok',
  };

  function answer(req) {
    const id = req?.id ?? null;
    const method = req?.method;
    calls.set(method, (calls.get(method) ?? 0) + 1);
    const fn = Object.hasOwn(methods, method) ? methods[method] : null;
    if (!fn) return { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } };
    try {
      return { jsonrpc: '2.0', id, result: fn(req.params ?? []) };
    } catch (e) {
      if (!(e instanceof RpcError)) throw e;
      const error = { code: e.code, message: e.message };
      if (e.data !== undefined) error.data = e.data;
      return { jsonrpc: '2.0', id, error };
    }
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let out;
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        out = Array.isArray(body) ? body.map(answer) : answer(body);
      } catch (e) {
        if (e instanceof SyntaxError) out = { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } };
        else out = { jsonrpc: '2.0', id: null, error: { code: -32603, message: `Internal error: ${e.message}` } };
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve); // port 0: the kernel picks a free one
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    svm,
    sent,
    calls,
    landed,
    /** Loses the next `n` transactions that pass preflight (they never execute). */
    drop: (n) => {
      dropsLeft = n;
    },
    /** How many times sendTransaction received the transaction whose first signature is `sig`. */
    sendsOf: (sig) => sent.filter((e) => e.sig === sig).length,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------
// the tests

const FINAL = new Set(['Confirmed', 'Failed', 'Rejected']);

describe('Solana broadcastTransaction against a LiteSVM-backed fake RPC node', () => {
  let fake;
  let rpc; // @solana/kit's RPC client on the fake node
  let s; // { k, client, token, signer }
  let w; // the SolanaDevnet wallet
  let payer; // its address
  let walletKey; // its public key, for Node's crypto
  const done = {};

  /** A fresh base58 address nobody holds (random 32 bytes). */
  const freshAddress = () => address(b58.decode(crypto.randomBytes(32)));
  const balance = (a) => fake.svm.getBalance(addrBytes(a)) ?? 0n;

  /** An unsigned transfer (wire bytes, zeroed signatures), fee payer the wallet. */
  async function transferMessage({ source = createNoopSigner(payer), to, amount, version = 0 }) {
    const { value: latest } = await rpc.getLatestBlockhash().send();
    return pipe(
      createTransactionMessage({ version }),
      (m) => setTransactionMessageFeePayer(payer, m),
      (m) => setTransactionMessageLifetimeUsingBlockhash(latest, m),
      (m) => appendTransactionMessageInstruction(getTransferSolInstruction({ source, destination: to, amount }), m),
    );
  }
  const wire = (tx) => new Uint8Array(getTransactionEncoder().encode(tx));

  async function waitFinal(transactionId, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    let t;
    for (;;) {
      t = await s.client.wallets.getTransaction({ walletId: w.id, transactionId });
      if (FINAL.has(t.status)) return t;
      if (Date.now() > deadline) throw new Error(`transaction ${transactionId} not final after ${timeoutMs} ms: ${JSON.stringify(t)}`);
      await sleep(100);
    }
  }

  const ed25519Verify = (message, signature) => crypto.verify(null, Buffer.from(message), walletKey, Buffer.from(signature));

  async function transactionCount() {
    const list = await s.client.wallets.listTransactions({ walletId: w.id, query: { limit: 100 } });
    return list.items.length;
  }

  before(async () => {
    fake = await startLiteSvmRpc();
    rpc = createSolanaRpc(fake.url);
    const dir = makeTmpDir();
    const cfg = path.join(dir, 'keyfold.toml');
    fs.writeFileSync(
      cfg,
      `[networks.SolanaDevnet]\nrpc_url = "${fake.url}"\n` +
        // A lost transaction refused when re-sent is failed 1 s after its broadcast (default 120 s).
        `[transfers]\ntracker_interval_ms = 200\ndropped_after_secs = 1\n`,
    );
    s = await startAndLogin({ signers: true, args: ['--config', cfg] });
    // EdDSA keys need no ECDSA aux info: no waiting for readiness.
    w = await s.client.wallets.createWallet({ body: { network: 'SolanaDevnet', name: 'sol-broadcast' } });
    assert.equal(w.signingKey.scheme, 'EdDSA');
    payer = address(w.address);
    assert.deepEqual(Buffer.from(addrBytes(payer)), Buffer.from(w.signingKey.publicKey, 'hex'), 'address = base58 public key');
    walletKey = crypto.createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(w.signingKey.publicKey, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    fake.svm.airdrop(addrBytes(payer), 2_000_000_000n);
  });

  after(async () => {
    await s?.k.stop();
    await fake?.stop();
  });

  test('a SOL transfer built by the caller is signed by the wallet, sent once, and ends Confirmed with the chain\'s fee', async () => {
    const to = freshAddress();
    const amount = 1_234_567n; // above the rent-exempt minimum for a new account (890 880)
    const unsignedTx = compileTransaction(await transferMessage({ to, amount }));
    const unsigned = wire(unsignedTx);
    const walletBefore = balance(payer);
    const sentBefore = fake.sent.length;
    const body = { kind: 'Transaction', transaction: hex(unsigned), externalId: `sol-${crypto.randomUUID()}` };

    const res = await s.client.wallets.broadcastTransaction({ walletId: w.id, body });
    assert.match(res.id, /^tx-/, JSON.stringify(res));
    assert.equal(res.walletId, w.id);
    assert.equal(res.network, 'SolanaDevnet');
    assert.deepEqual(res.requestBody, body);
    assert.ok(['Executing', 'Broadcasted', 'Confirmed'].includes(res.status), JSON.stringify(res));

    const t = await waitFinal(res.id);
    assert.equal(t.status, 'Confirmed', JSON.stringify(t));
    assert.equal(t.txHash, res.txHash);

    // What the node received: one sendTransaction, our message untouched, the wallet's
    // signature in its slot (the fee payer's, the first).
    const received = fake.sent.slice(sentBefore);
    assert.equal(received.length, 1, JSON.stringify(received.map((e) => e.outcome)));
    assert.equal(received[0].outcome, 'landed');
    const got = splitWire(received[0].bytes);
    const mine = splitWire(unsigned);
    assert.deepEqual(Buffer.from(got.message), Buffer.from(mine.message), 'the message is sent as the caller built it');
    assert.equal(got.numSigners, 1);
    assert.equal(t.txHash, b58.decode(got.signatures[0]), 'txHash = base58 of the first signature');
    assert.ok(ed25519Verify(got.message, got.signatures[0]), 'the signature verifies against the wallet key');
    const decoded = getTransactionDecoder().decode(received[0].bytes);
    assert.deepEqual(Object.keys(decoded.signatures), [payer]);

    // The chain: the recipient got exactly the amount; the wallet paid amount + LiteSVM's fee.
    const landed = fake.landed.get(t.txHash);
    assert.ok(landed, 'LiteSVM executed it');
    assert.equal(landed.err, null);
    assert.equal(balance(to), amount);
    assert.equal(balance(payer), walletBefore - amount - landed.fee);
    assert.equal(t.fee, String(landed.fee), `Keyfold's fee is the chain's (${JSON.stringify(t)})`);
    assert.ok(t.dateConfirmed && !Number.isNaN(Date.parse(t.dateConfirmed)), JSON.stringify(t));
    assert.ok((fake.calls.get('getSignatureStatuses') ?? 0) >= 1, 'settled from getSignatureStatuses');

    // GET /assets reads the balance from the node (and kit's client reads the same there).
    const assets = await s.client.wallets.getWalletAssets({ walletId: w.id });
    const sol = assets.assets.filter((a) => a.kind === 'Native');
    assert.equal(sol.length, 1, JSON.stringify(assets));
    assert.equal(sol[0].symbol, 'SOL');
    assert.equal(sol[0].decimals, 9);
    assert.equal(sol[0].balance, String(balance(payer)));
    assert.equal((await rpc.getBalance(payer).send()).value, balance(payer));
    done.first = { body, res, t };
  });

  test('the same externalId again: the same transaction, sent to the node only once', async () => {
    assert.ok(done.first, 'needs the previous test');
    const { body, res, t } = done.first;
    const [a, b] = await Promise.all([
      s.client.wallets.broadcastTransaction({ walletId: w.id, body }),
      s.client.wallets.broadcastTransaction({ walletId: w.id, body }),
    ]);
    for (const again of [a, b]) {
      assert.equal(again.id, res.id);
      assert.equal(again.status, 'Confirmed', JSON.stringify(again));
      assert.equal(again.txHash, t.txHash);
    }
    // A few tracker passes later, still one send.
    await sleep(600);
    assert.equal(fake.sendsOf(t.txHash), 1);
    const list = await s.client.wallets.listTransactions({ walletId: w.id, query: { limit: 100 } });
    assert.equal(list.items.filter((x) => x.externalId === body.externalId).length, 1);
  });

  test('a transaction that still needs another signer is a 400, and nothing is sent', async () => {
    const other = await generateKeyPairSigner();
    const to = freshAddress();
    // The wallet pays the fee; `other` must sign for the lamports it sends, and has not.
    const message = await transferMessage({ source: createNoopSigner(other.address), to, amount: 1_000_000n });
    const unsigned = wire(compileTransaction(message));
    assert.equal(splitWire(unsigned).numSigners, 2);
    const sentBefore = fake.sent.length;
    const rowsBefore = await transactionCount();
    const err = await expectDfnsError(
      () => s.client.wallets.broadcastTransaction({ walletId: w.id, body: { kind: 'Transaction', transaction: hex(unsigned) } }),
      400,
    );
    assert.match(err.message, /signer|signature/i);
    assert.equal(fake.sent.length, sentBefore, 'nothing reached the node');
    assert.equal(await transactionCount(), rowsBefore, 'no transaction was recorded');
  });

  test('a transaction another key has already signed: the wallet adds its signature, the co-signer\'s is kept, it executes', async () => {
    const other = await generateKeyPairSigner();
    fake.svm.airdrop(addrBytes(other.address), 10_000_000n);
    const to = freshAddress();
    const amount = 3_000_000n;
    const message = await transferMessage({ source: other, to, amount });
    const partial = await partiallySignTransactionMessageWithSigners(message);
    const partialBytes = wire(partial);
    const before = splitWire(partialBytes);
    assert.equal(before.numSigners, 2);
    assert.deepEqual(Buffer.from(before.signatures[0]), Buffer.alloc(64), 'the wallet (fee payer) slot is empty');
    const walletBefore = balance(payer);
    const otherBefore = balance(other.address);
    const sentBefore = fake.sent.length;

    const res = await s.client.wallets.broadcastTransaction({ walletId: w.id, body: { kind: 'Transaction', transaction: hex(partialBytes) } });
    const t = await waitFinal(res.id);
    assert.equal(t.status, 'Confirmed', JSON.stringify(t));
    const received = fake.sent.slice(sentBefore);
    assert.equal(received.length, 1);
    const got = splitWire(received[0].bytes);
    assert.deepEqual(Buffer.from(got.message), Buffer.from(before.message));
    assert.ok(ed25519Verify(got.message, got.signatures[0]), 'the wallet signed the message');
    assert.deepEqual(Buffer.from(got.signatures[1]), Buffer.from(before.signatures[1]), 'the co-signer\'s signature is kept');
    assert.equal(t.txHash, b58.decode(got.signatures[0]));
    const landed = fake.landed.get(t.txHash);
    assert.equal(balance(to), amount);
    assert.equal(balance(other.address), otherBefore - amount);
    assert.equal(balance(payer), walletBefore - landed.fee);
    assert.equal(landed.fee, 2n * LAMPORTS_PER_SIGNATURE, 'two signatures, two base fees');
    assert.equal(t.fee, String(landed.fee));
  });

  test('a transaction the network lost: no status, so Keyfold sends the same bytes again, and it lands once', async () => {
    const to = freshAddress();
    const amount = 2_000_000n;
    const walletBefore = balance(payer);
    const sentBefore = fake.sent.length;
    fake.drop(1);
    const res = await s.client.wallets.broadcastTransaction({
      walletId: w.id,
      body: { kind: 'Transaction', transaction: hex(wire(compileTransaction(await transferMessage({ to, amount })))) },
    });
    const t = await waitFinal(res.id);
    assert.equal(t.status, 'Confirmed', JSON.stringify(t));
    const received = fake.sent.slice(sentBefore);
    assert.ok(received.length >= 2, `re-sent: ${JSON.stringify(received.map((e) => e.outcome))}`);
    assert.equal(received[0].outcome, 'dropped');
    assert.equal(received.filter((e) => e.outcome === 'landed').length, 1, JSON.stringify(received.map((e) => e.outcome)));
    for (const e of received) {
      assert.equal(e.sig, t.txHash);
      assert.deepEqual(Buffer.from(e.bytes), Buffer.from(received[0].bytes), 'the same bytes, not a new signature');
    }
    const landed = fake.landed.get(t.txHash);
    assert.equal(balance(to), amount, 'paid once');
    assert.equal(balance(payer), walletBefore - amount - landed.fee);
    assert.equal(t.fee, String(landed.fee));
  });

  test('a transfer of more lamports than the wallet holds fails in the node\'s preflight: Failed with the reason, nothing moves', async () => {
    const to = freshAddress();
    const walletBefore = balance(payer);
    const amount = walletBefore + 1_000_000_000n;
    const unsigned = wire(compileTransaction(await transferMessage({ to, amount })));
    const sentBefore = fake.sent.length;
    const res = await s.client.wallets.broadcastTransaction({ walletId: w.id, body: { kind: 'Transaction', transaction: hex(unsigned) } });
    const t = await waitFinal(res.id);
    assert.equal(t.status, 'Failed', JSON.stringify(t));
    assert.equal(typeof t.reason, 'string', JSON.stringify(t));
    // The node's own words: the system program's "insufficient lamports" is custom error 1.
    assert.match(t.reason, /Transaction simulation failed: Error processing Instruction 0: custom program error: 0x1/, t.reason);

    const received = fake.sent.slice(sentBefore);
    assert.equal(received.length, 1, 'sent once');
    assert.match(received[0].outcome, /^preflight: /);
    if (t.txHash) assert.equal(t.txHash, received[0].sig);
    assert.equal(fake.landed.has(received[0].sig), false, 'it never landed');
    assert.equal(fake.svm.getTransaction(unb58.encode(received[0].sig)), null);
    assert.equal(balance(to), 0n, 'the recipient got nothing');
    assert.equal(balance(payer), walletBefore, 'no fee either: a refused preflight costs nothing');
    // Failed is final: a few tracker passes later, not re-sent and still Failed.
    await sleep(1000);
    assert.equal(fake.sendsOf(received[0].sig), 1);
    assert.equal((await s.client.wallets.getTransaction({ walletId: w.id, transactionId: res.id })).status, 'Failed');
  });

  test('garbage for a transaction is a 400, and nothing is sent', async () => {
    const valid = wire(compileTransaction(await transferMessage({ to: freshAddress(), amount: 1_000_000n })));
    // A well-formed transaction that does not involve the wallet at all.
    const strangerPayer = freshAddress();
    const { value: latest } = await rpc.getLatestBlockhash().send();
    const foreign = wire(
      compileTransaction(
        pipe(
          createTransactionMessage({ version: 0 }),
          (m) => setTransactionMessageFeePayer(strangerPayer, m),
          (m) => setTransactionMessageLifetimeUsingBlockhash(latest, m),
          (m) =>
            appendTransactionMessageInstruction(
              getTransferSolInstruction({ source: createNoopSigner(strangerPayer), destination: freshAddress(), amount: 1n }),
              m,
            ),
        ),
      ),
    );
    const cases = {
      'two bytes': '0x0102',
      'not hex': '0xzz',
      empty: '0x',
      'repeated byte': hex(Buffer.alloc(300, 0xab)),
      'truncated by one byte': hex(valid.slice(0, -1)),
      'no signature slots': hex(valid.slice(1 + 64)), // the bare message
      'one trailing byte': hex(Buffer.concat([valid, Buffer.from([0])])),
      'not the wallet\'s': hex(foreign),
    };
    // Each refused for what is wrong with it (not, say, because Solana broadcasts are refused).
    const why = {
      'not hex': /hex/i,
      'not the wallet\'s': /does not require this wallet/i,
    };
    const sentBefore = fake.sent.length;
    const rowsBefore = await transactionCount();
    for (const [name, transaction] of Object.entries(cases)) {
      try {
        const err = await expectDfnsError(
          () => s.client.wallets.broadcastTransaction({ walletId: w.id, body: { kind: 'Transaction', transaction } }),
          400,
        );
        assert.match(err.message, why[name] ?? /transaction/i);
      } catch (e) {
        throw new Error(`${name}: ${e.message}`);
      }
    }
    assert.equal(fake.sent.length, sentBefore, `nothing reached the node: ${JSON.stringify(fake.sent.slice(sentBefore).map((e) => e.outcome))}`);
    assert.equal(await transactionCount(), rowsBefore, 'no transaction was recorded');
  });

  // A lost transaction whose blockhash has expired can never land: every re-send is refused
  // with -32002 "Transaction simulation failed: Blockhash not found". Once that refusal
  // persists past `dropped_after_secs` (1 s here), the tracker fails it and stops re-sending.
  // (An earlier build ignored the refusal and re-sent it on every pass for ever.)
  test(
    'a lost transaction whose blockhash expired ends Failed, and is no longer re-sent',
    async () => {
      const to = freshAddress();
      const walletBefore = balance(payer);
      const sentBefore = fake.sent.length;
      fake.drop(Number.MAX_SAFE_INTEGER); // the network loses every copy...
      let res;
      try {
        res = await s.client.wallets.broadcastTransaction({
          walletId: w.id,
          body: { kind: 'Transaction', transaction: hex(wire(compileTransaction(await transferMessage({ to, amount: 2_000_000n })))) },
        });
        await sleep(600); // (a few re-sends while the blockhash is still good, all lost)
        fake.svm.expireBlockhash(); // ...until its blockhash is gone: it can never land now
      } finally {
        fake.drop(0);
      }
      const expiredAt = fake.sent.length;
      let t;
      try {
        t = await waitFinal(res.id, 6_000);
      } catch (e) {
        const refused = fake.sent.slice(expiredAt).filter((x) => x.outcome === 'preflight: "BlockhashNotFound"').length;
        throw new Error(`${e.message}\n(${refused} re-sends refused by the node with "Blockhash not found" meanwhile)`);
      }
      assert.equal(t.status, 'Failed', JSON.stringify(t));
      assert.equal(typeof t.reason, 'string');
      assert.ok(fake.sent.slice(sentBefore).every((x) => x.outcome !== 'landed'));
      assert.equal(balance(to), 0n);
      assert.equal(balance(payer), walletBefore);
      const sends = fake.sent.length;
      await sleep(1000);
      assert.equal(fake.sent.length, sends, 'no more re-sends once Failed');
    },
  );

  test('Keyfold only used the JSON-RPC methods a Solana node has', () => {
    const known = new Set(['sendTransaction', 'getSignatureStatuses', 'getTransaction', 'getBalance', 'getLatestBlockhash', 'getSlot', 'getHealth']);
    const unknown = [...fake.calls.keys()].filter((m) => !known.has(m));
    assert.deepEqual(unknown, []);
  });
});
