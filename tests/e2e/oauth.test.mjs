// End-to-end: OAuth upstreams (API.md §3, issue #4). A real authorization server (oidc-provider:
// dynamic registration, PKCE, resource indicators, short-lived JWT access tokens, refresh-token
// rotation, revocation) and a real MCP server that verifies its tokens; the gateway discovers
// the server, sends the user there, finishes the callback, refreshes, and revokes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startGateway, sleep, whoamiVia } from './harness.mjs';
import { startAuthServer } from './peers/oauth_server.mjs';
import { startProtectedMcp } from './peers/oauth_mcp_server.mjs';

const TTL = 4; // access token lifetime, seconds
let as;
let mcp;
let gw;
const keys = {};

async function rawCall(key, id = 1) {
  const r = await fetch(gw.base + '/mcp/tickets', {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(r.headers.get('content-type')?.includes('event-stream') ? text.match(/data: (.*)/)[1] : text);
  } catch { /* not JSON */ }
  gw.trackLink(json?.error?.data?.connect_url);
  return { status: r.status, json, headers: r.headers };
}

/**
 * Opens a connect link and presses "Continue", like a browser: returns the authorization URL and
 * the cookie that binds the callback to this browser.
 */
async function startConnect(url) {
  const page = await fetch(url);
  const html = await page.text();
  assert.equal(page.status, 200, html);
  assert.match(html, /Continue to sign in/);
  // Browsers apply form-action to the redirect that answers the form: it must allow the AS.
  assert.match(page.headers.get('content-security-policy'), /form-action 'self' https: http:/);
  const csrf = html.match(/name="csrf" value="([^"]+)"/)[1];
  const cookie = page.headers.get('set-cookie').split(';')[0];
  const go = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ csrf }).toString(),
    redirect: 'manual',
  });
  assert.equal(go.status, 303, await go.text());
  const binding = go.headers.get('set-cookie').split(';')[0];
  assert.match(go.headers.get('set-cookie'), /HttpOnly; SameSite=Lax/);
  gw.track(new URL(go.headers.get('location')).searchParams.get('state'), binding.split('=')[1]);
  return { authorize: go.headers.get('location'), binding };
}

/** Comes back to the gateway's callback in the browser that started the flow. */
const back = (callback, binding) => fetch(callback, { redirect: 'manual', headers: { cookie: binding } });

/** The whole connect flow for a subject, from the connect_url its first request got. */
async function connect(subject, { deny = false } = {}) {
  const first = await rawCall(keys[subject]);
  assert.equal(first.status, 403);
  const { authorize, binding } = await startConnect(first.json.error.data.connect_url);
  const callback = await as.completeLogin(authorize, { user: subject, deny });
  const done = await back(callback, binding);
  return { status: done.status, text: await done.text(), callback, authorize, binding };
}

function killGrants(subject) {
  const tokens = as.stores.get('RefreshToken');
  for (const [id, e] of tokens) if (e.payload.accountId === subject) tokens.delete(id);
}

before(async () => {
  as = await startAuthServer({ accessTokenTtl: TTL });
  mcp = await startProtectedMcp({ issuer: as.issuer, jwksUri: as.jwksUri });
  as.setResource(mcp.url);
  gw = await startGateway();
  const put = await gw.admin('PUT', '/upstreams/tickets', { url: mcp.url, oauth: {} });
  assert.equal(put.status, 200, put.text);
  for (const s of ['alice', 'bob', 'carol', 'dave', 'erin']) {
    keys[s] = (await gw.admin('POST', '/keys', { subject: s, upstreams: ['tickets'] })).json.key;
  }
});

after(async () => {
  // Codes, tokens and client secrets the gateway held must not be in its log either.
  gw?.track(as?.issuedSecrets() ?? [], (mcp?.requests ?? []).map((r) => r.headers.authorization?.replace(/^Bearer /, '')));
  mcp?.close();
  await as?.stop();
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

test('connect: discovery, registration, PKCE and resource; two subjects with their own tokens', async () => {
  for (const subject of ['alice', 'bob']) {
    const { status, text, authorize } = await connect(subject);
    assert.equal(status, 200, text);
    assert.match(text, /Your account for tickets is connected/);
    const q = new URL(authorize).searchParams;
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.equal(q.get('resource'), mcp.url);
    assert.equal(q.get('scope'), 'tickets:read');
    assert.match(q.get('state'), /^mabs_[0-9a-f]{64}_/);
    const seen = await whoamiVia(gw.base + '/mcp/tickets', keys[subject]);
    assert.equal(seen.sub, subject);
    assert.equal((await fetch(new URL(authorize).searchParams.get('redirect_uri'))).status, 400, 'a bare callback');
    assert.equal(seen.aud, mcp.url);
  }
  assert.equal(as.counts().registrations, 1, 'one dynamic registration, reused');
  const conns = await gw.admin('GET', '/connections?subject=alice');
  assert.equal(conns.json.items[0].status, 'connected');
  assert.deepEqual(conns.json.items[0].scopes, ['tickets:read']);
  assert.match(conns.json.items[0].expires_at, /Z$/);
  // The access token is the client's business only through the gateway.
  assert.ok(!JSON.stringify(mcp.requests).includes('mab_'));
});

test('tokens refresh transparently across many lifetimes', async () => {
  const before = as.counts().refresh_grants;
  for (let i = 0; i < 3; i++) {
    await sleep(TTL * 1000 + 200);
    assert.equal((await rawCall(keys.alice)).status, 200);
  }
  assert.ok(as.counts().refresh_grants - before >= 3);
  assert.equal(as.counts().refresh_token_reuse, 0);
});

test('refresh storm: 30 concurrent calls after expiry make exactly one refresh', async () => {
  await sleep(TTL * 1000 + 200);
  const before = as.counts();
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => rawCall(keys.bob, i + 1)));
  assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
  const after = as.counts();
  assert.equal(after.refresh_grants - before.refresh_grants, 1);
  assert.equal(after.refresh_token_presented_twice, 0);
  assert.equal(after.refresh_token_reuse, 0);
});

