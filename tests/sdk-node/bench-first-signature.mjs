// Fresh `keyfold dev` (real safe primes, no fixtures) to the first ECDSA signature, through
// the official SDK. Not a test: `node tests/sdk-node/bench-first-signature.mjs`.

import { performance } from 'node:perf_hooks';

import { startAndLogin, waitSchemeReady } from './lib/harness.mjs';

const t0 = performance.now();
const s = await startAndLogin({ signers: true, env: { KEYFOLD_INSECURE_TEST_PRIMES: '' }, readyTimeoutMs: 60_000 });
const r = { apiReadyMs: Math.round(performance.now() - t0), ecdsaPhases: [] };
// Every change of /healthz's ECDSA detail ("signers generating safe primes (1/3 ready)",
// "generating aux info", "ready"), with when it was first seen: where the wait goes.
let watching = true;
const watch = (async () => {
  let last;
  while (watching) {
    try {
      const d = (await (await fetch(`${s.k.baseUrl}/healthz`)).json()).schemes?.ECDSA?.detail;
      if (d !== last) r.ecdsaPhases.push({ atMs: Math.round(performance.now() - t0), detail: d });
      last = d;
      if (d === 'ready') return;
    } catch {}
    await new Promise((f) => setTimeout(f, 100));
  }
})();
try {
  const eddsa = await s.client.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519' } });
  await s.client.keys.generateSignature({ keyId: eddsa.id, body: { kind: 'Message', message: '0x00' } });
  r.firstEdDSASignatureMs = Math.round(performance.now() - t0);
  await waitSchemeReady(s.k.baseUrl, 'ECDSA', 600_000);
  r.ecdsaReadyMs = Math.round(performance.now() - t0);
  watching = false;
  await watch;
  const w = await s.client.wallets.createWallet({ body: { network: 'EthereumSepolia' } });
  const sig = await s.client.wallets.generateSignature({ walletId: w.id, body: { kind: 'Message', message: '0x00' } });
  if (sig.status !== 'Signed') throw new Error(JSON.stringify(sig));
  r.firstEcdsaSignatureMs = Math.round(performance.now() - t0);
  // Restart on the same data: primes and aux info are cached.
  const dataDir = s.k.dataDir;
  await s.k.stop({ keepData: true });
  const t1 = performance.now();
  const again = await startAndLogin({ signers: true, dataDir, env: { KEYFOLD_INSECURE_TEST_PRIMES: '' } });
  r.restartApiReadyMs = Math.round(performance.now() - t1);
  await waitSchemeReady(again.k.baseUrl, 'ECDSA', 30_000);
  r.restartEcdsaReadyMs = Math.round(performance.now() - t1);
  await again.k.stop();
} catch (e) {
  watching = false;
  await s.k.stop();
  throw e;
}
console.log(JSON.stringify(r, null, 2));
