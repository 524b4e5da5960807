// Transfers when the chain's RPC endpoint misbehaves, through the official SDK, against a
// `keyfold dev` with its three signer processes and a real chain (anvil). Keyfold does not
// talk to anvil directly: its EthereumSepolia `rpc_url` is a FAULT-INJECTING JSON-RPC PROXY
// (startFaultProxy below, test-only) that forwards to anvil and, when told to, breaks
// eth_sendRawTransaction in one of these ways:
//   - http502: the endpoint is down (HTTP 502, nothing forwarded);
//   - rpcError: the node refuses the transaction (a JSON-RPC error, nothing forwarded);
//   - swallow: the node says "accepted" (the right hash) but forgets it (nothing forwarded);
//   - hold: the call waits in the proxy until the test releases it (forwarded, or answered
//     with one of the faults above) — used to order Keyfold's request and its tracker.
// The proxy records every eth_sendRawTransaction payload it sees (and its signer).
//
// Scenarios: the endpoint down at broadcast; a refused broadcast (its nonce is freed and
// reused, no gap); a transaction dropped after acceptance; 20 concurrent transfers with 3
// refusals sprinkled in; two orderings of a refused broadcast against the tracker's re-send
// of the same bytes (the request's own send slow; a tracker pass working from rows read
// before the refusal) — a transfer reported Failed must not be executed on chain; a crash
// (SIGKILL) between signing and broadcasting, resumed by a restarted API (and signers) on
// the same data dir. Each test pays from a fresh wallet.
//
// Every chain-side check is made with viem against anvil directly, never through Keyfold or
// the proxy.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';

import {
  createPublicClient,
  createWalletClient,
  getAddress,
  http as viemHttp,
  keccak256,
  parseEther,
  parseTransaction,
  recoverAddress,
  serializeTransaction,
  signatureToHex,
  toHex,
} from 'viem';
import { sepolia } from 'viem/chains';

import {
  makeTmpDir,
  removeTmpDir,
  signerPids,
  startAndLogin,
  startAnvil,
  waitSchemeReady,
} from './lib/harness.mjs';

// anvil's first prefunded (unlocked) account.
const FUNDER = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
const CHAIN_ID = 11155111;
const FINAL = new Set(['Confirmed', 'Failed', 'Rejected']);
const HASH_RE = /^0x[0-9a-f]{64}$/;
const REFUSAL = 'rejected by the fault proxy';

const lc = (a) => String(a).toLowerCase();
/** A fresh, never used address (its balance is 0). */
const freshAddress = () => getAddress(toHex(crypto.randomBytes(20)));

/** The sender of a signed EIP-1559 transaction, recovered by viem. */
async function senderOf(raw) {
  const { r, s, v, yParity, ...fields } = parseTransaction(raw);
  const signature = signatureToHex({ r, s, v: yParity === 1 || v === 1n || v === 28n ? 28n : 27n });
  return recoverAddress({ hash: keccak256(serializeTransaction(fields)), signature });
}

// ---------------------------------------------------------------------------------------
// The fault-injecting JSON-RPC proxy (test-only)

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * A FAULT-INJECTING JSON-RPC PROXY on a free loopback port, forwarding JSON-RPC POSTs to
 * `upstreamUrl` (anvil) unless a fault switch says otherwise.
 *
 *  - fail(method, { mode, times = 1, message, when }): the next `times` calls of `method`
 *    (Infinity: until cleared) for which `when(ctx)` holds (default: all) are answered with
 *    the fault instead of being forwarded. Modes: 'http502', 'rpcError' (JSON-RPC error
 *    -32000 with `message`), 'swallow' (eth_sendRawTransaction only: success with the tx's
 *    hash, keccak256 of the raw bytes, and nothing forwarded). `ctx` = { method, params, send }.
 *    Returns { off() } to remove this one fault.
 *  - hold(method, { when }): calls of `method` (for which `when(ctx)` holds, default all)
 *    that no fault answers wait in the proxy until released. Returns
 *    { waiting() (the ctx of each call still held), release(ctx?, fault?) }: one held call
 *    (`ctx`), or all of them and the hold itself (no `ctx`), is then forwarded — or answered
 *    with `fault` ({ mode, message }, as for fail) instead.
 *  - clear(method?): removes the faults and releases the holds (of `method`, or all).
 *  - sends: every eth_sendRawTransaction seen, in order:
 *    { raw, hash, from (the signer, recovered by viem), at, firstSeen, outcome }
 *    where outcome is 'forwarded', 'held' (until forwarded), or the fault mode.
 *  - calls: method -> number of calls seen; log: { method, at, arg (first param) } of every
 *    eth_getTransactionByHash and eth_getTransactionReceipt.
 */