test('authorization server down: 503 with Retry-After, nothing lost, works again after', async () => {
  await sleep(TTL * 1000 + 200);
  as.setDown(true);
  const down = await rawCall(keys.alice);
  assert.equal(down.status, 503);
  assert.ok(down.headers.get('retry-after'));
  assert.equal(down.json.error.data.reason, 'authorization_server_unavailable');
  assert.equal((await gw.admin('GET', '/connections?subject=alice')).json.items[0].status, 'connected');
  as.setDown(false);
  // The gateway waits a few seconds before trying a failed server again (no request queue
  // behind a dead server); then it works, with the same connection.
  let status = 0;
  for (let i = 0; i < 40 && status !== 200; i++) {
    status = (await rawCall(keys.alice)).status;
    if (status !== 200) await sleep(250);
  }
  assert.equal(status, 200);
});

test('authorization server slow during refresh: a slow answer is waited for once; none at all is a 503, nothing lost', async () => {
  await sleep(TTL * 1000 + 200);
  // Slow but inside the deadline: every concurrent request waits for the one refresh.
  const grants = as.counts().refresh_grants;
  as.setDown(true, { mode: 'slow', ms: 1500 });
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => rawCall(keys.alice, i + 1)));
  as.setDown(false);
  assert.deepEqual(answers.map((a) => a.status), Array(10).fill(200));
  assert.equal(as.counts().refresh_grants - grants, 1);
  assert.equal(as.counts().refresh_token_presented_twice, 0);
  // No answer at all: the gateway gives up at its deadline for OAuth calls (10 s) with a 503.
  await sleep(TTL * 1000 + 200);
  as.setDown(true, { mode: 'hang' });
  const started = Date.now();
  const hung = await rawCall(keys.alice);
  const waited = Date.now() - started;
  as.setDown(false);
  assert.equal(hung.status, 503);
  assert.ok(hung.headers.get('retry-after'));
  assert.equal(hung.json.error.data.reason, 'authorization_server_unavailable');
  assert.ok(waited < 30_000, `answered after ${waited} ms`);
  assert.equal((await gw.admin('GET', '/connections?subject=alice')).json.items[0].status, 'connected');
  let status = 0;
  for (let i = 0; i < 40 && status !== 200; i++) {
    status = (await rawCall(keys.alice)).status;
    if (status !== 200) await sleep(250);
  }
  assert.equal(status, 200, 'the same connection works once the server answers again');
});

test('invalid_grant: the user is asked to connect again, with a link', async () => {
  killGrants('bob');
  await sleep(TTL * 1000 + 200);
  const r = await rawCall(keys.bob);
  assert.equal(r.status, 403);
  assert.equal(r.json.error.data.reason, 'connection_required');
  assert.match(r.json.error.data.connect_url, /\/connect\/mabl_/);
  assert.equal((await gw.admin('GET', '/connections?subject=bob')).json.items[0].status, 'connection_required');
  // And connecting again works.
  const again = await connect('bob');
  assert.equal(again.status, 200, again.text);
  assert.equal((await whoamiVia(gw.base + '/mcp/tickets', keys.bob)).sub, 'bob');
});

