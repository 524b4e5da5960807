// POST /wallets/{id}/transactions and POST /wallets/{id}/transfers (kind Native) on a Solana
// network, end to end through the official SDK, against a `keyfold dev` with its three signer
// processes and a FAKE Solana JSON-RPC node BACKED BY THE REAL RUNTIME (`startLiteSvmRpc()`
// below): an HTTP server in this test process that answers the JSON-RPC calls Keyfold makes
// (sendTransaction, getSignatureStatuses, getTransaction, getBalance, getLatestBlockhash,
// getMinimumBalanceForRentExemption) by executing the transactions in LiteSVM — Solana's own
// bank and programs (system program, signature verification, fees, rent) in a library.
//
// What is fake: the node around the runtime. There is no gossip, no leader, no mempool: a
// transaction sendTransaction accepts is executed at once, in the current slot, and reported
// "confirmed" from then on; the slot then advances by one. The latest blockhash stays the same
// until a test expires it (`svm.expireBlockhash()`). What is real: whether a transaction is
// valid, what it does to balances, whether its signatures verify, the fee it costs, the
// rent-exempt minimum. A sendTransaction runs the node's preflight (signature check +
// simulation) and answers its failures the way a real node does (-32002 "Transaction
// simulation failed: …", -32003), with nothing executed. Like a real bank's status cache
// (Agave's `is_transaction_already_processed`, keyed by the MESSAGE hash and its blockhash), a
// second transaction with a message already executed is AlreadyProcessed even under another
// signature (LiteSVM alone only dedupes by signature). One fault knob, `drop(n)`: the node
// accepts a transaction and the network then loses it (its status stays null), as happens on
// real clusters. `getRecentPrioritizationFees` answers what the test set
// (`setPrioritizationFees`; LiteSVM has no fee market), all zeros by default.
//
// Every check is made against LiteSVM or with independent code (Node's ed25519, @solana/kit's
// codecs, @solana-program/system's parsers), never with Keyfold's own code.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import {
  AccountRole,
  address,
  appendTransactionMessageInstruction,
  compileTransaction,
  createNoopSigner,
  createSolanaRpc,
  createTransactionMessage,
  decompileTransactionMessage,
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
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
} from '@solana/kit';
import {
  SYSTEM_PROGRAM_ADDRESS,
  SystemInstruction,
  getTransferSolInstruction,
  identifySystemInstruction,
  parseTransferSolInstruction,
} from '@solana-program/system';

import { expectDfnsError, listAllUsers, makeTmpDir, startAndLogin } from './lib/harness.mjs';

// LiteSVM's native binding, used directly (see wallets.test.mjs: the `litesvm` wrapper lists a
// binary per platform as optional dependencies, and `npm ci` refuses a lock holding only ours).
const { FailedTransactionMetadata, LiteSvm } = createRequire(import.meta.url)('litesvm-linux-x64-gnu');

/** The SPL Memo program (v2): Keyfold notes each transfer's id with it. */
const MEMO_PROGRAM_ADDRESS = 'MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr';
/** The Compute Budget program: a priority fee is a compute-unit limit and price set with it. */
const COMPUTE_BUDGET_PROGRAM_ADDRESS = 'ComputeBudget111111111111111111111111111111';

const b58 = getBase58Decoder(); // bytes -> base58 text
const unb58 = getBase58Encoder(); // base58 text -> bytes
const addrBytes = (a) => getAddressEncoder().encode(a);
const hex = (bytes) => `0x${Buffer.from(bytes).toString('hex')}`;

