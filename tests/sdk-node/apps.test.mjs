// Applications (/auth/apps) through the official Dfns SDK (@dfns/sdk 0.8.21) and raw requests
// against a real `keyfold dev`: the org's default client-side application, creation of
// client-side (origin + relying party) and server-side (public key) applications with every
// refusal leaving the list unchanged, Auth:Apps:* permissions, and server-side application
// request signing (X-DFNS-APPID / X-DFNS-NONCE / X-DFNS-APISIGNATURE): wrong key, body,
// path, query or method, replayed or stale nonces, unknown apps — and tokens bound to the
// server-side application they logged in through.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
  DfnsError,
  expectDfnsError,
  keyAssertion,
  listAllUsers,
  newKeyPair,
  raw,
  registerUser,
  sdkLogin,
  signedRaw,
  snapshotUsers,
  startAndLogin,
  uniqueEmail,
  userAction,
  refused,
} from './lib/harness.mjs';

// ---------------------------------------------------------------------------------------
// helpers

const AP_RE = /^ap-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{16}$/;

/** A syntactically valid id of the same kind that (almost surely) does not exist. */
function unknownLike(id) {
  const tail = id.endsWith('000000') ? '000001' : '000000';
  return `${id.slice(0, -6)}${tail}`;
}

/** A raw answer must be `status` with a Dfns error body; returns the message. */
function refusedRaw(r, status, what) {
  assert.equal(r.status, status, `${what}: expected HTTP ${status}, got ${r.status}: ${r.text}`);
  assert.equal(typeof r.json?.error?.message, 'string', `${what}: HTTP ${status} without {error:{message}}: ${r.text}`);
  return r.json.error.message;
}

/** A fresh key pair of `kind`, as PEM (SPKI / PKCS#8). */
function keyPairOf(kind) {
  let pair;
  switch (kind) {
    case 'P-256':
      return newKeyPair();
    case 'secp256k1':
      pair = crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      break;
    case 'Ed25519':
      pair = crypto.generateKeyPairSync('ed25519');
      break;
    case 'RSA':
      pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      break;
    case 'RSA-1024':
      pair = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
      break;
    case 'P-384':
      pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
      break;
    default:
      throw new Error(kind);
  }
  return {
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }),
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }),
  };
}

/** The X-DFNS-NONCE value for `date` (and `uuid`, random by default). */
function nonceOf({ date = new Date(), uuid = crypto.randomUUID() } = {}) {
  return Buffer.from(JSON.stringify({ uuid, date: date.toISOString() })).toString('base64url');
}

/**
 * The headers of a request made under server-side application `appId`, signed with its
 * `privateKey` over (nonce, METHOD, path?query, sha256(body)). `opts.nonce` / `opts.date`
 * override the fresh nonce.
 */
function appHeaders(appId, privateKey, method, pathWithQuery, bodyString = '', opts = {}) {
  const nonce = opts.nonce ?? nonceOf({ date: opts.date });
  const hash = crypto.createHash('sha256').update(bodyString ?? '').digest('hex');
  const text = `${appId}\n${nonce}\n${method.toUpperCase()}\n${pathWithQuery}\n${hash}`;
  const signature = crypto.sign(undefined, Buffer.from(text), privateKey).toString('base64url');
  return { 'X-DFNS-APPID': appId, 'X-DFNS-NONCE': nonce, 'X-DFNS-APISIGNATURE': signature };
}

/** Asserts the Application shape. */
function assertAppShape(a, orgId) {
  assert.ok(a && typeof a === 'object', `application: ${JSON.stringify(a)}`);
  assert.match(a.appId, AP_RE, `appId: ${JSON.stringify(a)}`);
  assert.ok(['ClientSideApplication', 'ServerSideApplication'].includes(a.kind), `kind: ${JSON.stringify(a)}`);
  assert.equal(a.orgId, orgId);
  assert.equal(typeof a.name, 'string');
  assert.equal(typeof a.isActive, 'boolean');
  assert.deepEqual(a.permissionAssignments, [], `permissionAssignments: ${JSON.stringify(a)}`);
  assert.deepEqual(a.accessTokens, [], `accessTokens: ${JSON.stringify(a)}`);
  if (a.kind === 'ClientSideApplication') {
    assert.equal(typeof a.expectedOrigin, 'string', `client-side without expectedOrigin: ${JSON.stringify(a)}`);
    assert.equal(typeof a.expectedRpId, 'string', `client-side without expectedRpId: ${JSON.stringify(a)}`);
    assert.ok(a.publicKey === undefined || a.publicKey === null, `client-side with a publicKey: ${JSON.stringify(a)}`);
  } else {
    assert.match(a.publicKey ?? '', /-----BEGIN PUBLIC KEY-----/, `server-side without publicKey: ${JSON.stringify(a)}`);
    assert.ok(a.expectedOrigin === undefined || a.expectedOrigin === null, `server-side with an origin: ${JSON.stringify(a)}`);
    assert.ok(a.expectedRpId === undefined || a.expectedRpId === null, `server-side with an rp id: ${JSON.stringify(a)}`);
  }
  assert.ok(!JSON.stringify(a).includes('PRIVATE KEY'), 'a private key in the answer');
}

