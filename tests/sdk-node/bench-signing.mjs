// Signing benchmarks through the official SDK against `keyfold dev` (3 signer processes).
// Not a test: `node tests/sdk-node/bench-signing.mjs` (KEYFOLD_BIN picks the binary; use a
// release build). Prints one JSON object; docs/benchmarks.md records the numbers.
//
//   BENCH_SECONDS   sustained-load duration per scheme (default 15)
//   BENCH_POOL      presignatures per key (default 16)
//   BENCH_NONCES    FROST nonce pairs pooled per key (default 64; 0: every FROST signature runs
//                   the two relayed rounds)
//   BENCH_KEY_POOL  keys per scheme generated ahead of time (default 8; 0: every key and
//                   wallet creation waits for distributed key generation)
//   BENCH_ONLY      `frost`, `ecdsa` or `keys`: only the FROST measures, only the warm-pool
//                   and interactive ECDSA latencies (not the minute of sustained ECDSA), or
//                   only key and wallet creation (and the GET they are divided by); `steps`:
//                   one pooled Ed25519 signature at a time, taken apart into the SDK's own
//                   steps (action init, the key signer's signature, action exchange, the
//                   request) — where the "p50 ÷ GET" ratio goes
//   BENCH_CLIENT_RTT_MS  the SDK client this many milliseconds (round trip) away from the API,
//                   through lib/latency-proxy.mjs (default 0: loopback); the signers stay
//                   on loopback with the API, as in one data centre

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';

import { spawn } from 'node:child_process';
import { once } from 'node:events';

import {
  actionChallenge,
  BaseAuthApi,
  makeTmpDir,
  raw,
  sdkLogin,
  startAndLogin,
  waitSchemeReady,
} from './lib/harness.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS || 15);
const POOL = Number(process.env.BENCH_POOL || 16);
const NONCES = Number(process.env.BENCH_NONCES ?? 64);
const ONLY = process.env.BENCH_ONLY || '';
const RUN_ECDSA = ONLY === '' || ONLY === 'ecdsa';
const RUN_ECDSA_SUSTAINED = ONLY === '';
const RUN_FROST = ONLY === '' || ONLY === 'frost';
const RUN_KEYS = ONLY === '' || ONLY === 'keys';
const RUN_STEPS = ONLY === 'steps';
const KEY_POOL = Number(process.env.BENCH_KEY_POOL ?? 8);
const CLIENT_RTT_MS = Number(process.env.BENCH_CLIENT_RTT_MS || 0);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const stats = (xs) => ({ n: xs.length, p50: +pct(xs, 50).toFixed(2), p99: +pct(xs, 99).toFixed(2) });

async function timeN(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

async function sustained(concurrency, seconds, fn) {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let i = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await fn(i++);
        done++;
      }
    }),
  );
  return +(done / ((performance.now() - start) / 1000)).toFixed(2);
}

const hash = (i) => `0x${(BigInt(i) + 1n).toString(16).padStart(64, '0')}`;