/** Solana's wire size limit for one transaction (PACKET_DATA_SIZE). */
const PACKET_DATA_SIZE = 1232;
/** Solana's base fee per signature, in lamports (no priority fee is set by these tests). */
const LAMPORTS_PER_SIGNATURE = 5000n;
/** The JSON-RPC methods a real Solana node has, of those this fake answers. */
const SOLANA_RPC_METHODS = new Set([
  'sendTransaction',
  'getSignatureStatuses',
  'getTransaction',
  'getBalance',
  'getLatestBlockhash',
  'getMinimumBalanceForRentExemption',
  'getRecentPrioritizationFees',
  'getSlot',
  'getHealth',
]);

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
  // The bank's status cache: the messages executed (hex of their bytes, which include the
  // blockhash) → the signature they landed under.
  const executedMessages = new Map();
  let dropsLeft = 0; // fault knob: see `drop(n)`
  // What recent slots paid per compute unit (micro-lamports): LiteSVM has no fee market, so
  // the tests set it (`setPrioritizationFees`); a quiet cluster answers all zeros.
  let prioritizationFees = [];
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
    // answers a re-send with. So does a message executed before under another signature: a real
    // bank checks its status cache after the signature and the blockhash, before executing.)
    const messageKey = Buffer.from(wire.message).toString('hex');
    const duplicate = executedMessages.has(messageKey);
    const withDedup = (result) => {
      const err = result instanceof FailedTransactionMetadata ? errJson(result) : null;
      if (duplicate && err !== 'SignatureFailure' && err !== 'BlockhashNotFound') return 'AlreadyProcessed';
      return err;
    };
    if (!cfg.skipPreflight) {
      const sim = simulate();
      const err = withDedup(sim);
      if (err !== null) {
        entry.outcome = `preflight: ${JSON.stringify(err)}`;
        if (err === 'SignatureFailure') throw new RpcError(-32003, 'Transaction signature verification failure');
        const meta = sim.meta();
        throw new RpcError(-32002, `Transaction simulation failed: ${errDisplay(err)}`, {
          err,
          logs: err === 'AlreadyProcessed' ? [] : meta.logs(),
          accounts: null,
          unitsConsumed: err === 'AlreadyProcessed' ? 0 : Number(meta.computeUnitsConsumed()),
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
    if (duplicate) {
      // (skipPreflight) the bank refuses it: nothing executes, no fee.
      const err = withDedup(simulate());
      if (err === 'AlreadyProcessed') {
        entry.outcome = 'not landed: "AlreadyProcessed"';
        return sig;
      }
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
      executedMessages.set(messageKey, sig);
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
    // The bank's own rent: LiteSVM's Rent sysvar.
    getMinimumBalanceForRentExemption([len, cfg]) {
      if (!Number.isSafeInteger(len) || len < 0 || (cfg !== undefined && (typeof cfg !== 'object' || cfg === null))) {
        throw new RpcError(-32602, 'Invalid params: expected a data length (usize) and an optional config');
      }
      return Number(svm.minimumBalanceForRentExemption(BigInt(len)));
    },
    getRecentPrioritizationFees() {
      return prioritizationFees.map((fee, i) => ({ slot: Math.max(0, Number(slot()) - i), prioritizationFee: fee }));
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
    /** What getRecentPrioritizationFees answers from now on (one entry per recent slot). */
    setPrioritizationFees: (fees) => {
      prioritizationFees = fees;
    },
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
    const unknown = [...fake.calls.keys()].filter((m) => !SOLANA_RPC_METHODS.has(m));
    assert.deepEqual(unknown, []);
  });
});

// ---------------------------------------------------------------------------------------
// POST /wallets/{id}/transfers, kind Native, on SolanaDevnet: Keyfold builds the transaction
// itself (one System-program transfer, the wallet paying the fee), so each check reads what
// the node received and what LiteSVM did with it.

const isIso = (d) => typeof d === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(d) && !Number.isNaN(Date.parse(d));
const U64_MAX = 2n ** 64n - 1n;

describe('Solana Native transfers (POST /wallets/{id}/transfers) against a LiteSVM-backed fake RPC node', () => {
  let fake;
  let s; // { k, client, token, signer }
  let w; // the SolanaDevnet wallet under test
  let payer; // its address
  let walletKey; // its public key, for Node's crypto
  let userId; // the admin's user id (the requester)
  let RENT; // LiteSVM's rent-exempt minimum for an account without data
  const done = {};

  const FUNDS = 20_000_000_000n; // 20 SOL airdropped to the wallet

  /** The address of a freshly generated key pair: an account that does not exist yet. */
  const freshAddress = async () => (await generateKeyPairSigner()).address;
  const balance = (a) => fake.svm.getBalance(addrBytes(a)) ?? 0n;
  const le64 = (n) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(n);
    return b;
  };

  function publicKeyOf(wallet) {
    return crypto.createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(wallet.signingKey.publicKey, 'hex')]),
      format: 'der',
      type: 'spki',
    });
  }
  const ed25519Verify = (message, signature, key = walletKey) => crypto.verify(null, Buffer.from(message), key, Buffer.from(signature));

  const transfer = (body, walletId = w.id) => s.client.wallets.transferAsset({ walletId, body });

  async function waitTransfer(transferId, { walletId = w.id, timeoutMs = 30_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = await s.client.wallets.getTransfer({ walletId, transferId });
      if (FINAL.has(t.status)) return t;
      if (Date.now() > deadline) throw new Error(`transfer ${transferId} not final after ${timeoutMs} ms: ${JSON.stringify(t)}`);
      await sleep(100);
    }
  }

  async function confirmed(transferId, opts) {
    const t = await waitTransfer(transferId, opts);
    assert.equal(t.status, 'Confirmed', JSON.stringify(t));
    return t;
  }

  /** Every transfer row of a wallet (GET /wallets/{id}/transfers, all pages). */
  async function allTransfers(walletId = w.id) {
    const items = [];
    let paginationToken;
    for (let i = 0; i < 100; i++) {
      const page = await s.client.wallets.listTransfers({ walletId, query: { limit: 100, paginationToken } });
      items.push(...page.items);
      if (!page.nextPageToken) return items;
      paginationToken = page.nextPageToken;
    }
    throw new Error('listTransfers does not terminate');
  }

  /**
   * What a transaction the node received does, read with @solana/kit and
   * @solana-program/system only: { wire, feePayer, source, destination, amount, blockhash }.
   * Asserts it is one legacy transaction, one signer, one System-program transfer followed by
   * one SPL Memo (v2) instruction that no account signs; `memo` is its UTF-8 text (Keyfold
   * writes the transfer's id there, so two identical payments are two messages).
   */
  function decodeTransfer(bytes) {
    const wire = splitWire(bytes);
    assert.ok(wire, 'one well-formed transaction');
    assert.equal(wire.version, 'legacy', 'a legacy transaction');
    assert.equal(wire.numSigners, 1, 'one signature');
    assert.equal(wire.compiled.header.numReadonlySignerAccounts, 0);
    const message = decompileTransactionMessage(wire.compiled);
    // A priority fee comes first: SetComputeUnitLimit (2, u32) then SetComputeUnitPrice (3, u64).
    let rest = message.instructions;
    let budget = null;
    if (rest[0]?.programAddress === COMPUTE_BUDGET_PROGRAM_ADDRESS) {
      const [limit, price] = rest;
      assert.equal(price.programAddress, COMPUTE_BUDGET_PROGRAM_ADDRESS);
      const l = Buffer.from(limit.data);
      const p = Buffer.from(price.data);
      assert.equal(l[0], 2, 'SetComputeUnitLimit');
      assert.equal(p[0], 3, 'SetComputeUnitPrice');
      budget = { limit: l.readUInt32LE(1), price: p.readBigUInt64LE(1) };
      rest = rest.slice(2);
    }
    assert.equal(rest.length, 2, 'a transfer and a memo');
    const [ix, note] = rest;
    assert.equal(note.programAddress, MEMO_PROGRAM_ADDRESS);
    assert.equal(note.accounts?.length ?? 0, 0, 'the memo names no signer');
    assert.equal(ix.programAddress, SYSTEM_PROGRAM_ADDRESS);
    assert.equal(identifySystemInstruction(ix), SystemInstruction.TransferSol);
    const parsed = parseTransferSolInstruction(ix);
    return {
      wire,
      feePayer: message.feePayer.address,
      source: parsed.accounts.source,
      destination: parsed.accounts.destination,
      amount: parsed.data.amount,
      blockhash: message.lifetimeConstraint.blockhash,
      memo: Buffer.from(note.data).toString('utf8'),
      budget,
      ix,
    };
  }

  /** The TransferResponse shape of @dfns/sdk 0.8.21, for a Native SOL transfer. */
  function assertShape(t, body, wallet = w) {
    assert.match(t.id, /^xfr-/, JSON.stringify(t));
    assert.equal(t.walletId, wallet.id);
    assert.equal(t.network, 'SolanaDevnet');
    assert.equal(t.requester?.userId, userId, JSON.stringify(t.requester));
    assert.deepEqual(t.requestBody, body);
    assert.equal(t.metadata?.asset?.symbol, 'SOL', JSON.stringify(t.metadata));
    assert.equal(t.metadata?.asset?.decimals, 9, JSON.stringify(t.metadata));
    assert.ok(['Pending', 'Executing', 'Broadcasted', 'Confirmed', 'Failed', 'Rejected'].includes(t.status), t.status);
    assert.ok(isIso(t.dateRequested), `dateRequested ${t.dateRequested}`);
    if (body.externalId !== undefined) assert.equal(t.externalId, body.externalId);
    if (t.txHash !== undefined && t.txHash !== null) {
      assert.equal(unb58.encode(t.txHash).length, 64, `txHash ${t.txHash} is a base58 signature`);
    }
    if (t.status === 'Broadcasted' || t.status === 'Confirmed') {
      assert.ok(t.txHash, `a ${t.status} transfer has a txHash`);
      assert.ok(isIso(t.dateBroadcasted), `dateBroadcasted ${t.dateBroadcasted}`);
    }
    if (t.status === 'Confirmed') {
      assert.ok(isIso(t.dateConfirmed), `dateConfirmed ${t.dateConfirmed}`);
      assert.ok(Date.parse(t.dateRequested) <= Date.parse(t.dateBroadcasted), 'requested ≤ broadcasted');
      assert.ok(Date.parse(t.dateBroadcasted) <= Date.parse(t.dateConfirmed), 'broadcasted ≤ confirmed');
      assert.match(t.fee ?? '', /^\d+$/, `fee ${t.fee}`);
    }
  }

  /** The sendTransaction calls since `from` whose transfer pays `to`. */
  const sendsTo = (to, from = 0) =>
    fake.sent.slice(from).filter((e) => {
      const wire = splitWire(e.bytes);
      if (!wire) return false;
      try {
        return parseTransferSolInstruction(decompileTransactionMessage(wire.compiled).instructions[0]).accounts.destination.address === to;
      } catch {
        return false;
      }
    });

  /**
   * What LiteSVM says of `amount` lamports sent from an account holding `held` to `to`, signed
   * by a throwaway local key (simulated only: nothing changes). The error JSON, or null.
   */
  async function runtimeVerdict({ held, to, amount, toSelf = false }) {
    const local = await generateKeyPairSigner();
    fake.svm.airdrop(addrBytes(local.address), held);
    const message = pipe(
      createTransactionMessage({ version: 'legacy' }),
      (m) => setTransactionMessageFeePayerSigner(local, m),
      (m) => setTransactionMessageLifetimeUsingBlockhash({ blockhash: fake.svm.latestBlockhash(), lastValidBlockHeight: 1_000_000n }, m),
      (m) => appendTransactionMessageInstruction(getTransferSolInstruction({ source: local, destination: toSelf ? local.address : to, amount }), m),
    );
    const bytes = new Uint8Array(getTransactionEncoder().encode(await signTransactionMessageWithSigners(message)));
    return errJson(fake.svm.simulateLegacyTransaction(bytes));
  }

  before(async () => {
    fake = await startLiteSvmRpc();
    RENT = fake.svm.minimumBalanceForRentExemption(0n);
    assert.ok(RENT > LAMPORTS_PER_SIGNATURE, `rent-exempt minimum ${RENT}`);
    const dir = makeTmpDir();
    const cfg = path.join(dir, 'keyfold.toml');
    fs.writeFileSync(
      cfg,
      `[networks.SolanaDevnet]\nrpc_url = "${fake.url}"\n` +
        // A lost transfer refused when re-sent is failed 1 s after its broadcast (default 120 s).
        `[transfers]\ntracker_interval_ms = 200\ndropped_after_secs = 1\n`,
    );
    s = await startAndLogin({ signers: true, args: ['--config', cfg] });
    userId = (await listAllUsers(s.client)).find((u) => u.username === s.k.admin.username)?.userId;
    assert.ok(userId, 'admin user not found');
    w = await s.client.wallets.createWallet({ body: { network: 'SolanaDevnet', name: 'sol-transfers' } });
    assert.equal(w.signingKey.scheme, 'EdDSA');
    payer = address(w.address);
    assert.deepEqual(Buffer.from(addrBytes(payer)), Buffer.from(w.signingKey.publicKey, 'hex'), 'address = base58 public key');
    walletKey = publicKeyOf(w);
    fake.svm.airdrop(addrBytes(payer), FUNDS);
    assert.equal(balance(payer), FUNDS);
  });

  after(async () => {
    await s?.k.stop();
    await fake?.stop();
  });

  test('the fake node answers getMinimumBalanceForRentExemption as a real one does (checked with @solana/kit\'s client)', async () => {
    const rpc = createSolanaRpc(fake.url);
    assert.equal(await rpc.getMinimumBalanceForRentExemption(0n).send(), RENT);
    assert.equal(await rpc.getMinimumBalanceForRentExemption(165n).send(), fake.svm.minimumBalanceForRentExemption(165n));
  });

  test('a Native transfer to a new account: one System transfer signed by the wallet, Confirmed, the recipient gets exactly the amount, the wallet pays amount + 5000', async () => {
    const to = await freshAddress();
    const amount = 1_234_567_890n; // well above the rent-exempt minimum
    const body = { kind: 'Native', to, amount: amount.toString(), externalId: `sol-xfer-${crypto.randomUUID()}` };
    const walletBefore = balance(payer);
    const sentBefore = fake.sent.length;
    assert.equal(balance(to), 0n, 'the recipient does not exist yet');

    const t0 = await transfer(body);
    assertShape(t0, body);
    assert.ok(['Executing', 'Broadcasted', 'Confirmed'].includes(t0.status), JSON.stringify(t0));
    const t = await confirmed(t0.id);
    assertShape(t, body);
    if (t0.txHash) assert.equal(t.txHash, t0.txHash, 'the txHash does not change once signed');
    assert.ok(t.details && typeof t.details === 'object', `details: ${JSON.stringify(t)}`);

    // What the node received: one sendTransaction, landed.
    const received = fake.sent.slice(sentBefore);
    assert.equal(received.length, 1, JSON.stringify(received.map((e) => e.outcome)));
    assert.equal(received[0].outcome, 'landed');
    const d = decodeTransfer(received[0].bytes);
    assert.equal(d.feePayer, payer, 'the wallet pays the fee');
    assert.equal(d.wire.compiled.staticAccounts[0], payer, 'the fee payer is the first account, the one signer');
    assert.equal(d.source.address, payer);
    assert.equal(d.source.role, AccountRole.WRITABLE_SIGNER);
    assert.equal(d.destination.address, to);
    assert.equal(d.destination.role, AccountRole.WRITABLE);
    assert.equal(d.amount, amount);
    assert.equal(d.memo, t.id, 'the memo names the transfer');
    assert.equal(d.blockhash, fake.svm.latestBlockhash(), 'the node\'s latest blockhash');
    assert.ok(ed25519Verify(d.wire.message, d.wire.signatures[0]), 'the signature verifies under the wallet key, over the message bytes');
    assert.equal(t.txHash, b58.decode(d.wire.signatures[0]), 'txHash = base58 of the signature');
    assert.deepEqual(Object.keys(getTransactionDecoder().decode(received[0].bytes).signatures), [payer]);

    // The chain.
    const landed = fake.landed.get(t.txHash);
    assert.ok(landed, 'LiteSVM executed it');
    assert.equal(landed.err, null);
    assert.equal(landed.fee, LAMPORTS_PER_SIGNATURE);
    assert.equal(balance(to), amount, 'the recipient got exactly the amount');
    assert.equal(balance(payer), walletBefore - amount - LAMPORTS_PER_SIGNATURE, 'the wallet paid amount + 5000');
    assert.equal(t.fee, '5000');

    // The same bytes with the amount changed no longer carry a valid signature: LiteSVM
    // refuses them (and Node's ed25519 agrees).
    const at = Buffer.from(received[0].bytes).indexOf(le64(amount));
    assert.ok(at > 0, 'the amount is in the message, little-endian');
    const tampered = Uint8Array.from(received[0].bytes);
    tampered.set(le64(amount + 1_000_000n), at);
    const tw = splitWire(tampered);
    assert.equal(decodeTransfer(tampered).amount, amount + 1_000_000n);
    assert.equal(ed25519Verify(tw.message, tw.signatures[0]), false);
    const toBefore = balance(to);
    const payerBefore = balance(payer);
    assert.equal(errJson(fake.svm.sendLegacyTransaction(tampered)), 'SignatureFailure');
    assert.equal(balance(to), toBefore);
    assert.equal(balance(payer), payerBefore);

    // Listed once; history and assets read the same chain.
    const listed = (await allTransfers()).filter((x) => x.id === t.id);
    assert.equal(listed.length, 1);
    assert.equal(listed[0].status, 'Confirmed');
    assert.equal(listed[0].txHash, t.txHash);
    const history = await s.client.wallets.getWalletHistory({ walletId: w.id, query: { limit: 100 } });
    const h = history.items.filter((x) => x.txHash === t.txHash);
    assert.equal(h.length, 1, JSON.stringify(history.items));
    assert.equal(h[0].kind, 'NativeTransfer');
    assert.equal(h[0].direction, 'Out');
    assert.equal(h[0].blockNumber, Number(landed.slot), 'the slot it landed in');
    assert.equal(Math.floor(Date.parse(h[0].timestamp) / 1000), landed.blockTime);
    assert.equal(h[0].from, payer);
    assert.equal(h[0].to, to);
    assert.equal(h[0].value, amount.toString());
    assert.equal(h[0].fee, '5000');
    assert.equal(h[0].symbol, 'SOL');
    assert.equal(h[0].decimals, 9);
    const assets = await s.client.wallets.getWalletAssets({ walletId: w.id });
    assert.equal(assets.assets.find((a) => a.kind === 'Native')?.balance, String(balance(payer)));
    done.first = { t, body, to, amount };
  });

  test('the same externalId again, twice at once: the same transfer, broadcast only once', async () => {
    assert.ok(done.first, 'needs the previous test');
    const { t, body, to, amount } = done.first;
    const [a, b] = await Promise.all([transfer(body), transfer(body)]);
    for (const again of [a, b]) {
      assert.equal(again.id, t.id);
      assert.equal(again.status, 'Confirmed', JSON.stringify(again));
      assert.equal(again.txHash, t.txHash);
    }
    await sleep(600); // a few tracker passes
    assert.equal(fake.sendsOf(t.txHash), 1);
    assert.equal(sendsTo(to).length, 1, 'one transaction ever paid this recipient');
    assert.equal(balance(to), amount, 'paid once');
    assert.equal((await allTransfers()).filter((x) => x.externalId === body.externalId).length, 1);
  });

  test('a new externalId sent twice concurrently: one transfer id, one sendTransaction, paid once', async () => {
    const to = await freshAddress();
    const amount = 2_500_000n;
    const body = { kind: 'Native', to, amount: amount.toString(), externalId: `sol-xfer-${crypto.randomUUID()}` };
    const sentBefore = fake.sent.length;
    const walletBefore = balance(payer);
    const [a, b] = await Promise.all([transfer(body), transfer(body)]);
    assert.equal(a.id, b.id, 'one transfer');
    assertShape(a, body);
    assertShape(b, body);
    const t = await confirmed(a.id);
    const c = await transfer(body);
    assert.equal(c.id, a.id);
    assert.equal(c.txHash, t.txHash);
    await sleep(600);
    const received = fake.sent.slice(sentBefore);
    assert.equal(received.length, 1, JSON.stringify(received.map((e) => e.outcome)));
    assert.equal(received[0].sig, t.txHash);
    assert.equal(balance(to), amount);
    assert.equal(balance(payer), walletBefore - amount - LAMPORTS_PER_SIGNATURE);
    assert.equal((await allTransfers()).filter((x) => x.externalId === body.externalId).length, 1);
  });

  test('two different transfers at once: both Confirmed, distinct transactions, each recipient gets its amount', async () => {
    const recipients = [await freshAddress(), await freshAddress()];
    const amounts = [3_000_000n, 4_000_000n];
    const bodies = [
      { kind: 'Native', to: recipients[0], amount: amounts[0].toString() },
      { kind: 'Native', to: recipients[1], amount: amounts[1].toString(), priority: 'Fast' },
    ];
    const walletBefore = balance(payer);
    const sentBefore = fake.sent.length;
    const started = await Promise.all(bodies.map((b) => transfer(b)));
    started.forEach((t, i) => assertShape(t, bodies[i]));
    assert.notEqual(started[0].id, started[1].id);
    const finals = await Promise.all(started.map((t) => confirmed(t.id)));
    assert.notEqual(finals[0].txHash, finals[1].txHash);
    finals.forEach((t, i) => {
      assertShape(t, bodies[i]);
      const mine = fake.sent.slice(sentBefore).filter((e) => e.sig === t.txHash);
      assert.equal(mine.length, 1, `sent once: ${t.txHash}`);
      assert.equal(mine[0].outcome, 'landed');
      const d = decodeTransfer(mine[0].bytes);
      assert.equal(d.destination.address, recipients[i]);
      assert.equal(d.amount, amounts[i]);
      assert.ok(ed25519Verify(d.wire.message, d.wire.signatures[0]));
      assert.equal(fake.landed.get(t.txHash)?.fee, LAMPORTS_PER_SIGNATURE, 'no priority fee is charged');
      assert.equal(t.fee, '5000');
      assert.equal(balance(recipients[i]), amounts[i]);
    });
    assert.equal(fake.sent.length - sentBefore, 2);
    assert.equal(balance(payer), walletBefore - amounts[0] - amounts[1] - 2n * LAMPORTS_PER_SIGNATURE);
  });

  test('a transfer to the wallet itself is allowed: Confirmed, it costs the fee only', async () => {
    const walletBefore = balance(payer);
    const body = { kind: 'Native', to: payer, amount: '7000000' };
    const t = await confirmed((await transfer(body)).id);
    assertShape(t, body);
    const landed = fake.landed.get(t.txHash);
    assert.ok(landed, 'LiteSVM executed it');
    assert.equal(landed.err, null);
    assert.equal(balance(payer), walletBefore - LAMPORTS_PER_SIGNATURE);
    assert.equal(t.fee, '5000');
  });

  test('priority fees: the price of the priority\'s percentile of recent slots, a compute-unit limit, the fee LiteSVM charges, and GET /networks/fees agrees', async () => {
    // Recent slots paid these prices (micro-lamports per CU); sorted: 0 100 2000 5000 90000.
    fake.setPrioritizationFees([5000, 0, 90_000, 2000, 100]);
    try {
      const fees = await s.client.networks.getFees({ query: { network: 'SolanaDevnet' } });
      assert.equal(fees.kind, 'Solana');
      assert.deepEqual(
        [fees.slow.computeUnitPrice, fees.standard.computeUnitPrice, fees.fast.computeUnitPrice],
        ['100', '2000', '5000'],
        JSON.stringify(fees),
      );
      for (const [priority, price] of [['Fast', 5000n], ['Slow', 100n]]) {
        const to = await freshAddress();
        const amount = 2_000_000n;
        const walletBefore = balance(payer);
        const sentBefore = fake.sent.length;
        const body = { kind: 'Native', to, amount: amount.toString(), priority };
        const t = await confirmed((await transfer(body)).id);
        const [sent] = fake.sent.slice(sentBefore);
        const d = decodeTransfer(sent.bytes);
        assert.ok(d.budget, 'compute-budget instructions');
        assert.equal(d.budget.price, price, priority);
        // The fee the runtime charges for it: 5000 per signature + ceil(price × limit / 10^6).
        const expected = LAMPORTS_PER_SIGNATURE + (price * BigInt(d.budget.limit) + 999_999n) / 1_000_000n;
        assert.equal(fake.landed.get(t.txHash)?.err, null, 'the limit was enough to run it');
        assert.equal(fake.landed.get(t.txHash)?.fee, expected);
        assert.equal(balance(payer), walletBefore - amount - expected, 'the wallet paid amount + fee');
        assert.equal(balance(to), amount);
        assert.equal(t.fee, expected.toString());
      }
    } finally {
      fake.setPrioritizationFees([]);
    }
  });

  test('bad input: a 4xx with error.message each, nothing sent, no transfer recorded, no lamport moved', async () => {
    const good = await freshAddress();
    const held = balance(payer);
    const sentBefore = fake.sent.length;
    const rowsBefore = (await allTransfers()).length;
    const refuse = async (name, body, why) => {
      try {
        const e = await expectDfnsError(() => transfer(body), 400);
        const message = e.context?.body?.error?.message;
        assert.equal(typeof message, 'string', JSON.stringify(e.context?.body));
        assert.ok(message.length > 0);
        assert.match(message, why);
        return message;
      } catch (e) {
        throw new Error(`${name} (${JSON.stringify(body)}): ${e.message}`);
      }
    };

    // `to` is not a 32-byte base58 address.
    const badTo = {
      'not base58': 'not-base58-0OIl!',
      empty: '',
      'four zero bytes': '1111',
      '31 bytes': b58.decode(crypto.randomBytes(31)),
      '33 bytes': b58.decode(Buffer.concat([Buffer.from([1]), crypto.randomBytes(32)])),
      'an EVM address': `0x${crypto.randomBytes(20).toString('hex')}`,
    };
    for (const [name, to] of Object.entries(badTo)) {
      await refuse(`to: ${name}`, { kind: 'Native', to, amount: RENT.toString() }, /\bto\b/);
    }
    await refuse('Erc20 on Solana', { kind: 'Erc20', contract: await freshAddress(), to: good, amount: RENT.toString() }, /Erc20|EVM|Native/);
    for (const amount of ['0', '000', '-1', '1.5', 'abc', '', ' 1', '1e9', '0x10']) {
      await refuse(`amount ${JSON.stringify(amount)}`, { kind: 'Native', to: good, amount }, /amount/i);
    }
    for (const amount of [U64_MAX + 1n, 10n ** 30n]) {
      await refuse(`amount ${amount} (more than u64)`, { kind: 'Native', to: good, amount: amount.toString() }, /amount|lamports/i);
    }
    // More than the wallet holds, fee included.
    for (const amount of [U64_MAX, held + 1n, held - LAMPORTS_PER_SIGNATURE + 1n]) {
      await refuse(`amount ${amount} of ${held} held`, { kind: 'Native', to: good, amount: amount.toString() }, /insufficient funds/i);
    }
    // A first transfer to a new account below the rent-exempt minimum.
    for (const amount of [1n, RENT - 1n]) {
      await refuse(`${amount} lamports to a new account`, { kind: 'Native', to: good, amount: amount.toString() }, /rent/i);
    }
    // A transfer that would leave the wallet with 0 < left < the rent-exempt minimum.
    for (const left of [1n, RENT - 1n]) {
      const amount = held - LAMPORTS_PER_SIGNATURE - left;
      await refuse(`leaving ${left} lamports`, { kind: 'Native', to: good, amount: amount.toString() }, /rent/i);
    }

    assert.equal(fake.sent.length, sentBefore, `nothing reached the node: ${JSON.stringify(fake.sent.slice(sentBefore).map((e) => e.outcome))}`);
    assert.equal((await allTransfers()).length, rowsBefore, 'no transfer was recorded');
    assert.equal(balance(payer), held);
    assert.equal(balance(good), 0n);

    // The refusals are the runtime's own rules (LiteSVM, simulated with a local key holding
    // as much as the wallet): each of these would have failed on chain.
    assert.deepEqual(await runtimeVerdict({ held, to: good, amount: RENT - 1n }), { InsufficientFundsForRent: { account_index: 1 } });
    assert.deepEqual(await runtimeVerdict({ held, to: good, amount: held - LAMPORTS_PER_SIGNATURE - 1n }), {
      InsufficientFundsForRent: { account_index: 0 },
    });
    assert.deepEqual(await runtimeVerdict({ held, to: good, amount: held - LAMPORTS_PER_SIGNATURE + 1n }), { InstructionError: [0, { Custom: 1 }] });
    assert.equal(await runtimeVerdict({ held, to: good, amount: RENT }), null, 'the rent-exempt minimum itself is fine');
  });

  /** A second SolanaDevnet wallet holding exactly `held` lamports: { wallet, from, key }. */
  async function walletHolding(held, name) {
    const wallet = await s.client.wallets.createWallet({ body: { network: 'SolanaDevnet', name } });
    const from = address(wallet.address);
    fake.svm.airdrop(addrBytes(from), held);
    assert.equal(balance(from), held);
    return { wallet, from, key: publicKeyOf(wallet) };
  }

  /** A Native transfer from `sender` that must end Confirmed, checked against what the node got. */
  async function sendConfirmed(sender, to, amount) {
    const body = { kind: 'Native', to, amount: amount.toString() };
    const sentBefore = fake.sent.length;
    const t = await confirmed((await transfer(body, sender.wallet.id)).id, { walletId: sender.wallet.id });
    assertShape(t, body, sender.wallet);
    const received = fake.sent.slice(sentBefore).filter((e) => e.sig === t.txHash);
    assert.equal(received.length, 1);
    const d = decodeTransfer(received[0].bytes);
    assert.equal(d.feePayer, sender.from);
    assert.equal(d.destination.address, to);
    assert.equal(d.amount, amount);
    assert.ok(ed25519Verify(d.wire.message, d.wire.signatures[0], sender.key));
    assert.equal(fake.landed.get(t.txHash)?.err, null);
    assert.equal(t.fee, '5000');
    return t;
  }

  test('at the limits: exactly the rent-exempt minimum to a new account, 1 lamport to an existing one, then everything but the fee empties the wallet', async () => {
    const HELD = 10_000_000n;
    const fee = LAMPORTS_PER_SIGNATURE;
    const sender = await walletHolding(HELD, 'sol-limits');
    const to = await freshAddress();

    await sendConfirmed(sender, to, RENT);
    assert.equal(balance(to), RENT);
    assert.equal(balance(sender.from), HELD - RENT - fee);
    await sendConfirmed(sender, to, 1n); // the recipient exists now: any amount
    assert.equal(balance(to), RENT + 1n);
    const left = balance(sender.from);
    assert.equal(left, HELD - RENT - 1n - 2n * fee);
    assert.ok(left - fee >= RENT, 'still rent-exempt once the fee is taken');
    await sendConfirmed(sender, to, left - fee); // everything but the fee
    assert.equal(balance(sender.from), 0n, 'emptied');
    assert.equal(fake.svm.getAccount(addrBytes(sender.from)), null, 'and its account is gone');
    assert.equal(balance(to), HELD - 3n * fee);

    const sentBefore = fake.sent.length;
    const rowsBefore = (await allTransfers(sender.wallet.id)).length;
    const e = await expectDfnsError(() => transfer({ kind: 'Native', to, amount: '1' }, sender.wallet.id), 400);
    assert.match(e.context?.body?.error?.message ?? '', /insufficient funds/i);
    assert.equal(fake.sent.length, sentBefore);
    assert.equal((await allTransfers(sender.wallet.id)).length, rowsBefore);
  });

  test('a transfer leaving the wallet with exactly the rent-exempt minimum is allowed', async () => {
    const HELD = 10_000_000n;
    const sender = await walletHolding(HELD, 'sol-at-rent');
    const to = await freshAddress();
    await sendConfirmed(sender, to, HELD - LAMPORTS_PER_SIGNATURE - RENT);
    assert.equal(balance(sender.from), RENT);
    assert.equal(balance(to), HELD - LAMPORTS_PER_SIGNATURE - RENT);
    done.atRent = { sender, to };
  });

  // Solana takes the fee from the fee payer BEFORE the instructions run, and the payer must
  // then still be rent-exempt (or hold 0): a wallet holding less than rent-exempt minimum +
  // 5000 cannot pay any fee. (Found by this test: Keyfold used to check the rent rule only on
  // what was left after the transfer, and broadcast transfers the node was sure to refuse.)
  test(
    'a wallet holding exactly the rent-exempt minimum: "everything but the fee", or a transfer to itself, is refused up front (400, nothing sent) since the node would refuse it',
    async () => {
      assert.ok(done.atRent, 'needs the previous test');
      const { sender, to } = done.atRent;
      const held = balance(sender.from);
      assert.equal(held, RENT);
      const cases = {
        'everything but the fee, to an existing account': { to, amount: held - LAMPORTS_PER_SIGNATURE },
        '1 lamport to the wallet itself': { to: sender.from, amount: 1n },
      };
      // The chain's verdict first (LiteSVM, a local key holding as much): both would fail.
      for (const { to: dest, amount } of Object.values(cases)) {
        assert.deepEqual(await runtimeVerdict({ held, to: dest, amount, toSelf: dest === sender.from }), {
          InsufficientFundsForRent: { account_index: 0 },
        });
      }
      const got = {};
      for (const [name, { to: dest, amount }] of Object.entries(cases)) {
        const sentBefore = fake.sent.length;
        try {
          const t0 = await transfer({ kind: 'Native', to: dest, amount: amount.toString() }, sender.wallet.id);
          const t = await waitTransfer(t0.id, { walletId: sender.wallet.id });
          got[name] = {
            http: 200,
            status: t.status,
            reason: t.reason,
            sends: fake.sent.slice(sentBefore).map((e) => e.outcome),
          };
        } catch (e) {
          got[name] = { http: e.httpStatus, message: e.context?.body?.error?.message ?? e.message, sends: fake.sent.length - sentBefore };
        }
      }
      assert.equal(balance(sender.from), held, 'nothing moved either way');
      for (const [name, r] of Object.entries(got)) {
        assert.ok(r.http === 400 && r.sends === 0, `${name}: expected a 400 with nothing sent, got ${JSON.stringify(got, null, 1)}`);
      }
    },
  );

  test('a transfer the network loses is sent again by the tracker, the same bytes, and confirms once with the same txHash', async () => {
    const to = await freshAddress();
    const amount = 5_000_000n;
    const walletBefore = balance(payer);
    const sentBefore = fake.sent.length;
    fake.drop(1);
    let t0;
    try {
      t0 = await transfer({ kind: 'Native', to, amount: amount.toString() });
    } finally {
      fake.drop(0);
    }
    const t = await confirmed(t0.id);
    if (t0.txHash) assert.equal(t.txHash, t0.txHash);
    const received = fake.sent.slice(sentBefore);
    const outcomes = JSON.stringify(received.map((e) => e.outcome));
    assert.ok(received.length >= 2, `re-sent: ${outcomes}`);
    assert.equal(received[0].outcome, 'dropped');
    assert.equal(received.filter((e) => e.outcome === 'landed').length, 1, outcomes);
    for (const e of received) {
      assert.equal(e.sig, t.txHash);
      assert.deepEqual(Buffer.from(e.bytes), Buffer.from(received[0].bytes), 'the same bytes, not a new signature');
    }
    const d = decodeTransfer(received[0].bytes);
    assert.equal(d.destination.address, to);
    assert.equal(d.amount, amount);
    assert.equal(balance(to), amount, 'paid once');
    assert.equal(balance(payer), walletBefore - amount - LAMPORTS_PER_SIGNATURE);
    assert.equal(t.fee, '5000');
    await sleep(600);
    assert.equal(fake.sendsOf(t.txHash), received.length, 'no more sends once Confirmed');
  });

  // Two transfers with the same recipient and amount planned against the same latest blockhash
  // would be the same MESSAGE under two different signatures, and a real bank runs a message
  // only once per blockhash (its status cache is keyed by the message hash): two requests, one
  // payment. (Found by this test; Keyfold now adds the transfer id as a memo.)
  test(
    'two identical transfers requested at once (same to, same amount, no externalId) are two payments',
    async (t) => {
      const to = await freshAddress();
      const amount = 6_000_000n;
      const body = { kind: 'Native', to, amount: amount.toString() };
      const sentBefore = fake.sent.length;
      const walletBefore = balance(payer);
      const started = await Promise.all([transfer(body), transfer(body)]);
      assert.notEqual(started[0].id, started[1].id, 'two transfers');
      try {
        let finals;
        const deadline = Date.now() + 10_000;
        for (;;) {
          finals = await Promise.all(started.map((t) => s.client.wallets.getTransfer({ walletId: w.id, transferId: t.id })));
          if (finals.every((t) => FINAL.has(t.status)) || Date.now() > deadline) break;
          await sleep(200);
        }
        const sends = fake.sent.slice(sentBefore);
        const bySig = {};
        for (const e of sends) (bySig[e.sig] ??= []).push(e.outcome);
        const messages = Object.keys(bySig).map((sig) => Buffer.from(splitWire(sends.find((e) => e.sig === sig).bytes).message).toString('hex'));
        const evidence = JSON.stringify(
          {
            transfers: finals.map((t) => ({ id: t.id, status: t.status, txHash: t.txHash, reason: t.reason })),
            sendsBySignature: Object.fromEntries(
              Object.entries(bySig).map(([sig, outcomes]) => [sig, { count: outcomes.length, outcomes: [...new Set(outcomes)] }]),
            ),
            sameMessage: messages.length === 2 && messages[0] === messages[1],
            recipientGot: balance(to).toString(),
            walletPaid: (walletBefore - balance(payer)).toString(),
          },
          null,
          1,
        );
        assert.ok(
          finals.every((t) => t.status === 'Confirmed') &&
            finals[0].txHash !== finals[1].txHash &&
            balance(to) === 2n * amount &&
            walletBefore - balance(payer) === 2n * (amount + LAMPORTS_PER_SIGNATURE),
          `expected two Confirmed transfers and two payments; got ${evidence}`,
        );
      } finally {
        // A transfer stuck re-sending is ended for the tests after this one: once its blockhash
        // is gone its re-sends are refused, and the tracker fails it (dropped_after_secs = 1).
        fake.svm.expireBlockhash();
        try {
          const ended = await Promise.all(started.map((x) => waitTransfer(x.id, { timeoutMs: 15_000 })));
          t.diagnostic(`after the blockhash expired: ${JSON.stringify(ended.map((x) => ({ id: x.id, status: x.status, reason: x.reason })))}`);
        } catch (e) {
          t.diagnostic(`clean-up: ${e.message}`);
        }
      }
    },
  );

  test('Keyfold only used the JSON-RPC methods a Solana node has, and asked for the rent-exempt minimum', () => {
    const unknown = [...fake.calls.keys()].filter((m) => !SOLANA_RPC_METHODS.has(m));
    assert.deepEqual(unknown, []);
    assert.ok((fake.calls.get('getMinimumBalanceForRentExemption') ?? 0) >= 1);
  });
});
