// Durability: `kill -9` of `keyfold dev` in the middle of a burst of concurrent createUser
// calls, then a restart on the same data dir. Every user whose creation was acknowledged
// (HTTP 200 received) must exist after the restart, exactly as acknowledged; nothing may be
// half-written; users created but not acknowledged are allowed (the crash can land between
// the commit and the response). Restart readiness is measured and printed (not asserted).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  DfnsError,
  assertUserShape,
  listAllUsers,
  raw,
  registerUser,
  removeTmpDir,
  sdkLogin,
  startKeyfold,
  uniqueEmail,
  userAction,
  waitRegistrationCode,
} from './lib/harness.mjs';

const BURST = 50;

describe('kill -9 during a createUser burst, then restart', () => {
  let k; // the current keyfold process (replaced on restart)
  let dataDir;
  let port;
  let tmpDir;
  const restartsMs = [];

  before(async () => {
    k = await startKeyfold();
    ({ dataDir, port, tmpDir } = k);
  });

  after(async () => {
    await k?.stop({ keepData: true });
    if (tmpDir) removeTmpDir(tmpDir);
    if (restartsMs.length) console.log(`restart readiness (ms): ${restartsMs.join(', ')}`);
  });

  /** kill -9 now, restart on the same dir and port, log in again. */
  async function crashAndRestart() {
    await k.kill9();
    const t0 = Date.now();
    k = await startKeyfold({ dataDir, port });
    const ms = Date.now() - t0;
    restartsMs.push(ms);
    console.log(`keyfold dev restarted on the same data dir, ready in ${ms} ms (target < 2000 ms)`);
    if (ms >= 2000) console.log(`WARNING: restart took ${ms} ms, over the 2 s target`);
    return sdkLogin(k.baseUrl, k.admin);
  }

  /** The checks after a restart. `acked`: Map email -> acknowledged user; `all`: every email tried. */
  async function verify(session, before, acked, all) {
    const users = await listAllUsers(session.client);
    const byId = new Map();
    const byName = new Map();
    for (const u of users) {
      assertUserShape(assert, u);
      assert.ok(u.userId && u.username, `half-written user ${JSON.stringify(u)}`);
      assert.equal(u.orgId, k.admin.orgId);
      assert.ok(!byId.has(u.userId), `user ${u.userId} listed twice`);
      assert.ok(!byName.has(u.username), `username ${u.username} listed twice`);
      byId.set(u.userId, u);
      byName.set(u.username, u);
    }
    // everything that existed before the burst is still there, unchanged
    for (const u of before) assert.deepEqual(byId.get(u.userId), u, `pre-existing user ${u.userId} changed`);
    // every acknowledged user exists exactly as acknowledged, also through getUser
    for (const [email, u] of acked) {
      assert.deepEqual(byId.get(u.userId), u, `acknowledged user ${email} (${u.userId}) missing or different after restart`);
      assert.deepEqual(await session.client.auth.getUser({ userId: u.userId }), u);
    }
    // the burst's users present: acked <= present <= tried; nothing else appeared
    const present = all.filter((e) => byName.has(e));
    assert.ok(acked.size <= present.length && present.length <= all.length);
    assert.equal(users.length, before.length + present.length, 'users appeared that nobody asked for');
    // unacknowledged emails: present ones are whole users (a retry is a 409), absent ones
    // left nothing behind (a retry creates them)
    let retried409 = 0;
    let retried200 = 0;
    for (const email of all) {
      if (acked.has(email)) continue;
      try {
        await session.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
        assert.ok(!byName.has(email), `${email} was listed after restart, yet creating it again succeeded`);
        retried200++;
      } catch (e) {
        if (!(e instanceof DfnsError)) throw e;
        assert.equal(e.httpStatus, 409, `retry of unacknowledged ${email}: HTTP ${e.httpStatus} ${e.message}`);
        assert.ok(byName.has(email), `${email} is not listed, yet creating it is a 409 (half-written?)`);
        retried409++;
      }
    }
    console.log(
      `tried ${all.length}, acknowledged ${acked.size}, present after restart ${present.length} ` +
        `(committed but unacknowledged: ${present.length - acked.size}); retries: ${retried409} x 409, ${retried200} x 200`,
    );
    return { users, present };
  }

  test('SDK burst: 50 concurrent createUser, kill -9 after the first acknowledgements', async () => {
    let session = await sdkLogin(k.baseUrl, k.admin);
    const before = await listAllUsers(session.client);
    const emails = Array.from({ length: BURST }, (_, i) => uniqueEmail(`burst${i}`));
    const acked = new Map();
    const failures = [];
    let killed = false;
    let killAt = null;
    const killAfter = 8;
    const calls = emails.map((email) =>
      session.client.auth
        .createUser({ body: { email, kind: 'CustomerEmployee' } })
        .then((u) => {
          if (killed) return; // cannot happen after SIGKILL, but keep the bookkeeping honest
          assert.equal(u.username, email);
          acked.set(email, u);
          if (acked.size === killAfter && !killAt) {
            killAt = Date.now();
            killed = true;
            process.kill(k.pid, 'SIGKILL');
          }
        })
        .catch((e) => failures.push(e)),
    );
    // fallback: kill after 3 s if the acks did not come
    const fallback = sleep(3000).then(() => {
      if (!killed) {
        killed = true;
        process.kill(k.pid, 'SIGKILL');
      }
    });
    await Promise.all(calls);
    killed = true;
    await Promise.race([fallback, sleep(0)]);
    // HTTP errors received before the kill (e.g. 500 "database is locked") are bugs;
    // connection errors are the kill.
    const httpErrors = failures.filter((e) => e instanceof DfnsError && e.httpStatus > 0);
    assert.deepEqual(
      httpErrors.map((e) => `${e.httpStatus} ${e.message}`),
      [],
      'HTTP errors during the burst (before the kill)',
    );
    assert.ok(acked.size >= 1 && acked.size < BURST, `kill should land mid-burst (acked ${acked.size}/${BURST})`);

    session = await crashAndRestart();
    await verify(session, before, acked, emails);
  });

  test('raw burst: 50 pre-signed POST /auth/users in flight, kill -9 after 5 responses', async () => {
    let session = await sdkLogin(k.baseUrl, k.admin);
    const before = await listAllUsers(session.client);
    const emails = Array.from({ length: BURST }, (_, i) => uniqueEmail(`raw${i}`));
    // sign first (10 at a time), so that the burst itself is only the writes
    const signed = [];
    for (let i = 0; i < emails.length; i += 10) {
      signed.push(
        ...(await Promise.all(
          emails.slice(i, i + 10).map(async (email) => {
            const body = JSON.stringify({ email, kind: 'CustomerEmployee' });
            const ua = await userAction(k.baseUrl, session.token, session.signer, { method: 'POST', path: '/auth/users', body });
            return { email, body, ua };
          }),
        )),
      );
    }
    const acked = new Map();
    const httpErrors = [];
    let done = 0;
    let killed = false;
    const killAfter = 5;
    const pid = k.pid;
    await Promise.all(
      signed.map(({ email, body, ua }) =>
        raw(k.baseUrl, { method: 'POST', path: '/auth/users', token: session.token, userAction: ua, body })
          .then((r) => {
            if (r.status === 200) acked.set(email, r.json);
            else httpErrors.push(`${r.status} ${r.text}`);
          })
          .catch(() => {
            /* connection reset by the kill: not acknowledged */
          })
          .finally(() => {
            done++;
            if (done === killAfter && !killed) {
              killed = true;
              process.kill(pid, 'SIGKILL');
            }
          }),
      ),
    );
    assert.deepEqual(httpErrors, [], 'HTTP errors during the raw burst (before the kill)');
    assert.ok(acked.size >= 1 && acked.size < BURST, `kill should land mid-burst (acked ${acked.size}/${BURST})`);

    session = await crashAndRestart();
    await verify(session, before, acked, emails);

    // an acknowledged user is fully usable after the crash: a fresh code, registration, login
    const [email] = acked.keys();
    const old = await waitRegistrationCode(k.dataDir, email, { timeoutMs: 300 }).catch(() => null);
    const r = await raw(k.baseUrl, { method: 'PUT', path: '/auth/registration/code', body: { orgId: k.admin.orgId, username: email } });
    assert.equal(r.status, 200, r.text);
    const code = await waitRegistrationCode(k.dataDir, email, { notIn: old ? [old] : [] });
    const reg = await registerUser(k, email, { code });
    await sdkLogin(k.baseUrl, { orgId: k.admin.orgId, username: email, credId: reg.credId, privateKey: reg.privateKey });
  });

  test('a clean restart (SIGTERM) keeps everything too, and is ready quickly', async () => {
    let session = await sdkLogin(k.baseUrl, k.admin);
    const before = await listAllUsers(session.client);
    await k.stop({ keepData: true });
    const t0 = Date.now();
    k = await startKeyfold({ dataDir, port });
    const ms = Date.now() - t0;
    restartsMs.push(ms);
    console.log(`keyfold dev restarted after SIGTERM, ready in ${ms} ms`);
    session = await sdkLogin(k.baseUrl, k.admin);
    assert.deepEqual(await listAllUsers(session.client), before);
  });
});