const dir = makeTmpDir();
const cfg = path.join(dir, 'keyfold.toml');
fs.writeFileSync(cfg, `[signing]\npresignatures_per_key = ${POOL}\nnonces_per_key = ${NONCES}\npooled_keys_per_scheme = ${KEY_POOL}\n`);
// keyfold::pool's debug lines say how full each key's presignature pool is (the warm-pool
// measure waits for them).
const s = await startAndLogin({
  signers: true,
  args: ['--config', cfg],
  env: { RUST_LOG: process.env.RUST_LOG || 'warn,keyfold::pool=debug' },
});
const result = {
  binary: process.env.KEYFOLD_BIN || 'target/debug/keyfold',
  noncesPerKey: NONCES,
  pooledKeysPerScheme: KEY_POOL,
  clientRttMs: CLIENT_RTT_MS,
};
let proxy;
try {
  await waitSchemeReady(s.k.baseUrl, 'ECDSA');
  // The client everything below is measured through: on loopback, or CLIENT_RTT_MS away.
  let api = { ...s, baseUrl: s.k.baseUrl };
  if (CLIENT_RTT_MS > 0) {
    const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'lib/latency-proxy.mjs');
    proxy = spawn(process.execPath, [script, String(s.k.port), String(CLIENT_RTT_MS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = await once(proxy.stdout, 'data');
    const port = /listening (\d+)/.exec(String(line))[1];
    api = await sdkLogin(`http://127.0.0.1:${port}`, s.k.admin);
  }
  const c = api.client;
  const evm = await c.wallets.createWallet({ body: { network: 'EthereumSepolia' } });
  const ed = await c.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519' } });
  const tr = await c.keys.createKey({ body: { scheme: 'Schnorr', curve: 'secp256k1' } });

  result.get = stats(await timeN(300, () => c.wallets.getWallet({ walletId: evm.id })));

  if (RUN_ECDSA) {
  // Warm pool: wait until the background task has filled the wallet key's pool (POOL
  // presignatures, as its debug line says), then sign fewer than that.
  const fill = performance.now();
  const pooled = () => {
    let most = 0;
    const re = new RegExp(`presignature added key=${evm.signingKey.id} pooled=(\\d+)`, 'g');
    for (const m of s.k.stderr().matchAll(re)) most = Math.max(most, Number(m[1]));
    return most;
  };
  while (pooled() < POOL) {
    if (performance.now() - fill > POOL * 20_000) throw new Error(`presignature pool: ${pooled()} of ${POOL}`);
    await sleep(200);
  }
  result.poolFillWaitSeconds = +((performance.now() - fill) / 1000).toFixed(1);
  // Message (EIP-191): the signers hash it themselves, so a presignature may be spent on it.
  // `Hash` never uses one: a presignature over a bare hash allows forgeries (see
  // crates/keyfold-mpc/src/ecdsa/mod.rs), so it runs the interactive protocol.
  result.ecdsaWarm = stats(
    await timeN(Math.min(40, POOL - 4), (i) =>
      c.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Message', message: hash(i) } }),
    ),
  );
  result.ecdsaHashInteractive = stats(
    await timeN(5, (i) => c.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Hash', hash: hash(i) } })),
  );

  }
  if (RUN_FROST) {
  result.ed25519 = stats(
    await timeN(200, (i) => c.keys.generateSignature({ keyId: ed.id, body: { kind: 'Hash', hash: hash(i) } })),
  );
  result.schnorr = stats(
    await timeN(200, (i) => c.keys.generateSignature({ keyId: tr.id, body: { kind: 'Hash', hash: hash(i) } })),
  );
  console.error(`[bench] ${new Date().toISOString()} sustained Ed25519 starts`);
  result.ed25519PerSecond = await sustained(16, SECONDS, (i) =>
    c.keys.generateSignature({ keyId: ed.id, body: { kind: 'Hash', hash: hash(i) } }),
  );
  console.error(`[bench] ${new Date().toISOString()} sustained Schnorr starts`);
  result.schnorrPerSecond = await sustained(16, SECONDS, (i) =>
    c.keys.generateSignature({ keyId: tr.id, body: { kind: 'Hash', hash: hash(i) } }),
  );
  }
  if (RUN_STEPS) {
  // What `generateSignature` does, step by step, with the SDK's own pieces (the same calls
  // its userActionFetch makes), one request in flight. Warm up first: pooled nonces, caches.
  const sig = (i) => ({ kind: 'Hash', hash: hash(i) });
  const sigPath = `/keys/${ed.id}/signatures`;
  for (let i = 0; i < 50; i++) await c.keys.generateSignature({ keyId: ed.id, body: sig(i) });
  const steps = { init: [], clientSign: [], exchange: [], request: [], total: [], sdkTotal: [], sdkGet: [], fetchGet: [] };
  for (let i = 0; i < 250; i++) {
    const body = sig(1000 + i);
    const t0 = performance.now();
    const challenge = await actionChallenge(api.baseUrl, api.token, { method: 'POST', path: sigPath, body });
    const t1 = performance.now();
    const firstFactor = await api.signer.sign(challenge);
    const t2 = performance.now();
    const { userAction } = await BaseAuthApi.signUserActionChallenge(
      { challengeIdentifier: challenge.challengeIdentifier, firstFactor },
      { baseUrl: api.baseUrl, authToken: api.token },
    );
    const t3 = performance.now();
    const res = await raw(api.baseUrl, { method: 'POST', path: sigPath, token: api.token, userAction, body });
    const t4 = performance.now();
    if (res.status !== 200 || res.json?.status !== 'Signed') throw new Error(`signature: ${res.status} ${res.text}`);
    steps.init.push(t1 - t0);
    steps.clientSign.push(t2 - t1);
    steps.exchange.push(t3 - t2);
    steps.request.push(t4 - t3);
    steps.total.push(t4 - t0);
    // Interleaved, so both see the same machine: the SDK's own call and its GET.
    const t5 = performance.now();
    await c.keys.generateSignature({ keyId: ed.id, body: sig(5000 + i) });
    const t6 = performance.now();
    await c.wallets.getWallet({ walletId: evm.id });
    const t7 = performance.now();
    // The same GET by plain fetch: what the SDK's own client adds to every round trip.
    const got = await raw(api.baseUrl, { path: `/wallets/${evm.id}`, token: api.token });
    if (got.status !== 200) throw new Error(`get: ${got.status}`);
    steps.sdkTotal.push(t6 - t5);
    steps.sdkGet.push(t7 - t6);
    steps.fetchGet.push(performance.now() - t7);
  }
  const get = pct(steps.sdkGet.slice(50), 50);
  result.steps = Object.fromEntries(
    Object.entries(steps).map(([k, xs]) => {
      const p50 = pct(xs.slice(50), 50);
      return [k, { p50: +p50.toFixed(3), overGet: +(p50 / get).toFixed(2) }];
    }),
  );
  const ua = ['init', 'clientSign', 'exchange'].reduce((a, k) => a + pct(steps[k].slice(50), 50), 0);
  // The smallest ratio any server could reach: the user action the SDK makes before every
  // signature, plus a signature request that cost no more than the GET it is divided by.
  result.steps.floorIfRequestCostAGet = +((ua + get) / get).toFixed(2);
  }
  if (RUN_ECDSA_SUSTAINED) {
  // Sustained ECDSA: long enough that the pool is drained and refilling is the bottleneck.
  result.ecdsaPerSecond = await sustained(4, Math.max(SECONDS, 4 * POOL), (i) =>
    c.wallets.generateSignature({ walletId: evm.id, body: { kind: 'Message', message: hash(100_000 + i) } }),
  );
  }
  if (RUN_KEYS) {
  // Wallet creation = DKG on all three signers, or a key the cluster generated ahead of time
  // (last: new ECDSA keys share the refill task). Let the key pool fill first.
  await sleep(3_000);
  // EdDSA first: every new ECDSA wallet starts presignature refills (seconds of CPU each,
  // at idle priority), which would slow what follows.
  result.keyCreateEdDSA = stats(
    await timeN(KEY_POOL || 8, () => c.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519' } })),
  );
  await sleep(1_000);
  result.walletCreateEcdsa = stats(
    await timeN(KEY_POOL || 8, () => c.wallets.createWallet({ body: { network: 'EthereumSepolia' } })),
  );

  }
  result.ratios = {
    ecdsaWarmP50OverGet: result.ecdsaWarm && +(result.ecdsaWarm.p50 / result.get.p50).toFixed(2),
    ed25519P50OverGet: result.ed25519 && +(result.ed25519.p50 / result.get.p50).toFixed(2),
    schnorrP50OverGet: result.schnorr && +(result.schnorr.p50 / result.get.p50).toFixed(2),
    walletCreateP50OverGet: result.walletCreateEcdsa && +(result.walletCreateEcdsa.p50 / result.get.p50).toFixed(2),
    keyCreateEdDSAP50OverGet: result.keyCreateEdDSA && +(result.keyCreateEdDSA.p50 / result.get.p50).toFixed(2),
  };
} finally {
  proxy?.kill();
  await s.k.stop();
}
console.log(JSON.stringify(result, null, 2));
