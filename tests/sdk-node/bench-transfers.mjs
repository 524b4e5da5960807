// Transfer throughput through the official SDK against `keyfold dev` (3 signer processes) and
// a local chain (anvil, automine). Not a test:
//
//   BENCH_TRANSFERS=50 node tests/sdk-node/bench-transfers.mjs
//
// (KEYFOLD_BIN picks the binary; use a release build for numbers worth recording.)
//
//   BENCH_TRANSFERS     Native transfers measured (default 50)
//   BENCH_CONCURRENCY   transfers in flight at once (default 10)
//   BENCH_WARMUP        transfers sent first and not measured (default 3)
//   BENCH_TRACKER_MS    [transfers] tracker_interval_ms (default 200)
//   BENCH_POOL          [signing] presignatures_per_key (default: Keyfold's)
//
// Per transfer: end to end = transferAsset request → getTransfer says Confirmed (polled every
// 50 ms); API = transferAsset's response time (user action + build + MPC sign + broadcast);
// requested→broadcasted and broadcasted→confirmed come from the API's own dates. The chain
// (viem) checks that every transfer landed and the recipient got the sum.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { createPublicClient, getAddress, http, parseEther, toHex } from 'viem';
import { sepolia } from 'viem/chains';

import { makeTmpDir, startAnvil, startAndLogin, waitSchemeReady } from './lib/harness.mjs';

const N = Number(process.env.BENCH_TRANSFERS || 50);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const TRACKER_MS = Number(process.env.BENCH_TRACKER_MS || 200);
const POOL = process.env.BENCH_POOL;
const FUNDER = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const anvil = await startAnvil();
const dir = makeTmpDir();
const cfg = path.join(dir, 'keyfold.toml');
fs.writeFileSync(
  cfg,
  `[networks.EthereumSepolia]\nrpc_url = "${anvil.url}"\nchain_id = 11155111\n` +
    `[transfers]\ntracker_interval_ms = ${TRACKER_MS}\n` +
    (POOL ? `[signing]\npresignatures_per_key = ${Number(POOL)}\n` : ''),
);
// The API logs where each transfer's time went (plan = RPC reads + estimate, sign = MPC,
// broadcast = eth_sendRawTransaction); the split below is read from those lines.
const s = await startAndLogin({
  signers: true,
  args: ['--config', cfg],
  env: { RUST_LOG: 'warn,keyfold_domain::transfers=info' },
});
const pc = createPublicClient({ chain: sepolia, transport: http(anvil.url) });

/** One transfer, timed: { apiMs, e2eMs, reqToBcastMs, bcastToConfMs, t }. */
async function one(walletId, to, amount) {
  const t0 = performance.now();
  const first = await s.client.wallets.transferAsset({ walletId, body: { kind: 'Native', to, amount: amount.toString() } });
  const apiMs = performance.now() - t0;
  const deadline = Date.now() + 60_000;
  let t = first;
  while (!['Confirmed', 'Failed', 'Rejected'].includes(t.status)) {
    if (Date.now() > deadline) throw new Error(`not final after 60 s: ${JSON.stringify(t)}`);
    await sleep(50);
    t = await s.client.wallets.getTransfer({ walletId, transferId: first.id });
  }
  const e2eMs = performance.now() - t0;
  if (t.status !== 'Confirmed') throw new Error(`transfer ${t.id} ended ${t.status}: ${t.reason}`);
  return {
    apiMs,
    e2eMs,
    reqToBcastMs: Date.parse(t.dateBroadcasted) - Date.parse(t.dateRequested),
    bcastToConfMs: Date.parse(t.dateConfirmed) - Date.parse(t.dateBroadcasted),
    t,
  };
}

/** `n` transfers, at most `concurrency` in flight. */
async function run(walletId, to, n, concurrency) {
  const out = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        next++;
        out.push(await one(walletId, to, 1_000_000_000n));
      }
    }),
  );
  return out;
}

let table;
try {
  await waitSchemeReady(s.k.baseUrl, 'ECDSA');
  const w = await s.client.wallets.createWallet({ body: { network: 'EthereumSepolia', name: 'bench' } });
  await pc.request({ method: 'anvil_setBalance', params: [w.address, toHex(parseEther('1000'))] });
  const to = getAddress(toHex(crypto.randomBytes(20)));

  if (WARMUP > 0) await run(w.id, to, WARMUP, Math.min(WARMUP, CONCURRENCY));
  const nonceBefore = await pc.getTransactionCount({ address: w.address });
  const balBefore = await pc.getBalance({ address: to });

  const start = performance.now();
  const results = await run(w.id, to, N, CONCURRENCY);
  const wallMs = performance.now() - start;

  // The chain agrees: N more transactions from the wallet, the recipient got every amount.
  assert.equal(results.length, N);
  assert.equal(await pc.getTransactionCount({ address: w.address }), nonceBefore + N);
  assert.equal((await pc.getBalance({ address: to })) - balBefore, 1_000_000_000n * BigInt(N));

  const row = (name, xs) => ({
    name,
    p50: pct(xs, 50),
    p95: pct(xs, 95),
    max: Math.max(...xs),
  });
  // Split from the API's own log lines, for the measured transfers only.
  const ids = new Set(results.map((r) => r.t?.id).filter(Boolean));
  const split = { plan: [], sign: [], broadcast: [] };
  for (const line of s.k.stderr().split('\n')) {
    const id = /transfer=(xfr-[0-9a-v-]+)/.exec(line)?.[1];
    if (!id || (ids.size && !ids.has(id))) continue;
    for (const [k, re] of [['plan', /plan_ms=(\d+)/], ['sign', /sign_ms=(\d+)/], ['broadcast', /broadcast_ms=(\d+)/]]) {
      const m = re.exec(line);
      if (m) split[k].push(Number(m[1]));
    }
  }
  const splitRows = Object.entries(split)
    .filter(([, xs]) => xs.length)
    .map(([k, xs]) => row(`  of which ${k} (API log)`, xs));
  table = {
    rows: [
      row('end to end (request → Confirmed)', results.map((r) => r.e2eMs)),
      row('API: transferAsset (sign+broadcast)', results.map((r) => r.apiMs)),
      ...splitRows,
      row('requested → broadcasted (API dates)', results.map((r) => r.reqToBcastMs)),
      row('broadcasted → confirmed (API dates)', results.map((r) => r.bcastToConfMs)),
    ],
    perSecond: N / (wallMs / 1000),
    wallMs,
  };
} finally {
  await s.k.stop();
  await anvil.stop();
}

const ms = (x) => `${x.toFixed(0)} ms`.padStart(9);
console.log(
  `keyfold transfers: ${N} Native, concurrency ${CONCURRENCY}, tracker ${TRACKER_MS} ms, ` +
    `binary ${process.env.KEYFOLD_BIN || 'target/debug/keyfold'}`,
);
console.log(`${'ms'.padEnd(38)}${'p50'.padStart(9)}${'p95'.padStart(9)}${'max'.padStart(9)}`);
for (const r of table.rows) console.log(`${r.name.padEnd(38)}${ms(r.p50)}${ms(r.p95)}${ms(r.max)}`);
console.log(`throughput: ${table.perSecond.toFixed(2)} transfers/s end to end (${(table.wallMs / 1000).toFixed(1)} s wall)`);
