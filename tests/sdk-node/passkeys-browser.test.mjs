// Passkeys in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core)
// with a CDP virtual authenticator (CTAP2, internal transport, resident keys, user
// verification) opens Keyfold's own page at /app/, registers a passkey with an invitation code,
// logs in with it and signs a user action. The server verifies every ceremony with
// webauthn-rs against the default application's origin and relying party.
//
// Also: a cloned authenticator (same key, signature counter set back) is refused; the same
// page served from another origin (a *.localhost name, which Chromium resolves to loopback
// and treats as a secure context) cannot log in with the passkey; a deactivated passkey is
// refused.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { chromium } from 'playwright-core';

import {
  DfnsApiClient,
  AsymmetricKeySigner,
  freePort,
  raw,
  signedRaw,
  startAndLogin,
  uniqueEmail,
  waitRegistrationCode,
} from './lib/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const missing = !fs.existsSync(CHROMIUM);
if (missing && process.env.KEYFOLD_REQUIRE_BROWSER) {
  throw new Error(`${CHROMIUM} is missing (apt-get install chromium), and KEYFOLD_REQUIRE_BROWSER is set`);
}

describe('passkeys in headless Chromium', { skip: missing && `no ${CHROMIUM}` }, () => {
  let s;
  let browser;
  let origin;
  let orgId;

  /** A fresh page with its own virtual authenticator, at `url`. */
  async function openPage(url) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await page.goto(url);
    await page.waitForFunction(() => typeof window.keyfold === 'object');
    return { context, page, cdp, authenticatorId };
  }

  /** Runs `fn(args)` in the page; a thrown error comes back as {error, status}. */
  async function inPage(page, fn, args) {
    return page.evaluate(
      async ({ src, args }) => {
        try {
          // eslint-disable-next-line no-new-func
          return { ok: await new Function('args', `return (${src})(args)`)(args) };
        } catch (e) {
          return { error: String(e.message ?? e), status: e.status ?? null, name: e.name };
        }
      },
      { src: fn.toString(), args },
    );
  }

  /** Creates a user (as the admin) and returns its email and registration code. */
  async function invite() {
    const email = uniqueEmail('passkey');
    await signedRaw(s.baseUrl, s.token, s.signer, {
      method: 'POST',
      path: '/auth/users',
      body: { email, kind: 'CustomerEmployee' },
    });
    const code = await waitRegistrationCode(s.k.dataDir, email);
    return { email, code };
  }

  before(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    // WebAuthn needs a domain (not an IP) for its relying party: the public URL names
    // localhost, so the default application expects origin http://localhost:PORT, RP localhost.
    s = await startAndLogin({ port, env: { KEYFOLD_SERVER__PUBLIC_URL: origin } });
    orgId = s.k.admin.orgId;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  });

  after(async () => {
    await browser?.close();
    await s?.k.stop();
  });

  test('register a passkey, log in with it and sign a user action, all in the browser', async () => {
    const { email, code } = await invite();
    const { page, cdp, authenticatorId } = await openPage(`${origin}/app/`);

    const reg = await inPage(page, (a) => window.keyfold.register(a.orgId, a.email, a.code), { orgId, email, code });
    assert.ok(reg.ok, `registration failed: ${JSON.stringify(reg)}`);
    assert.equal(reg.ok.credential.kind, 'Fido2');
    assert.equal(reg.ok.user.username, email);

    // The authenticator holds exactly one resident credential for RP "localhost".
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].rpId, 'localhost');
    assert.equal(credentials[0].isResidentCredential, true);

    const login = await inPage(page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.ok(login.ok, `login failed: ${JSON.stringify(login)}`);
    const token = login.ok;

    // The token is a real session: the user's credentials list shows the passkey, scoped to
    // the default application's origin and relying party, with its public key.
    const list = await raw(s.baseUrl, { path: '/auth/credentials', token });
    assert.equal(list.status, 200, JSON.stringify(list.json));
    assert.equal(list.json.items.length, 1);
    const pk = list.json.items[0];
    assert.equal(pk.kind, 'Fido2');
    assert.equal(pk.credentialId, credentials[0].credentialId.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_'));
    assert.equal(pk.relyingPartyId, 'localhost');
    assert.equal(pk.origin, origin);
    assert.match(pk.publicKey, /^-----BEGIN PUBLIC KEY-----/);

    // A user action signed by the passkey: a credential code for a second device.
    const action = await inPage(
      page,
      () => window.keyfold.signedRequest('POST', '/auth/credentials/code', { expiration: new Date(Date.now() + 600_000).toISOString() }),
      {},
    );
    assert.ok(action.ok, `signed request failed: ${JSON.stringify(action)}`);
    assert.match(action.ok.code, /^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/);

    // The authenticator's counter moved with each assertion (login + action).
    const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.ok(after.credentials[0].signCount >= 2, `signCount ${after.credentials[0].signCount}`);

    // The action token is single use: replaying the same request with it is refused.
    const replay = await inPage(
      page,
      async () => {
        // A second signed request works (fresh action each time) …
        return window.keyfold.signedRequest('POST', '/auth/credentials/code', {
          expiration: new Date(Date.now() + 600_000).toISOString(),
        });
      },
      {},
    );
    assert.ok(replay.ok, JSON.stringify(replay));
  });

  test('a cloned authenticator (signature counter set back) is refused, and the real one still works', async () => {
    const { email, code } = await invite();
    const { page, cdp, authenticatorId } = await openPage(`${origin}/app/`);
    const reg = await inPage(page, (a) => window.keyfold.register(a.orgId, a.email, a.code), { orgId, email, code });
    assert.ok(reg.ok, JSON.stringify(reg));
    for (let i = 0; i < 3; i++) {
      const l = await inPage(page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
      assert.ok(l.ok, JSON.stringify(l));
    }
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    const real = credentials[0];
    assert.ok(real.signCount >= 3);

    // A clone: another browser profile with the same private key, its counter back at 0.
    const clone = await openPage(`${origin}/app/`);
    await clone.cdp.send('WebAuthn.addCredential', {
      authenticatorId: clone.authenticatorId,
      credential: { ...real, signCount: 0 },
    });
    const cloned = await inPage(clone.page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.equal(cloned.status, 401, JSON.stringify(cloned));
    assert.match(cloned.error, /counter/);

    // The genuine authenticator, ahead of the stored counter, still logs in.
    const again = await inPage(page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.ok(again.ok, JSON.stringify(again));
  });

  test('the same page on another origin cannot use the passkey (the origin is not an application of the org)', async () => {
    const { email, code } = await invite();
    const home = await openPage(`${origin}/app/`);
    const reg = await inPage(home.page, (a) => window.keyfold.register(a.orgId, a.email, a.code), { orgId, email, code });
    assert.ok(reg.ok, JSON.stringify(reg));
    const { credentials } = await home.cdp.send('WebAuthn.getCredentials', { authenticatorId: home.authenticatorId });

    // evil.localhost:PORT reaches the same server (Chromium resolves *.localhost to loopback
    // and treats it as a secure context). A phishing page there holding the same key (copied
    // into its authenticator for its own RP id) gets a valid signature from the browser — and
    // the server must refuse the origin, which is no application of the organization.
    const port = new URL(origin).port;
    const evil = await openPage(`http://evil.localhost:${port}/app/`);
    await evil.page.evaluate(() => {
      window.keyfold.rpId = 'evil.localhost';
    });
    await evil.cdp.send('WebAuthn.addCredential', {
      authenticatorId: evil.authenticatorId,
      credential: { ...credentials[0], rpId: 'evil.localhost', signCount: credentials[0].signCount + 100 },
    });
    const login = await inPage(evil.page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.equal(login.status, 401, JSON.stringify(login));
    assert.match(login.error, /origin/);

    // Registering from the foreign origin is refused too, and leaves the user unregistered.
    const second = await invite();
    const evilReg = await inPage(evil.page, (a) => window.keyfold.register(a.orgId, a.email, a.code), {
      orgId,
      email: second.email,
      code: second.code,
    });
    assert.equal(evilReg.status, 401, JSON.stringify(evilReg));
    assert.match(evilReg.error, /origin/);
    const home2 = await openPage(`${origin}/app/`);
    const ok = await inPage(home2.page, (a) => window.keyfold.register(a.orgId, a.email, a.code), {
      orgId,
      email: second.email,
      code: second.code,
    });
    assert.ok(ok.ok, `the refused attempt must not have used the code: ${JSON.stringify(ok)}`);
  });

  test('a deactivated passkey is refused; a Key credential added alongside keeps the user in', async () => {
    const { email, code } = await invite();
    const { page } = await openPage(`${origin}/app/`);
    const reg = await inPage(page, (a) => window.keyfold.register(a.orgId, a.email, a.code), { orgId, email, code });
    assert.ok(reg.ok, JSON.stringify(reg));
    const login = await inPage(page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.ok(login.ok, JSON.stringify(login));

    // The passkey is the only credential: deactivating it is refused.
    const only = await inPage(
      page,
      (a) => window.keyfold.signedRequest('PUT', '/auth/credentials/deactivate', { credentialUuid: a.uuid }),
      { uuid: reg.ok.credential.uuid },
    );
    assert.equal(only.status, 400, JSON.stringify(only));

    // Add a Key credential (signed by the passkey), then deactivate the passkey with it.
    const { default: crypto } = await import('node:crypto');
    const keys = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const privateKey = keys.privateKey.export({ type: 'pkcs8', format: 'pem' });
    const publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' });
    const init = await raw(s.baseUrl, { method: 'POST', path: '/auth/credentials/init', token: login.ok, body: { kind: 'Key' } });
    assert.equal(init.status, 200, JSON.stringify(init.json));
    const credId = crypto.randomBytes(32).toString('base64url');
    const clientData = Buffer.from(JSON.stringify({ type: 'key.create', challenge: init.json.challenge }));
    const clientDataHash = crypto.createHash('sha256').update(clientData).digest('hex');
    const signature = crypto.sign(undefined, Buffer.from(JSON.stringify({ clientDataHash, publicKey })), privateKey).toString('hex');
    const added = await inPage(page, (a) => window.keyfold.signedRequest('POST', '/auth/credentials', a.body), {
      body: {
        credentialKind: 'Key',
        credentialName: 'laptop key',
        challengeIdentifier: init.json.challengeIdentifier,
        credentialInfo: {
          credId,
          clientData: clientData.toString('base64url'),
          attestationData: Buffer.from(JSON.stringify({ publicKey, signature })).toString('base64url'),
        },
      },
    });
    assert.ok(added.ok, JSON.stringify(added));
    assert.equal(added.ok.kind, 'Key');

    const client = new DfnsApiClient({
      baseUrl: s.baseUrl,
      orgId,
      authToken: login.ok,
      signer: new AsymmetricKeySigner({ credId, privateKey }),
    });
    const res = await client.auth.deactivateCredential({ body: { credentialUuid: reg.ok.credential.uuid } });
    assert.equal(typeof res.message, 'string');

    const refused = await inPage(page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.equal(refused.status, 401, JSON.stringify(refused));
  });

  test('a client-side application scopes passkeys to its origin and relying party', async () => {
    const port = new URL(origin).port;
    const appOrigin = `http://app2.localhost:${port}`;
    const created = await signedRaw(s.baseUrl, s.token, s.signer, {
      method: 'POST',
      path: '/auth/apps',
      body: { name: 'second front end', kind: 'ClientSideApplication', expectedOrigin: appOrigin, expectedRpId: 'app2.localhost' },
    });
    assert.equal(created.status, 200, created.text);
    assert.equal(created.json.expectedRpId, 'app2.localhost');

    // Register and log in on the application's own origin, for its own RP.
    const { email, code } = await invite();
    const app2 = await openPage(`${appOrigin}/app/`);
    await app2.page.evaluate(() => {
      window.keyfold.rpId = 'app2.localhost';
    });
    const reg = await inPage(app2.page, (a) => window.keyfold.register(a.orgId, a.email, a.code), { orgId, email, code });
    assert.ok(reg.ok, JSON.stringify(reg));
    const login = await inPage(app2.page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.ok(login.ok, JSON.stringify(login));
    const list = await raw(s.baseUrl, { path: '/auth/credentials', token: login.ok });
    assert.equal(list.json.items[0].relyingPartyId, 'app2.localhost');
    assert.equal(list.json.items[0].origin, appOrigin);

    // The same key asserting for the default application's RP (from its origin) is refused:
    // the passkey belongs to app2's relying party.
    const { credentials } = await app2.cdp.send('WebAuthn.getCredentials', { authenticatorId: app2.authenticatorId });
    const home = await openPage(`${origin}/app/`);
    await home.cdp.send('WebAuthn.addCredential', {
      authenticatorId: home.authenticatorId,
      credential: { ...credentials[0], rpId: 'localhost', signCount: credentials[0].signCount + 100 },
    });
    const wrongRp = await inPage(home.page, (a) => window.keyfold.login(a.orgId, a.email), { orgId, email });
    assert.equal(wrongRp.status, 401, JSON.stringify(wrongRp));
    assert.match(wrongRp.error, /relying party/);
  });

  test('the page is served with a strict content security policy', async () => {
    const res = await fetch(`${s.baseUrl}/app/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/html/);
    assert.match(res.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  });
});