async function startFaultProxy(upstreamUrl) {
  let faults = [];
  let holds = [];
  const sends = [];
  const calls = {};
  const log = [];

  function answer(res, status, body) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(text);
  }

  const server = http.createServer(async (req, res) => {
    try {
      const body = await readBody(req);
      let msg;
      try {
        msg = JSON.parse(body);
      } catch {
        msg = undefined;
      }
      const method = msg && !Array.isArray(msg) ? msg.method : undefined;
      calls[method ?? '(other)'] = (calls[method ?? '(other)'] ?? 0) + 1;
      let send;
      if (method === 'eth_sendRawTransaction') {
        const raw = String(msg.params?.[0]);
        const firstSeen = !sends.some((s) => s.raw === raw);
        const at = Date.now();
        send = { raw, hash: keccak256(raw), at, firstSeen, outcome: 'received' };
        sends.push(send);
        send.from = await senderOf(raw).catch(() => undefined);
      }
      const ctx = { method, params: msg?.params, send };
      if (method === 'eth_getTransactionByHash' || method === 'eth_getTransactionReceipt') {
        log.push({ method, at: Date.now(), arg: msg.params?.[0] });
      }

      let fault = faults.find((f) => f.method === method && f.remaining > 0 && (!f.when || f.when(ctx)));
      if (fault) fault.remaining -= 1;

      const hold = !fault && holds.find((h) => h.method === method && !h.released && (!h.when || h.when(ctx)));
      if (hold) {
        if (send) send.outcome = 'held';
        fault = await new Promise((resolve) => hold.waiters.push({ ctx, resolve }));
      }

      if (fault) {
        if (send) send.outcome = fault.mode;
        switch (fault.mode) {
          case 'http502':
            return answer(res, 502, 'bad gateway (fault proxy)');
          case 'rpcError':
            return answer(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32000, message: fault.message ?? REFUSAL } });
          case 'swallow':
            return answer(res, 200, { jsonrpc: '2.0', id: msg.id, result: send.hash });
          default:
            return answer(res, 500, `unknown fault mode ${fault.mode}`);
        }
      }

      const up = await fetch(upstreamUrl, {
        method: 'POST',
        headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
        body,
      });
      const text = await up.text();
      if (send) send.outcome = 'forwarded';
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
      res.end(text);
    } catch (e) {
      if (!res.headersSent) answer(res, 500, `fault proxy: ${e}`);
      else res.destroy();
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}`;

  const release = (h) => {
    h.released = true;
    for (const w of h.waiters.splice(0)) w.resolve(undefined);
  };
  const checkFault = (method, mode) => {
    assert.ok(['http502', 'rpcError', 'swallow'].includes(mode), `fault mode ${mode}`);
    if (mode === 'swallow') assert.equal(method, 'eth_sendRawTransaction', 'swallow is for eth_sendRawTransaction');
  };

  return {
    url,
    sends,
    calls,
    log,
    fail(method, { mode, times = 1, message, when } = {}) {
      checkFault(method, mode);
      const f = { method, mode, remaining: times, message, when };
      faults.push(f);
      return {
        off() {
          faults = faults.filter((x) => x !== f);
        },
      };
    },
    hold(method, { when } = {}) {
      const h = { method, when, released: false, waiters: [] };
      holds.push(h);
      return {
        waiting: () => h.waiters.map((w) => w.ctx),
        release(ctx, fault) {
          if (ctx === undefined) return release(h);
          const i = h.waiters.findIndex((w) => w.ctx === ctx);
          assert.ok(i >= 0, 'that call is not held');
          if (fault) checkFault(method, fault.mode);
          h.waiters.splice(i, 1)[0].resolve(fault);
        },
      };
    },
    clear(method) {
      faults = faults.filter((f) => method !== undefined && f.method !== method);
      for (const h of holds) if (method === undefined || h.method === method) release(h);
      holds = holds.filter((h) => !h.released);
    },
    /** The sends (from index `since` on) of transactions signed by `address`. */
    async sendsFrom(address, since = 0) {
      const out = [];
      for (const x of sends.slice(since)) {
        x.from ??= await senderOf(x.raw);
        if (lc(x.from) === lc(address)) out.push(x);
      }
      return out;
    },
    /** The sends of one payload hash. */
    sendsOf(hash) {
      return sends.filter((s) => lc(s.hash) === lc(hash));
    },
    async close() {
      this.clear();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// ---------------------------------------------------------------------------------------

/** Polls `fn` until it returns a truthy value (bounded); returns that value. */
async function waitFor(fn, what, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

describe('transfers against a faulty RPC endpoint (fault-injecting JSON-RPC proxy in front of anvil)', () => {
  let anvil;
  let proxy;
  let cfg; // keyfold.toml: EthereumSepolia -> the proxy
  let s; // { k, client, ... } (replaced by the restart test)
  let firstTmpDir; // the first start's tmp dir (holds the data dir; removed at the end)
  let pc; // viem public client on anvil (direct)
  let funder; // viem wallet client of anvil's account 0 (direct)
  let evm; // the EthereumSepolia wallet under test (a fresh one per test)

  before(async () => {
    anvil = await startAnvil();
    proxy = await startFaultProxy(anvil.url);
    cfg = path.join(makeTmpDir(), 'keyfold.toml');
    fs.writeFileSync(
      cfg,
      `[networks.EthereumSepolia]\nrpc_url = "${proxy.url}"\nchain_id = ${CHAIN_ID}\n` +
        `[transfers]\ntracker_interval_ms = 200\n`,
    );
    s = await startAndLogin({ signers: true, args: ['--config', cfg] });
    firstTmpDir = s.k.tmpDir;
    pc = createPublicClient({ chain: sepolia, transport: viemHttp(anvil.url) });
    funder = createWalletClient({ account: FUNDER, chain: sepolia, transport: viemHttp(anvil.url) });

    await waitSchemeReady(s.k.baseUrl, 'ECDSA');
  });

  // Each test pays from its own fresh wallet, so one test's leftovers (a stuck nonce, a
  // queued transaction) cannot make the next one fail.
  beforeEach(async (t) => {
    evm = await newFundedWallet(String(t?.name ?? 'faulty payer').slice(0, 40));
  });

  /** A new EthereumSepolia wallet holding 100 ETH (sent by anvil's account 0, seen by viem). */
  async function newFundedWallet(name) {
    const w = await s.client.wallets.createWallet({ body: { network: 'EthereumSepolia', name } });
    const fund = await funder.sendTransaction({ to: w.address, value: parseEther('100') });
    assert.equal((await pc.waitForTransactionReceipt({ hash: fund })).status, 'success');
    assert.equal(await pc.getBalance({ address: w.address }), parseEther('100'));
    return w;
  }

  afterEach(() => proxy?.clear());

  after(async () => {
    await s?.k.stop({ keepData: true });
    if (firstTmpDir) removeTmpDir(firstTmpDir);
    await proxy?.close();
    await anvil?.stop();
  });

  // -------------------------------------------------------------------------------------
  // helpers (chain side: viem on anvil only)

  /** What anvil knows of `address`'s outgoing transactions: nonce and mempool entries. */
  async function chainState(address) {
    const pool = await pc.request({ method: 'txpool_content', params: [] });
    const pooled = ['pending', 'queued'].flatMap((k) =>
      Object.entries(pool[k] ?? {})
        .filter(([a]) => lc(a) === lc(address))
        .flatMap(([, byNonce]) => Object.keys(byNonce).map(Number)),
    );
    return { nonce: await pc.getTransactionCount({ address }), pooled: pooled.sort((a, b) => a - b) };
  }

  /** Whether anvil knows the transaction (mined or pooled). */
  async function anvilKnows(hash) {
    return (await pc.request({ method: 'eth_getTransactionByHash', params: [hash] })) !== null;
  }

  /** A confirmed transfer's tx on anvil: success, from the wallet, to `to`, `amount`, nonce = details.nonce. */
  async function assertOnChain(t, to, amount) {
    const [tx, receipt] = await Promise.all([pc.getTransaction({ hash: t.txHash }), pc.getTransactionReceipt({ hash: t.txHash })]);
    assert.equal(receipt.status, 'success');
    assert.equal(lc(tx.from), lc(evm.address));
    assert.equal(lc(tx.to), lc(to));
    assert.equal(tx.value, amount);
    assert.equal(tx.chainId, CHAIN_ID);
    assert.equal(t.details?.nonce, tx.nonce, 'details.nonce is the on-chain nonce');
    assert.equal(BigInt(t.fee), receipt.gasUsed * receipt.effectiveGasPrice, 'fee = gasUsed × effectiveGasPrice');
    return { tx, receipt };
  }

  // -------------------------------------------------------------------------------------
  // helpers (API side)

  /** Fault filter: sends of the wallet under test only (other tests' leftovers pass). */
  const fromEvm = ({ send: x }) => lc(x?.from) === lc(evm.address);

  const send = (body, walletId = evm.id) => s.client.wallets.transferAsset({ walletId, body });
  const getTransfer = (transferId, walletId = evm.id) => s.client.wallets.getTransfer({ walletId, transferId });

  /** Polls until a final status (bounded). */
  async function waitFinal(transferId, timeoutMs = 45_000, walletId = evm.id) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last = await getTransfer(transferId, walletId);
      if (FINAL.has(last.status)) return last;
      if (Date.now() > deadline) throw new Error(`transfer ${transferId} not final after ${timeoutMs} ms: ${JSON.stringify(last)}`);
      await sleep(100);
    }
  }

  async function confirmedTransfer(transferId, timeoutMs, walletId) {
    const t = await waitFinal(transferId, timeoutMs, walletId);
    assert.equal(t.status, 'Confirmed', JSON.stringify(t));
    return t;
  }

  // -------------------------------------------------------------------------------------

  test('endpoint down at broadcast (HTTP 502 ×3): 200 Executing with its txHash, then the tracker re-sends the same bytes until Confirmed; paid once', async () => {
    const to = freshAddress();
    const amount = parseEther('0.75');
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const mark = proxy.sends.length;
    proxy.fail('eth_sendRawTransaction', { mode: 'http502', times: 3, when: fromEvm });

    const t0 = await send({ kind: 'Native', to, amount: amount.toString() });
    assert.equal(t0.status, 'Executing', JSON.stringify(t0));
    assert.match(t0.txHash ?? '', HASH_RE, JSON.stringify(t0));
    assert.equal(t0.dateBroadcasted, undefined, JSON.stringify(t0));
    assert.equal(t0.details?.nonce, start.nonce, JSON.stringify(t0));
    const firstTry = await proxy.sendsFrom(evm.address, mark);
    assert.equal(firstTry.length, 1, 'one broadcast attempt by the request itself');
    assert.equal(firstTry[0].outcome, 'http502');
    assert.equal(firstTry[0].hash, t0.txHash, 'txHash = keccak256 of the bytes sent');
    assert.equal(await anvilKnows(t0.txHash), false, 'nothing reached the chain');

    const t = await confirmedTransfer(t0.id);
    assert.equal(t.txHash, t0.txHash, 'the txHash never changes');

    const mine = await proxy.sendsFrom(evm.address, mark);
    assert.deepEqual(mine.map((x) => x.outcome), ['http502', 'http502', 'http502', 'forwarded'], 'three refusals, then one forwarded send');
    assert.equal(new Set(mine.map((x) => x.raw)).size, 1, 'the very same signed bytes every time');
    assert.equal(mine.filter((x) => x.outcome === 'forwarded').length, 1);
    console.log(`# 502 scenario: sends at +${mine.map((x) => x.at - mine[0].at).join(' ms, +')} ms after the first`);

    await assertOnChain(t, to, amount);
    const end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + 1, 'exactly one transaction from the wallet');
    assert.deepEqual(end.pooled, []);
    assert.equal(await pc.getBalance({ address: to }), amount, 'the recipient is paid once');
  });

  test('refused broadcast (JSON-RPC error): Failed with the node’s message, its nonce freed; the next transfer confirms with that very nonce, no gap', async () => {
    const toA = freshAddress();
    const toB = freshAddress();
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const mark = proxy.sends.length;
    proxy.fail('eth_sendRawTransaction', { mode: 'rpcError', times: 1, message: REFUSAL, when: fromEvm });

    const f0 = await send({ kind: 'Native', to: toA, amount: '1000' });
    const failed = FINAL.has(f0.status) ? f0 : await waitFinal(f0.id);
    assert.equal(failed.status, 'Failed', JSON.stringify(failed));
    assert.match(failed.reason ?? '', new RegExp(REFUSAL), JSON.stringify(failed));
    assert.equal(failed.details?.nonce, start.nonce, 'the failed transfer held the chain’s next nonce');
    const refused = await proxy.sendsFrom(evm.address, mark);
    assert.deepEqual(refused.map((x) => x.outcome), ['rpcError']);
    if (failed.txHash !== undefined) {
      assert.equal(failed.txHash, refused[0].hash);
      assert.equal(await anvilKnows(failed.txHash), false);
    }
    assert.deepEqual(await chainState(evm.address), start, 'nothing reached the chain');

    const ok = await confirmedTransfer((await send({ kind: 'Native', to: toB, amount: '2000' })).id);
    assert.equal(ok.details?.nonce, failed.details.nonce, 'the freed nonce is reused');
    const { tx } = await assertOnChain(ok, toB, 2000n);
    assert.equal(tx.nonce, start.nonce);

    // Failed stays Failed (the tracker does not resurrect it), and nobody sent its bytes.
    const again = await getTransfer(f0.id);
    assert.equal(again.status, 'Failed');
    assert.equal(proxy.sends.filter((x) => x.raw === refused[0].raw).length, 1, 'refused bytes never re-sent');
    const end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + 1, 'no gap: one nonce used');
    assert.deepEqual(end.pooled, []);
    assert.equal(await pc.getBalance({ address: toA }), 0n);
    assert.equal(await pc.getBalance({ address: toB }), 2000n);
  });

  test('dropped after acceptance (the node says yes, then forgets it): Broadcasted with a hash anvil does not know; the tracker re-sends the same bytes; Confirmed with that hash', async () => {
    const to = freshAddress();
    const amount = 31_337n;
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const mark = proxy.sends.length;
    proxy.fail('eth_sendRawTransaction', { mode: 'swallow', times: 1, when: fromEvm });
    // Every later send waits in the proxy, so the chain can be checked before any re-send.
    const gate = proxy.hold('eth_sendRawTransaction', { when: fromEvm });

    const t0 = await send({ kind: 'Native', to, amount: amount.toString() });
    assert.equal(t0.status, 'Broadcasted', JSON.stringify(t0));
    assert.match(t0.txHash ?? '', HASH_RE);
    const [swallowed] = await proxy.sendsFrom(evm.address, mark);
    assert.equal(swallowed.outcome, 'swallow');
    assert.equal(swallowed.hash, t0.txHash);
    assert.equal(await anvilKnows(t0.txHash), false, 'anvil never saw it');
    assert.deepEqual(await chainState(evm.address), start);

    // The tracker notices (no receipt, unknown hash) and re-sends: that send is held here.
    const held = await waitFor(() => gate.waiting()[0], 'the tracker re-sends a dropped transaction', 20_000);
    assert.equal(held.send.raw, swallowed.raw, 'the re-send is the very same signed bytes');
    assert.equal(await anvilKnows(t0.txHash), false);
    gate.release();

    const t = await confirmedTransfer(t0.id);
    assert.equal(t.txHash, t0.txHash);
    await assertOnChain(t, to, amount);
    const mine = await proxy.sendsFrom(evm.address, mark);
    assert.equal(new Set(mine.map((x) => x.raw)).size, 1, 'only those bytes were sent');
    assert.equal(mine.filter((x) => x.outcome === 'forwarded').length, 1, 'forwarded once');
    const end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + 1);
    assert.deepEqual(end.pooled, []);
    assert.equal(await pc.getBalance({ address: to }), amount, 'paid once');
  });

  test('20 concurrent transfers with 3 refusals sprinkled in: the rest confirm, the refused fail, one more round fills the freed nonces; no gap, nothing stuck', async () => {
    const N = 20;
    const REFUSED_AT = new Set([2, 9, 15]); // by order of arrival of the wallet's distinct payloads
    const to = freshAddress();
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const mark = proxy.sends.length;
    let k = 0; // distinct payloads of this wallet seen so far
    proxy.fail('eth_sendRawTransaction', {
      mode: 'rpcError',
      times: REFUSED_AT.size,
      message: REFUSAL,
      when: (ctx) => fromEvm(ctx) && ctx.send.firstSeen && REFUSED_AT.has(k++),
    });

    const amounts = Array.from({ length: N }, (_, i) => 1_000_000_000n + BigInt(i));
    const burstStart = Date.now();
    const burst = await Promise.all(amounts.map((a) => send({ kind: 'Native', to, amount: a.toString() })));
    const burstMs = Date.now() - burstStart;
    assert.equal(new Set(burst.map((t) => t.id)).size, N);
    const refusedHashes = new Set((await proxy.sendsFrom(evm.address, mark)).filter((x) => x.outcome === 'rpcError').map((x) => lc(x.hash)));
    assert.equal(refusedHashes.size, REFUSED_AT.size, 'the proxy refused 3 distinct transactions');

    // Settle: nothing left Executing (the refused ones Failed, the others sent).
    const settled = await waitFor(
      async () => {
        const all = await Promise.all(burst.map((t) => getTransfer(t.id)));
        return all.every((t) => t.status !== 'Executing') && all;
      },
      'the burst leaves Executing',
      60_000,
    );
    const failed = settled.filter((t) => t.status === 'Failed');
    const sent = settled.filter((t) => t.status !== 'Failed');
    assert.equal(failed.length, REFUSED_AT.size, JSON.stringify(settled.map((t) => [t.status, t.details?.nonce, t.reason])));
    const t0 = Date.parse(settled.map((t) => t.dateRequested).sort()[0]);
    const story = (f) =>
      JSON.stringify({
        id: f.id,
        nonce: f.details?.nonce,
        requestedAt: `+${Date.parse(f.dateRequested) - t0} ms`,
        sends: proxy.sendsOf(f.txHash).map((x) => `${x.outcome} at +${x.at - t0} ms`),
        lookups: proxy.log.filter((x) => lc(x.arg) === lc(f.txHash)).map((x) => `${x.method} at +${x.at - t0} ms`),
        anvil: 'knows it',
      });
    for (const f of failed) {
      assert.match(f.reason ?? '', new RegExp(REFUSAL), JSON.stringify(f));
      assert.ok(refusedHashes.has(lc(f.txHash)), `failed ${f.id} is one the proxy refused`);
      assert.equal(await anvilKnows(f.txHash), false, `a Failed transfer's transaction reached the chain: ${story(f)}`);
    }
    for (const t of sent) assert.ok(['Broadcasted', 'Confirmed'].includes(t.status), JSON.stringify(t));
    const sentNonces = new Set(sent.map((t) => t.details.nonce));
    assert.equal(sentNonces.size, sent.length, 'distinct nonces among the sent ones');
    const freed = [...new Set(failed.map((t) => t.details.nonce))].filter((n) => !sentNonces.has(n)).sort((a, b) => a - b);
    const burstSends = await proxy.sendsFrom(evm.address, mark);
    const dup = [...new Set(burstSends.map((x) => x.raw))].filter((r) => burstSends.filter((x) => x.raw === r).length > 1);
    console.log(
      `# burst: ${N} responses in ${burstMs} ms; ${burstSends.length} sends of ${new Set(burstSends.map((x) => x.raw)).size} distinct payloads ` +
        `(${dup.length} sent more than once: ${dup.map((r) => burstSends.filter((x) => x.raw === r).map((x) => `${x.outcome}@+${x.at - burstStart}`).join('/')).join(', ')})`,
    );
    console.log(
      `# burst: refused nonces ${failed.map((t) => t.details.nonce).sort((a, b) => a - b).join(',')}, ` +
        `still free after the burst ${freed.join(',') || '(none)'}; anvil: ${JSON.stringify(await chainState(evm.address))}`,
    );

    // One more round: as many transfers as free nonces, plus one.
    const roundAmounts = Array.from({ length: freed.length + 1 }, (_, i) => 2_000_000_000n + BigInt(i));
    const round = await Promise.all(roundAmounts.map((a) => send({ kind: 'Native', to, amount: a.toString() })));
    const roundFinal = await Promise.all(round.map((t) => waitFinal(t.id, 60_000)));
    assert.deepEqual(roundFinal.map((t) => t.status), roundFinal.map(() => 'Confirmed'), JSON.stringify(roundFinal.map((t) => [t.status, t.details?.nonce, t.reason])));
    const roundNonces = roundFinal.map((t) => t.details.nonce).sort((a, b) => a - b);
    for (const n of freed) assert.ok(roundNonces.includes(n), `freed nonce ${n} reused by the next round (round took ${roundNonces})`);

    const sentFinal = await Promise.all(sent.map((t) => waitFinal(t.id, 60_000)));
    assert.deepEqual(sentFinal.map((t) => t.status), sentFinal.map(() => 'Confirmed'), JSON.stringify(sentFinal.map((t) => [t.status, t.details?.nonce, t.reason])));

    const confirmed = [...sentFinal, ...roundFinal];
    for (const t of confirmed) await assertOnChain(t, to, BigInt(t.requestBody.amount));
    const nonces = confirmed.map((t) => t.details.nonce).sort((a, b) => a - b);
    assert.deepEqual(nonces, Array.from({ length: confirmed.length }, (_, i) => start.nonce + i), 'contiguous nonces, no gap');
    const end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + confirmed.length, 'chain nonce = start + confirmed transfers');
    assert.deepEqual(end.pooled, [], 'nothing stuck in anvil’s txpool');
    const sum = confirmed.reduce((a, t) => a + BigInt(t.requestBody.amount), 0n);
    assert.equal(await pc.getBalance({ address: to }), sum, 'paid exactly the confirmed transfers');
    for (const f of failed) assert.equal((await getTransfer(f.id)).status, 'Failed');
  });

  test('a slow broadcast refused by the node: no second copy goes out meanwhile, so the refusal stands (Failed, nonce reused); had one gone out, the API would have to say what the chain did', async () => {
    // The request's own eth_sendRawTransaction is held in the proxy for up to 8 s, waiting
    // for a concurrent copy of the same bytes from the tracker, then refused. Keyfold leases
    // the send of stored bytes to one sender at a time, so no copy should come (the first
    // branch). An earlier build re-sent from the tracker 5 s after the request arrived, and
    // a forwarded copy then made the chain pay while the API said Failed (the second branch
    // keeps that check, in case a copy ever appears again).
    const to = freshAddress();
    const amount = 55_555n;
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const mark = proxy.sends.length;
    const gate = proxy.hold('eth_sendRawTransaction', { when: fromEvm });
    const pending = send({ kind: 'Native', to, amount: amount.toString() }).then((t) => ({ t }), (e) => ({ e }));
    const own = await waitFor(() => gate.waiting()[0], 'the request broadcasts', 30_000, 20);
    // Keyfold's RPC client gives up after 10 s: wait at most 8 s for a concurrent re-send.
    const copy = await waitFor(() => gate.waiting().find((c) => c !== own), 'a concurrent re-send', 8_000, 20).catch(() => undefined);
    gate.release(own, { mode: 'rpcError', message: REFUSAL });
    const res = await pending;
    assert.ok(res.t, `the transfer request failed: ${res.e?.stack ?? res.e}`);

    if (!copy) {
      // No concurrent send while the request's own was in flight: the refusal is the only
      // answer, the transfer is Failed, its bytes are never sent again, its nonce is reused.
      gate.release();
      const failed = await waitFinal(res.t.id);
      assert.equal(failed.status, 'Failed', JSON.stringify(failed));
      const to2 = freshAddress();
      const next = await confirmedTransfer((await send({ kind: 'Native', to: to2, amount: '1' })).id);
      assert.equal(next.details?.nonce, start.nonce);
      await assertOnChain(next, to2, 1n);
      assert.equal(proxy.sends.slice(mark).filter((x) => x.raw === own.send.raw).length, 1, 'refused bytes never re-sent');
      assert.equal(await anvilKnows(own.send.hash), false);
      assert.equal(await pc.getBalance({ address: to }), 0n);
      return;
    }

    assert.equal(copy.send.raw, own.send.raw, 'the tracker re-sends the stored bytes');
    const between = await getTransfer(res.t.id);
    console.log(
      `# race: the tracker re-sent the bytes ${copy.send.at - own.send.at} ms after the request's own send (still in flight); ` +
        `after the refusal the request answered ${res.t.status} (${res.t.reason ?? ''}), the row says ${between.status}`,
    );
    gate.release(copy); // forwarded: anvil takes it
    gate.release();
    const receipt = await pc.waitForTransactionReceipt({ hash: own.send.hash, timeout: 15_000 });
    assert.equal(receipt.status, 'success');
    const tx = await pc.getTransaction({ hash: own.send.hash });
    assert.equal(await pc.getBalance({ address: to }), amount, 'the chain paid the recipient');

    // The chain executed the transfer: the API must say so (bounded wait), not Failed.
    const t = await waitFinal(res.t.id, 20_000);
    assert.equal(
      t.status,
      'Confirmed',
      `the transfer's transaction was mined (block ${receipt.blockNumber}, nonce ${tx.nonce}) and paid the recipient, ` +
        `yet the transfer says ${JSON.stringify({ status: t.status, reason: t.reason, txHash: t.txHash })}`,
    );
    assert.equal(t.txHash, own.send.hash);
    await assertOnChain(t, to, amount);
    const to2 = freshAddress();
    const next = await confirmedTransfer((await send({ kind: 'Native', to: to2, amount: '1' })).id);
    assert.equal(next.details?.nonce, start.nonce + 1, 'the used nonce is not handed out again');
    const end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + 2);
    assert.deepEqual(end.pooled, []);
  });

  test('a refused broadcast is never re-sent by a tracker pass that read the row before it failed (stale snapshot)', async () => {
    // The tracker reads a batch of unsettled rows, then handles them one by one. Here its
    // pass is held (in the proxy) on an older transfer A of another wallet while transfer B
    // is refused and marked Failed; the same pass then reaches B.
    const wa = await newFundedWallet('stale-snapshot-A');
    // A: "accepted" but never forwarded, so it stays Broadcasted and every pass looks at it.
    const swallowA = proxy.fail('eth_sendRawTransaction', {
      mode: 'swallow',
      times: Infinity,
      when: ({ send: x }) => lc(x.from) === lc(wa.address),
    });
    const a = await send({ kind: 'Native', to: freshAddress(), amount: '7' }, wa.id);
    assert.equal(a.status, 'Broadcasted', JSON.stringify(a));
    const aHash = a.txHash;

    const to = freshAddress();
    const start = await chainState(evm.address);
    let bRaw;
    // B's own send is held. While the request holds it, B's bytes are its to send: the
    // tracker must not send a copy (Keyfold leases the send to one sender at a time).
    const gate = proxy.hold('eth_sendRawTransaction', { when: fromEvm });
    const bPending = send({ kind: 'Native', to, amount: '8888' }).then((t) => ({ t }), (e) => ({ e }));
    const own = await waitFor(() => gate.waiting()[0], 'B broadcasts', 30_000, 20);
    bRaw = own.send.raw;
    const bHash = own.send.hash;
    // A tracker pass that read B (Executing, signed) is held on A's receipt.
    const rgate = proxy.hold('eth_getTransactionReceipt', { when: ({ params }) => lc(params?.[0]) === lc(aHash) });
    await waitFor(() => rgate.waiting()[0], 'a tracker pass reaches A', 5_000, 10);
    assert.equal(proxy.sendsOf(bHash).length, 1, 'no copy of B is sent while its request is sending it');
    gate.release(own, { mode: 'rpcError', message: REFUSAL });
    const b = await bPending;
    assert.ok(b.t, `the transfer request failed: ${b.e?.stack ?? b.e}`);
    const failedAt = Date.now();
    const bRow = await getTransfer(b.t.id);
    assert.equal(bRow.status, 'Failed', JSON.stringify(bRow));
    assert.match(bRow.reason ?? '', new RegExp(REFUSAL));

    gate.release();
    const aSendsBefore = proxy.sendsOf(aHash).length;
    const releasedAt = Date.now();
    rgate.release();
    // Sync point: two more tracker passes have handled A (each re-sends A's bytes) —
    // the held pass, then at least one fresh one.
    await waitFor(() => proxy.sendsOf(aHash).length >= aSendsBefore + 2, 'two tracker passes after the release', 10_000, 20);

    const resent = proxy.sendsOf(bHash).filter((x) => x.at >= failedAt);
    const seenByAnvil = await anvilKnows(bHash);
    const paid = await pc.getBalance({ address: to });
    swallowA.off(); // let A confirm
    assert.deepEqual(
      resent.map((x) => `${x.outcome} ${x.at - failedAt} ms after B was reported Failed (${x.at - releasedAt} ms after the held pass went on)`),
      [],
      `the tracker re-sent the bytes of transfer ${b.t.id} (Failed: ${bRow.reason}); ` +
        `anvil ${seenByAnvil ? 'took it' : 'does not know it'}, the recipient holds ${paid} wei; ` +
        `transfer status now: ${(await getTransfer(b.t.id)).status}`,
    );
    assert.equal(seenByAnvil, false);
    assert.equal((await confirmedTransfer(a.id, 30_000, wa.id)).txHash, aHash);
    const to2 = freshAddress();
    const next = await confirmedTransfer((await send({ kind: 'Native', to: to2, amount: '1' })).id);
    assert.equal(next.details?.nonce, start.nonce, 'B’s freed nonce is reused');
    assert.equal(await pc.getBalance({ address: to }), 0n);
    const end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + 1);
    assert.deepEqual(end.pooled, []);
  });

  test('crash between signing and broadcasting: SIGKILL while the endpoint is down, restart on the same data dir, the tracker sends the stored bytes; Confirmed once', async () => {
    const to = freshAddress();
    const amount = parseEther('0.5');
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const mark = proxy.sends.length;
    proxy.fail('eth_sendRawTransaction', { mode: 'http502', times: Infinity, when: fromEvm });

    const t0 = await send({ kind: 'Native', to, amount: amount.toString() });
    assert.equal(t0.status, 'Executing', JSON.stringify(t0));
    assert.match(t0.txHash ?? '', HASH_RE);
    const H = t0.txHash;

    const { dataDir, port } = s.k;
    await s.k.kill9();
    // The signers watch the API's pid and exit with it (bounded wait, then they are ours to kill).
    const gone = await waitFor(() => signerPids(dataDir).size === 0, 'signers exit after the API is killed', 15_000).catch(() => false);
    if (!gone) {
      console.log(`# WARNING: signers still alive 15 s after the API was SIGKILLed: ${JSON.stringify([...signerPids(dataDir)])}`);
      for (const pid of signerPids(dataDir).values()) process.kill(pid, 'SIGKILL');
    }
    const beforeRestart = await proxy.sendsFrom(evm.address, mark);
    assert.ok(beforeRestart.length >= 1 && beforeRestart.every((x) => x.outcome === 'http502'), 'nothing forwarded before the crash');
    assert.equal(await anvilKnows(H), false);
    assert.deepEqual(await chainState(evm.address), start);

    proxy.clear('eth_sendRawTransaction');
    const t1 = Date.now();
    s = await startAndLogin({ signers: true, dataDir, port, args: ['--config', cfg] });
    console.log(`# restarted on the same data dir in ${Date.now() - t1} ms`);

    const t = await confirmedTransfer(t0.id, 60_000);
    console.log(`# confirmed ${Date.now() - t1} ms after the restart began`);
    assert.equal(t.txHash, H, 'the stored bytes, not a new signature');
    await assertOnChain(t, to, amount);
    const mine = await proxy.sendsFrom(evm.address, mark);
    assert.equal(new Set(mine.map((x) => x.raw)).size, 1, 'only the stored bytes were ever sent');
    assert.equal(mine[0].hash, H);
    assert.equal(mine.filter((x) => x.outcome === 'forwarded').length, 1, 'forwarded once, after the restart');
    let end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + 1, 'exactly one transaction at that nonce');
    assert.deepEqual(end.pooled, []);
    assert.equal(await pc.getBalance({ address: to }), amount, 'paid once');

    // The restarted API signs again (its signers came back) and takes the next nonce.
    await waitSchemeReady(s.k.baseUrl, 'ECDSA', 60_000);
    const to2 = freshAddress();
    const next = await confirmedTransfer((await send({ kind: 'Native', to: to2, amount: '4242' })).id);
    const { tx } = await assertOnChain(next, to2, 4242n);
    assert.equal(tx.nonce, start.nonce + 1);
    end = await chainState(evm.address);
    assert.equal(end.nonce, start.nonce + 2);
    assert.deepEqual(end.pooled, []);
  });
});