test('callbacks: replayed, forged and wrong-issuer responses are refused; denial changes nothing', async () => {
  // Replay of a callback that already completed.
  const first = await connect('carol');
  assert.equal(first.status, 200);
  const replay = await back(first.callback, first.binding);
  assert.equal(replay.status, 400);
  await replay.text();
  // A state this gateway never issued.
  const forged = new URL(first.callback);
  forged.searchParams.set('state', 'mabs_' + randomBytes(32).toString('hex') + '_' + randomBytes(32).toString('base64url'));
  const f = await back(forged, first.binding);
  assert.equal(f.status, 400);
  await f.text();
  // The right state, but an issuer that is not the server's (RFC 9207 mix-up).
  const links = await gw.admin('POST', '/links', { subject: 'dave', upstream: 'tickets' });
  const started = await startConnect(links.json.url);
  const callback = new URL(await as.completeLogin(started.authorize, { user: 'dave' }));
  callback.searchParams.set('iss', 'http://127.0.0.1:1');
  const mixed = await back(callback, started.binding);
  assert.equal(mixed.status, 400);
  await mixed.text();
  assert.deepEqual((await gw.admin('GET', '/connections?subject=dave')).json.items, []);
  // Login CSRF: someone else's browser comes back with a valid callback for dave's flow (an
  // attacker started it and lured the victim to the authorization URL): refused, nothing stored.
  const lured = await startConnect(links.json.url);
  const victimCallback = await as.completeLogin(lured.authorize, { user: 'victim' });
  const victim = await fetch(victimCallback, { redirect: 'manual' });
  assert.equal(victim.status, 400);
  assert.match(await victim.text(), /started in another browser/);
  assert.deepEqual((await gw.admin('GET', '/connections?subject=dave')).json.items, []);
  // Denied consent: a plain page, not a 5xx, and no connection.
  const denied = await connect('dave', { deny: true });
  assert.equal(denied.status, 403);
  assert.match(denied.text, /did not allow access/);
  assert.deepEqual((await gw.admin('GET', '/connections?subject=dave')).json.items, []);
  // A used link stays used.
  assert.equal((await fetch(links.json.url)).status, 200, 'the link survives a failed callback');
});

test('disconnect revokes at the authorization server, then forgets', async () => {
  const revocations = as.counts().revocations;
  assert.equal((await gw.admin('DELETE', '/subjects/carol/connections/tickets')).status, 204);
  assert.equal(as.counts().revocations, revocations + 2, 'refresh token, then access token');
  assert.ok(as.revoked().some((r) => r.token_type_hint === 'refresh_token' && r.status === 200));
  const r = await rawCall(keys.carol);
  assert.equal(r.status, 403);
  assert.equal(r.json.error.data.reason, 'connection_required');
});

test('an upstream 401 to a live token: one refresh, one retry; a second 401 asks to reconnect', async () => {
  const connected = await connect('erin');
  assert.equal(connected.status, 200, connected.text);
  // The resource server stops accepting tokens issued until now; the gateway's is still "valid".
  mcp.refuseTokensIssuedBefore(Math.floor(Date.now() / 1000) + 1);
  await sleep(1100);
  const before = as.counts().refresh_grants;
  const retried = await rawCall(keys.erin);
  assert.equal(retried.status, 200, JSON.stringify(retried.json));
  assert.equal(as.counts().refresh_grants, before + 1);
  // Now it refuses everything: after the one refresh and retry, the user must reconnect.
  mcp.refuseTokensIssuedBefore(Math.floor(Date.now() / 1000) + 3600);
  const refused = await rawCall(keys.erin);
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error.data.reason, 'connection_required');
  assert.equal(as.counts().refresh_grants, before + 2);
  assert.equal((await gw.admin('GET', '/connections?subject=erin')).json.items[0].status, 'connection_required');
  mcp.refuseTokensIssuedBefore(0);
});

test('an operator-registered confidential client, with client_secret_basic and client_secret_post', async () => {
  for (const method of ['client_secret_basic', 'client_secret_post']) {
    const reg = await fetch(`${as.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [gw.base + '/oauth/callback'], token_endpoint_auth_method: method, grant_types: ['authorization_code', 'refresh_token'] }),
    });
    assert.equal(reg.status, 201);
    const client = await reg.json();
    const id = `conf-${method.replaceAll('_', '-')}`;
    const put = await gw.admin('PUT', `/upstreams/${id}`, {
      url: mcp.url,
      oauth: { client_id: client.client_id, client_secret: client.client_secret, token_endpoint_auth_method: method, authorization_server: as.issuer, scopes: ['tickets:read'] },
    });
    assert.equal(put.status, 200, put.text);
    assert.ok(!put.text.includes(client.client_secret));
    const key = (await gw.admin('POST', '/keys', { subject: 'fay', upstreams: [id] })).json.key;
    const link = await gw.admin('POST', '/links', { subject: 'fay', upstream: id });
    const started = await startConnect(link.json.url);
    const callback = await as.completeLogin(started.authorize, { user: 'fay' });
    assert.equal(new URL(callback).searchParams.get('state')?.startsWith('mabs_'), true);
    const done = await back(callback, started.binding);
    assert.equal(done.status, 200, await done.text());
    const r = await fetch(`${gw.base}/mcp/${id}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    });
    assert.equal(r.status, 200);
    assert.match(await r.text(), new RegExp(client.client_id));
  }
});

test('client metadata document', async () => {
  const r = await fetch(gw.base + '/oauth/client-metadata.json');
  const doc = await r.json();
  assert.equal(doc.client_id, gw.base + '/oauth/client-metadata.json');
  assert.deepEqual(doc.redirect_uris, [gw.base + '/oauth/callback']);
});
