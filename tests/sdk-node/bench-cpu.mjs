// CPU per FROST signature, per process: the official SDK signing with one key, 16 requests in
// flight, against `keyfold dev` with its 3 signer processes. Not a test: a benchmark
// (docs/benchmarks.md). Prints each process's CPU time (utime + stime from /proc) divided by
// the number of signatures, and the rate. CPU time moves far less from run to run than a
// rate on this shared VM, so it is what an A/B between two builds should compare.
//
//   KEYFOLD_BIN  the binary (default target/debug/keyfold)
//   N            signatures measured (default 3000), after 300 unmeasured
//   SCHEME/CURVE the key (default EdDSA / ed25519; Schnorr / secp256k1 for BIP-340)

import fs from 'node:fs';
import { execSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { startAndLogin, waitSchemeReady } from './lib/harness.mjs';

const N = Number(process.env.N || 3000);
const s = await startAndLogin({ signers: true });
try {
  // ECDSA set-up (aux info) runs in the signers right after start: wait it out.
  await waitSchemeReady(s.k.baseUrl, 'ECDSA');
  await sleep(3000);
  const c = s.client;
  const key = await c.keys.createKey({
    body: { scheme: process.env.SCHEME || 'EdDSA', curve: process.env.CURVE || 'ed25519' },
  });
  const hash = (i) => `0x${(BigInt(i) + 1n).toString(16).padStart(64, '0')}`;
  const run = async (n) => {
    let i = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (i < n) {
          const k = i++;
          await c.keys.generateSignature({ keyId: key.id, body: { kind: 'Hash', hash: hash(k) } });
        }
      }),
    );
  };
  await run(300);
  const pids = () =>
    execSync(`pgrep -f " (dev --data-dir ${s.k.dataDir}|signer --id)"`)
      .toString()
      .trim()
      .split('\n')
      .concat([String(process.pid)]);
  const ticks = (p) => {
    try {
      const f = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').slice(1, 4).join(' ');
      return [Number(f[11]) + Number(f[12]), cmd];
    } catch {
      return [0, ''];
    }
  };
  const snap = () => Object.fromEntries(pids().map((p) => [p, ticks(p)]));
  const a = snap();
  const t = performance.now();
  await run(N);
  const secs = (performance.now() - t) / 1000;
  const b = snap();
  const tick = 1000 / Number(execSync('getconf CLK_TCK').toString().trim());
  const perProcess = {};
  let total = 0;
  for (const p of Object.keys(b)) {
    const ms = ((b[p][0] - (a[p]?.[0] ?? 0)) * tick) / N;
    total += ms;
    perProcess[p === String(process.pid) ? 'load generator (this script, the SDK)' : b[p][1]] = +ms.toFixed(2);
  }
  console.log(
    JSON.stringify(
      { binary: process.env.KEYFOLD_BIN || 'target/debug/keyfold', n: N, cpuMsPerSignature: perProcess, totalCpuMs: +total.toFixed(2), signaturesPerSecond: +(N / secs).toFixed(1) },
      null,
      2,
    ),
  );
} finally {
  await s.k.stop();
}