// ---------------------------------------------------------------------------------------

describe('applications (/auth/apps) and server-side application signatures', () => {
  let s; // { k, token, signer, client }
  let defaultApp;
  let srv; // a server-side application { app, keys }
  let srv2; // another one

  const base = () => s.k.baseUrl;
  const orgId = () => s.k.admin.orgId;

  const listApps = async () => (await s.client.auth.listApplications()).items;
  const snapshotApps = async () => JSON.stringify(await listApps());

  /** POST /auth/apps as the admin (user action signed by the admin's key). */
  const createApp = (body, session = s) =>
    signedRaw(base(), session.token, session.signer, { method: 'POST', path: '/auth/apps', body });

  async function newServerApp(kind = 'P-256', name) {
    const keys = keyPairOf(kind);
    const r = await createApp({ name: name ?? `srv-${kind}-${crypto.randomBytes(3).toString('hex')}`, kind: 'ServerSideApplication', publicKey: keys.publicKey });
    assert.equal(r.status, 200, `create server-side ${kind}: ${r.text}`);
    return { app: r.json, keys };
  }

  /** The two server-side applications the signature tests use (made once). */
  async function serverApps() {
    srv ??= await newServerApp('P-256', 'backend');
    srv2 ??= await newServerApp('Ed25519', 'backend two');
  }

  /** A raw request under server-side app `a` ({app, keys}), signed over exactly what is sent. */
  function underApp(a, { method = 'GET', path: p, token, userAction, body, headers = {} }) {
    const bodyString = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    return raw(base(), {
      method,
      path: p,
      token,
      userAction,
      body: body === undefined ? undefined : bodyString,
      headers: { ...appHeaders(a.app.appId, a.keys.privateKey, method, p, bodyString), ...headers },
    });
  }

  /** Creates, registers and logs in a user: { userId, email, reg, session }. */
  async function newUser(tag) {
    const email = uniqueEmail(tag);
    const created = await s.client.auth.createUser({ body: { email, kind: 'CustomerEmployee' } });
    const reg = await registerUser(s.k, email);
    const session = await sdkLogin(base(), { orgId: orgId(), username: email, credId: reg.credId, privateKey: reg.privateKey });
    return { userId: created.userId, email, reg, session };
  }

  /** Logs the admin in by hand; `loginHeaders(bodyString)` gives extra headers for POST /auth/login. */
  async function adminLogin(loginHeaders = () => ({})) {
    const init = await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: s.k.admin.username } });
    assert.equal(init.status, 200, init.text);
    const body = JSON.stringify({ challengeIdentifier: init.json.challengeIdentifier, firstFactor: keyAssertion(init.json, s.k.admin) });
    return raw(base(), { method: 'POST', path: '/auth/login', body, headers: loginHeaders(body) });
  }

  before(async () => {
    s = await startAndLogin();
    // test 1 checks it; the other tests only need its id
    defaultApp = (await listApps().catch(() => []))[0];
  });
  after(async () => {
    await s?.k.stop();
  });

  // -------------------------------------------------------------------------------------
  test('the default application: first in the list, client-side, at the server origin; get by id; unknown → 404', async () => {
    const perms = (await s.client.permissions.listPermissions({ query: { limit: 100 } })).items;
    const adminPerm = perms.find((p) => p.isImmutable);
    for (const o of ['Auth:Apps:Read', 'Auth:Apps:Create']) assert.ok(adminPerm?.operations.includes(o), `the built-in permission lacks ${o}`);

    const res = await s.client.auth.listApplications();
    assert.ok(Array.isArray(res.items), `listApplications: ${JSON.stringify(res)}`);
    assert.ok(res.items.length >= 1, 'no default application');
    for (const a of res.items) assertAppShape(a, orgId());
    defaultApp = res.items[0];
    assert.equal(defaultApp.kind, 'ClientSideApplication');
    assert.equal(defaultApp.expectedOrigin, base(), 'the default app origin is the server URL');
    assert.equal(defaultApp.expectedRpId, '127.0.0.1');
    assert.equal(defaultApp.isActive, true);

    const got = await s.client.auth.getApplication({ appId: defaultApp.appId });
    assert.deepEqual(got, defaultApp);
    // the raw answer agrees with the SDK
    const r = await raw(base(), { path: `/auth/apps/${defaultApp.appId}`, token: s.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, defaultApp);

    await refused(() => s.client.auth.getApplication({ appId: unknownLike(defaultApp.appId) }), 404);
    for (const bad of ['nope', 'ap-', 'us-00000-00000-0000000000000000', `${defaultApp.appId}x`, 'ap-%2e%2e']) {
      refusedRaw(await raw(base(), { path: `/auth/apps/${bad}`, token: s.token }), 404, `GET /auth/apps/${bad}`);
    }
    // no token → 401
    refusedRaw(await raw(base(), { path: '/auth/apps' }), 401, 'GET /auth/apps without a token');
  });

  // -------------------------------------------------------------------------------------
  test('create client-side applications: normalized origin, rp id default / parent domain, localhost over http', async () => {
    const before = await listApps();
    const cases = [
      [{ expectedOrigin: 'https://A.Example.com/' }, 'https://a.example.com', 'a.example.com'],
      [{ expectedOrigin: 'https://wallet.example.org', expectedRpId: 'example.org' }, 'https://wallet.example.org', 'example.org'],
      [{ expectedOrigin: 'https://pay.example.net:8443' }, 'https://pay.example.net:8443', 'pay.example.net'],
      [{ expectedOrigin: 'http://localhost:3000' }, 'http://localhost:3000', 'localhost'],
      [{ expectedOrigin: 'http://shop.localhost', expectedRpId: 'localhost' }, 'http://shop.localhost', 'localhost'],
    ];
    const made = [];
    for (const [extra, origin, rp] of cases) {
      const name = `client ${crypto.randomBytes(3).toString('hex')}`;
      const r = await createApp({ name, kind: 'ClientSideApplication', ...extra });
      assert.equal(r.status, 200, `create ${JSON.stringify(extra)}: ${r.text}`);
      const a = r.json;
      assertAppShape(a, orgId());
      assert.equal(a.kind, 'ClientSideApplication');
      assert.equal(a.name, name);
      assert.equal(a.isActive, true);
      assert.equal(a.expectedOrigin, origin, `origin of ${JSON.stringify(extra)}`);
      assert.equal(a.expectedRpId, rp, `rp id of ${JSON.stringify(extra)}`);
      assert.ok(!('publicKey' in a) || a.publicKey == null);
      assert.deepEqual(await s.client.auth.getApplication({ appId: a.appId }), a, 'get differs from the create answer');
      made.push(a);
    }
    const after = await listApps();
    assert.equal(after[0].appId, defaultApp.appId, 'the default app is no longer first');
    assert.deepEqual(after.slice(0, before.length), before, 'existing applications changed');
    for (const a of made) assert.deepEqual(after.find((x) => x.appId === a.appId), a, `${a.appId} missing from the list`);
    assert.equal(new Set(after.map((a) => a.appId)).size, after.length, 'duplicate app ids');
  });

  // -------------------------------------------------------------------------------------
  test('bad client-side applications → 400, nothing created', async () => {
    const before = await snapshotApps();
    const cs = (extra) => ({ name: 'bad client', kind: 'ClientSideApplication', ...extra });
    const { publicKey } = newKeyPair();
    const bad = [
      ['no expectedOrigin', cs({})],
      ['http on a public host', cs({ expectedOrigin: 'http://a.example.com' })],
      ['http on an IP', cs({ expectedOrigin: 'http://10.0.0.1' })],
      ['http on localhost.example.com', cs({ expectedOrigin: 'http://localhost.example.com' })],
      ['http on a host ending in localhost', cs({ expectedOrigin: 'http://evillocalhost' })],
      ['a path', cs({ expectedOrigin: 'https://a.example.com/app' })],
      ['a query', cs({ expectedOrigin: 'https://a.example.com/?x=1' })],
      ['a fragment', cs({ expectedOrigin: 'https://a.example.com/#x' })],
      ['userinfo', cs({ expectedOrigin: 'https://user:pw@a.example.com' })],
      ['userinfo without password', cs({ expectedOrigin: 'https://user@a.example.com' })],
      ['not a URL', cs({ expectedOrigin: 'a.example.com' })],
      ['a ftp origin', cs({ expectedOrigin: 'ftp://a.example.com' })],
      ['javascript:', cs({ expectedOrigin: 'javascript:alert(1)' })],
      ['empty origin', cs({ expectedOrigin: '' })],
      ['rp id of another domain', cs({ expectedOrigin: 'https://a.example.com', expectedRpId: 'other.com' })],
      ['rp id a mere suffix', cs({ expectedOrigin: 'https://a.example.com', expectedRpId: 'ample.com' })],
      ['rp id a child domain', cs({ expectedOrigin: 'https://a.example.com', expectedRpId: 'x.a.example.com' })],
      ['rp id a suffix of an IP address', cs({ expectedOrigin: 'https://10.0.0.1', expectedRpId: '0.0.1' })],
      ['empty rp id', cs({ expectedOrigin: 'https://a.example.com', expectedRpId: '' })],
      ['publicKey on a client-side app', cs({ expectedOrigin: 'https://a.example.com', publicKey })],
      ['unknown field', cs({ expectedOrigin: 'https://a.example.com', color: 'red' })],
      ['no name', { kind: 'ClientSideApplication', expectedOrigin: 'https://a.example.com' }],
      ['empty name', cs({ name: '', expectedOrigin: 'https://a.example.com' })],
      ['blank name', cs({ name: '   ', expectedOrigin: 'https://a.example.com' })],
      ['overlong name', cs({ name: 'n'.repeat(5000), expectedOrigin: 'https://a.example.com' })],
      ['no kind', { name: 'x', expectedOrigin: 'https://a.example.com' }],
      ['unknown kind', cs({ kind: 'Default', expectedOrigin: 'https://a.example.com' })],
      ['origin not a string', cs({ expectedOrigin: 42 })],
    ];
    const wrong = [];
    for (const [what, body] of bad) {
      const r = await createApp(body);
      if (r.status !== 400 || typeof r.json?.error?.message !== 'string') wrong.push(`${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    }
    assert.deepEqual(wrong, [], 'bad client-side applications not refused with 400');
    assert.equal(await snapshotApps(), before, 'a refused creation changed the application list');
  });

  // -------------------------------------------------------------------------------------
  test('create server-side applications (P-256, secp256k1, Ed25519, RSA-2048); bad ones → 400, nothing created', async () => {
    for (const kind of ['P-256', 'secp256k1', 'Ed25519', 'RSA']) {
      const { app, keys } = await newServerApp(kind, `server ${kind}`);
      assertAppShape(app, orgId());
      assert.equal(app.kind, 'ServerSideApplication');
      assert.equal(app.name, `server ${kind}`);
      assert.equal(app.isActive, true);
      assert.equal(app.publicKey.trim(), keys.publicKey.trim(), 'the public key is echoed');
      assert.deepEqual(await s.client.auth.getApplication({ appId: app.appId }), app);
      // its own key signs a request the server accepts
      const r = await underApp({ app, keys }, { path: '/auth/apps', token: s.token });
      assert.equal(r.status, 200, `a ${kind} app-signed GET /auth/apps: ${r.text}`);
    }

    const before = await snapshotApps();
    const ss = (extra) => ({ name: 'bad server', kind: 'ServerSideApplication', ...extra });
    const good = newKeyPair();
    const bad = [
      ['no publicKey', ss({})],
      ['garbage publicKey', ss({ publicKey: 'not a pem' })],
      ['truncated PEM', ss({ publicKey: good.publicKey.slice(0, 80) })],
      ['a private key', ss({ publicKey: good.privateKey })],
      ['P-384', ss({ publicKey: keyPairOf('P-384').publicKey })],
      ['RSA-1024', ss({ publicKey: keyPairOf('RSA-1024').publicKey })],
      ['expectedOrigin on a server-side app', ss({ publicKey: good.publicKey, expectedOrigin: 'https://a.example.com' })],
      ['expectedRpId on a server-side app', ss({ publicKey: good.publicKey, expectedRpId: 'example.com' })],
      ['unknown field', ss({ publicKey: good.publicKey, secret: 'x' })],
      ['no name', { kind: 'ServerSideApplication', publicKey: good.publicKey }],
    ];
    const wrong = [];
    for (const [what, body] of bad) {
      const r = await createApp(body);
      if (r.status !== 400 || typeof r.json?.error?.message !== 'string') wrong.push(`${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    }
    assert.deepEqual(wrong, [], 'bad server-side applications not refused with 400');
    assert.equal(await snapshotApps(), before, 'a refused creation changed the application list');

    // without a user action: 401, nothing created
    const r = await raw(base(), { method: 'POST', path: '/auth/apps', token: s.token, body: ss({ publicKey: good.publicKey }) });
    assert.ok([401, 403].includes(r.status), `POST /auth/apps without a user action: ${r.status} ${r.text}`);
    assert.equal(await snapshotApps(), before);

  });

  // -------------------------------------------------------------------------------------
  test('Auth:Apps:* permissions: read-only lists but cannot create (403); no permission cannot list (403)', async () => {
    const readApps = await s.client.permissions.createPermission({ body: { name: 'apps-read-only', operations: ['Auth:Apps:Read'] } });
    const reader = await newUser('apps-reader');
    await s.client.permissions.createAssignment({ permissionId: readApps.id, body: { identityId: reader.userId } });
    const nobody = await newUser('apps-nobody');

    const seen = await reader.session.client.auth.listApplications();
    assert.deepEqual(seen.items, await listApps());
    assert.deepEqual(await reader.session.client.auth.getApplication({ appId: defaultApp.appId }), defaultApp);

    const before = await snapshotApps();
    for (const body of [
      { name: 'by reader', kind: 'ClientSideApplication', expectedOrigin: 'https://reader.example.com' },
      { name: 'by reader', kind: 'ServerSideApplication', publicKey: newKeyPair().publicKey },
    ]) {
      let r;
      try {
        r = await createApp(body, reader.session);
      } catch (e) {
        // the user action itself may be refused
        if (!(e instanceof DfnsError)) throw e;
        r = { status: e.httpStatus, json: e.context?.body, text: JSON.stringify(e.context?.body) };
      }
      refusedRaw(r, 403, `POST /auth/apps (${body.kind}) by a reader`);
    }
    assert.equal(await snapshotApps(), before, 'a refused creation changed the list');

    await refused(() => nobody.session.client.auth.listApplications(), 403);
    await refused(() => nobody.session.client.auth.getApplication({ appId: defaultApp.appId }), 403);
  });

  // -------------------------------------------------------------------------------------
  test('client-side application ids need no signature', async () => {
    const r = await raw(base(), { path: '/auth/users', token: s.token, headers: { 'X-DFNS-APPID': defaultApp.appId } });
    assert.equal(r.status, 200, `GET /auth/users under the default app: ${r.text}`);
    const client = (await listApps()).find((a) => a.kind === 'ClientSideApplication' && a.appId !== defaultApp.appId);
    const r2 = await raw(base(), { path: '/auth/apps', token: s.token, headers: { 'X-DFNS-APPID': client.appId } });
    assert.equal(r2.status, 200, `GET /auth/apps under a client-side app: ${r2.text}`);
    // a login under the default app is an ordinary one: the token works without headers
    const login = await adminLogin(() => ({ 'X-DFNS-APPID': defaultApp.appId }));
    assert.equal(login.status, 200, `login under the default app: ${login.text}`);
    const r3 = await raw(base(), { path: '/auth/users', token: login.json.token });
    assert.equal(r3.status, 200, `its token without headers: ${r3.text}`);
  });

  // -------------------------------------------------------------------------------------
  test('server-side application signatures: every wrong one → 401, nothing changed', async () => {
    await serverApps();
    const a = srv;
    const id = a.app.appId;
    const path = '/auth/users?limit=5';

    // a valid signature passes (an ordinary token, under a server-side app)
    const ok = await underApp(a, { path, token: s.token });
    assert.equal(ok.status, 200, `signed GET ${path}: ${ok.text}`);
    // dates inside the window pass
    for (const skew of [-120_000, 60_000]) {
      const h = appHeaders(id, a.keys.privateKey, 'GET', path, '', { date: new Date(Date.now() + skew) });
      const r = await raw(base(), { path, token: s.token, headers: h });
      assert.equal(r.status, 200, `a nonce ${skew / 1000}s from now: ${r.text}`);
    }

    const other = newKeyPair();
    const cases = [
      ['only the app id', { 'X-DFNS-APPID': id }],
      ['no signature', (() => { const h = appHeaders(id, a.keys.privateKey, 'GET', path); delete h['X-DFNS-APISIGNATURE']; return h; })()],
      ['no nonce', (() => { const h = appHeaders(id, a.keys.privateKey, 'GET', path); delete h['X-DFNS-NONCE']; return h; })()],
      ['another key', appHeaders(id, other.privateKey, 'GET', path)],
      ["another app's key", appHeaders(id, srv2.keys.privateKey, 'GET', path)],
      ['another path', appHeaders(id, a.keys.privateKey, 'GET', '/auth/apps?limit=5')],
      ['another query', appHeaders(id, a.keys.privateKey, 'GET', '/auth/users?limit=6')],
      ['no query signed', appHeaders(id, a.keys.privateKey, 'GET', '/auth/users')],
      ['another method', appHeaders(id, a.keys.privateKey, 'POST', path)],
      ['a body signed, none sent', appHeaders(id, a.keys.privateKey, 'GET', path, '{}')],
      ['10 minutes ago', appHeaders(id, a.keys.privateKey, 'GET', path, '', { date: new Date(Date.now() - 600_000) })],
      ['10 minutes ahead', appHeaders(id, a.keys.privateKey, 'GET', path, '', { date: new Date(Date.now() + 600_000) })],
      ['a nonce not base64url', appHeaders(id, a.keys.privateKey, 'GET', path, '', { nonce: '!!!not-base64!!!' })],
      ['a nonce not JSON', appHeaders(id, a.keys.privateKey, 'GET', path, '', { nonce: Buffer.from('hello world, not json').toString('base64url') })],
      ['a nonce without date', appHeaders(id, a.keys.privateKey, 'GET', path, '', { nonce: Buffer.from(JSON.stringify({ uuid: crypto.randomUUID() })).toString('base64url') })],
      ['a nonce with a bad date', appHeaders(id, a.keys.privateKey, 'GET', path, '', { nonce: Buffer.from(JSON.stringify({ uuid: crypto.randomUUID(), date: 'yesterday' })).toString('base64url') })],
      ['an overlong nonce', appHeaders(id, a.keys.privateKey, 'GET', path, '', { nonce: nonceOf({ uuid: 'u'.repeat(600) }) })],
      ['a short uuid', appHeaders(id, a.keys.privateKey, 'GET', path, '', { nonce: nonceOf({ uuid: 'abc' }) })],
      ['a signature not base64url', { ...appHeaders(id, a.keys.privateKey, 'GET', path), 'X-DFNS-APISIGNATURE': '***' }],
      ['an empty signature', { ...appHeaders(id, a.keys.privateKey, 'GET', path), 'X-DFNS-APISIGNATURE': '' }],
      ['an unknown app id', appHeaders(unknownLike(id), a.keys.privateKey, 'GET', path)],
      ['a malformed app id', appHeaders('not-an-app', a.keys.privateKey, 'GET', path)],
      ['an empty app id', appHeaders('', a.keys.privateKey, 'GET', path)],
      ["the other app's id with this app's signature", appHeaders(srv2.app.appId, a.keys.privateKey, 'GET', path)],
    ];
    const wrong = [];
    for (const [what, headers] of cases) {
      const r = await raw(base(), { path, token: s.token, headers });
      if (r.status !== 401 || typeof r.json?.error?.message !== 'string') wrong.push(`${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    }
    assert.deepEqual(wrong, [], 'wrong application signatures not refused with 401');

    // replay: the very same headers twice → the second is refused
    const h = appHeaders(id, a.keys.privateKey, 'GET', path);
    const first = await raw(base(), { path, token: s.token, headers: h });
    assert.equal(first.status, 200, first.text);
    refusedRaw(await raw(base(), { path, token: s.token, headers: h }), 401, 'a replayed nonce');
    // concurrent replay: the same signed request 8 times at once → exactly one passes
    const hc = appHeaders(id, a.keys.privateKey, 'GET', path);
    const burst = await Promise.all(Array.from({ length: 8 }, () => raw(base(), { path, token: s.token, headers: hc })));
    assert.deepEqual(
      burst.map((r) => r.status).sort(),
      [200, 401, 401, 401, 401, 401, 401, 401],
      `8 concurrent copies of one signed request: ${burst.map((r) => r.status)}`,
    );
    // the used nonce, re-signed for another request, is refused too
    const again = appHeaders(id, a.keys.privateKey, 'GET', '/auth/apps', '', { nonce: h['X-DFNS-NONCE'] });
    refusedRaw(await raw(base(), { path: '/auth/apps', token: s.token, headers: again }), 401, 'a used nonce re-signed');

    // a write with a wrong app signature changes nothing and does not spend its user action
    const before = await snapshotUsers(s.client);
    const body = JSON.stringify({ email: uniqueEmail('app-sig'), kind: 'CustomerEmployee' });
    const ua = await userAction(base(), s.token, s.signer, { method: 'POST', path: '/auth/users', body });
    const writes = [
      ['another body', appHeaders(id, a.keys.privateKey, 'POST', '/auth/users', body.replace('CustomerEmployee', 'EndUser'))],
      ['no body', appHeaders(id, a.keys.privateKey, 'POST', '/auth/users', '')],
      ['another key', appHeaders(id, other.privateKey, 'POST', '/auth/users', body)],
      ['no signature', { 'X-DFNS-APPID': id }],
      ['stale', appHeaders(id, a.keys.privateKey, 'POST', '/auth/users', body, { date: new Date(Date.now() - 600_000) })],
    ];
    for (const [what, headers] of writes) {
      const r = await raw(base(), { method: 'POST', path: '/auth/users', token: s.token, userAction: ua, body, headers });
      refusedRaw(r, 401, `POST /auth/users with ${what}`);
    }
    assert.equal(await snapshotUsers(s.client), before, 'a refused app-signed write changed the users');
    // the same user action, correctly app-signed, still goes through
    const good = await underApp(a, { method: 'POST', path: '/auth/users', token: s.token, userAction: ua, body });
    assert.equal(good.status, 200, `the correctly signed write: ${good.text}`);
    assert.equal(good.json.username, JSON.parse(body).email);
  });

  // -------------------------------------------------------------------------------------
  test('a token logged in under a server-side application is bound to it', async () => {
    await serverApps();
    const a = srv;
    const id = a.app.appId;

    // login with a bad app signature → 401, no token
    const badLogin = await adminLogin((body) => appHeaders(id, a.keys.privateKey, 'POST', '/auth/login', `${body} `));
    refusedRaw(badLogin, 401, 'login with a wrong app signature');
    assert.equal(badLogin.json?.token, undefined);
    refusedRaw(
      await raw(base(), { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: s.k.admin.username }, headers: { 'X-DFNS-APPID': id } }),
      401,
      'login/init under a server-side app without its signature',
    );
    const unsigned = await adminLogin(() => ({ 'X-DFNS-APPID': id }));
    refusedRaw(unsigned, 401, 'login under a server-side app without its signature');

    // login/init signed too is fine; login signed by the app → a bound token
    const init = await underApp(a, { method: 'POST', path: '/auth/login/init', body: { orgId: orgId(), username: s.k.admin.username } });
    assert.equal(init.status, 200, `signed login/init: ${init.text}`);
    const login = await adminLogin((body) => appHeaders(id, a.keys.privateKey, 'POST', '/auth/login', body));
    assert.equal(login.status, 200, `login under the server-side app: ${login.text}`);
    const bound = login.json.token;
    assert.equal(typeof bound, 'string');

    // without the app's signature: 401 everywhere
    const wrong = [];
    const expect401 = async (what, req) => {
      const r = await raw(base(), req);
      if (r.status !== 401 || typeof r.json?.error?.message !== 'string') wrong.push(`${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    };
    const initBody = JSON.stringify({ userActionPayload: '{}', userActionHttpMethod: 'POST', userActionHttpPath: '/auth/users', userActionServerKind: 'Api' });
    await expect401('GET /auth/users, no headers', { path: '/auth/users', token: bound });
    await expect401('GET /auth/apps, no headers', { path: '/auth/apps', token: bound });
    await expect401('GET /auth/users, only the app id', { path: '/auth/users', token: bound, headers: { 'X-DFNS-APPID': id } });
    await expect401('GET /auth/users, under the default app', { path: '/auth/users', token: bound, headers: { 'X-DFNS-APPID': defaultApp.appId } });
    await expect401('GET /auth/users, signed by another server-side app', {
      path: '/auth/users',
      token: bound,
      headers: appHeaders(srv2.app.appId, srv2.keys.privateKey, 'GET', '/auth/users'),
    });
    await expect401('GET /auth/users, signed for another path', {
      path: '/auth/users',
      token: bound,
      headers: appHeaders(id, a.keys.privateKey, 'GET', '/auth/apps'),
    });
    await expect401('POST /auth/action/init, no headers', { method: 'POST', path: '/auth/action/init', token: bound, body: initBody });
    await expect401('PUT /auth/logout, no headers', { method: 'PUT', path: '/auth/logout', token: bound });
    assert.deepEqual(wrong, [], 'a bound token was accepted without its app signature');

    // with its app's signature: 200
    const users = await underApp(a, { path: '/auth/users', token: bound });
    assert.equal(users.status, 200, `bound token, signed GET /auth/users: ${users.text}`);
    assert.ok(users.json.items.some((u) => u.userId === s.k.admin.userId));
    const apps = await underApp(a, { path: '/auth/apps', token: bound });
    assert.equal(apps.status, 200, apps.text);
    assert.deepEqual(apps.json.items, await listApps());

    // a write: action init, action and the request, each signed by the app
    const before = await snapshotUsers(s.client);
    const email = uniqueEmail('bound-write');
    const body = JSON.stringify({ email, kind: 'CustomerEmployee' });
    const ch = await underApp(a, {
      method: 'POST',
      path: '/auth/action/init',
      token: bound,
      body: { userActionPayload: body, userActionHttpMethod: 'POST', userActionHttpPath: '/auth/users', userActionServerKind: 'Api' },
    });
    assert.equal(ch.status, 200, `signed action init: ${ch.text}`);
    const firstFactor = await s.signer.sign(ch.json);
    const signBody = { challengeIdentifier: ch.json.challengeIdentifier, firstFactor };
    // the action exchange without the app signature is refused (and does not spend the challenge)
    refusedRaw(await raw(base(), { method: 'POST', path: '/auth/action', token: bound, body: signBody }), 401, 'POST /auth/action unsigned');
    const act = await underApp(a, { method: 'POST', path: '/auth/action', token: bound, body: signBody });
    assert.equal(act.status, 200, `signed action: ${act.text}`);
    const ua = act.json.userAction;
    assert.equal(typeof ua, 'string');
    // the final request unsigned → 401, nothing created
    refusedRaw(await raw(base(), { method: 'POST', path: '/auth/users', token: bound, userAction: ua, body }), 401, 'POST /auth/users unsigned');
    refusedRaw(
      await raw(base(), { method: 'POST', path: '/auth/users', token: bound, userAction: ua, body, headers: appHeaders(srv2.app.appId, srv2.keys.privateKey, 'POST', '/auth/users', body) }),
      401,
      'POST /auth/users signed by another app',
    );
    assert.equal(await snapshotUsers(s.client), before, 'a refused bound write changed the users');
    const made = await underApp(a, { method: 'POST', path: '/auth/users', token: bound, userAction: ua, body });
    assert.equal(made.status, 200, `signed POST /auth/users: ${made.text}`);
    assert.equal(made.json.username, email);
    assert.ok((await listAllUsers(s.client)).some((u) => u.username === email));

    // an ordinary token keeps working without any header
    const plain = await adminLogin();
    assert.equal(plain.status, 200, plain.text);
    const r = await raw(base(), { path: '/auth/users', token: plain.json.token });
    assert.equal(r.status, 200, r.text);
    await s.client.auth.listUsers();

    // a login under another server-side app binds to that one
    const login2 = await adminLogin((b) => appHeaders(srv2.app.appId, srv2.keys.privateKey, 'POST', '/auth/login', b));
    assert.equal(login2.status, 200, login2.text);
    refusedRaw(await underApp(a, { path: '/auth/users', token: login2.json.token }), 401, "app 2's token signed by app 1");
    const ok2 = await underApp(srv2, { path: '/auth/users', token: login2.json.token });
    assert.equal(ok2.status, 200, ok2.text);

    // the bound token can log itself out only with its signature
    const out = await underApp(a, { method: 'PUT', path: '/auth/logout', token: bound });
    assert.equal(out.status, 200, `signed logout: ${out.text}`);
    refusedRaw(await underApp(a, { path: '/auth/users', token: bound }), 401, 'the logged-out bound token');
  });
});
