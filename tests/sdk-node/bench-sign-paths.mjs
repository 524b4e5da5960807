// Where a warm ECDSA signature's time goes against a pooled Ed25519 one: an EVM wallet's `Message`,
// a raw ECDSA key's and a raw Ed25519 key's, interleaved (30 each, pools full). Not a test:
// `node tests/sdk-node/bench-sign-paths.mjs` (KEYFOLD_BIN picks the binary).
import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { startAndLogin, waitSchemeReady, makeTmpDir } from './lib/harness.mjs';
const dir = makeTmpDir();
const cfg = path.join(dir, 'keyfold.toml');
fs.writeFileSync(cfg, `[signing]\npresignatures_per_key = 40\nnonces_per_key = 64\n`);
const s = await startAndLogin({ signers: true, args: ['--config', cfg], env: { RUST_LOG: 'warn,keyfold::pool=debug' } });
const p50 = (a) => { const b = [...a].sort((x, y) => x - y); return +b[Math.floor(b.length / 2)].toFixed(2); };
const pooled = (id) => { let m = 0; for (const x of s.k.stderr().matchAll(new RegExp(`presignature added key=${id} pooled=(\\d+)`, 'g'))) m = Math.max(m, +x[1]); return m; };
try {
  await waitSchemeReady(s.k.baseUrl, 'ECDSA');
  const c = s.client;
  const w = await c.wallets.createWallet({ body: { network: 'EthereumSepolia' } });
  const k = await c.keys.createKey({ body: { scheme: 'ECDSA', curve: 'secp256k1' } });
  const ed = await c.keys.createKey({ body: { scheme: 'EdDSA', curve: 'ed25519' } });
  await c.keys.generateSignature({ keyId: k.id, body: { kind: 'Message', message: '0x00' } });
  await c.keys.generateSignature({ keyId: ed.id, body: { kind: 'Message', message: '0x00' } });
  while (pooled(w.signingKey.id) < 40 || pooled(k.id) < 40) await new Promise((f) => setTimeout(f, 500));
  const r = { get: [], walletMsg: [], keyMsg: [], edMsg: [] };
  for (let i = 0; i < 30; i++) {
    let t = performance.now(); await c.wallets.getWallet({ walletId: w.id }); r.get.push(performance.now() - t);
    t = performance.now(); await c.wallets.generateSignature({ walletId: w.id, body: { kind: 'Message', message: '0x0' + (i % 10) } }); r.walletMsg.push(performance.now() - t);
    t = performance.now(); await c.keys.generateSignature({ keyId: k.id, body: { kind: 'Message', message: '0x0' + (i % 10) } }); r.keyMsg.push(performance.now() - t);
    t = performance.now(); await c.keys.generateSignature({ keyId: ed.id, body: { kind: 'Message', message: '0x0' + (i % 10) } }); r.edMsg.push(performance.now() - t);
  }
  console.log(JSON.stringify(Object.fromEntries(Object.entries(r).map(([n, a]) => [n, p50(a)]))));
} finally { await s.k.stop(); }
