// End-to-end: OAuth upstreams. The connect flow and callback of API.md §3 (discovery,
// registration, PKCE, resource, state bound to the browser; replayed, forged, mixed-up and denied
// callbacks; disconnect revokes), the tokens behind `{{oauth.access_token}}` (§2: refreshed
// transparently, once for many concurrent requests, once more on an upstream 401), and the
// error-table row for a failing authorization server (§1: 503 with Retry-After, nothing lost).
// A real authorization server (oidc-provider: dynamic registration, PKCE, resource indicators,
// short-lived JWT access tokens, refresh-token rotation, revocation) and a real MCP server that
// verifies its tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startGateway, sleep, whoamiVia, callTool, rawMcp, mcpAnswer, newKey, putUpstream, newLink,
  startOAuthConnect, finishOAuthConnect, oauthCallback, withCookies,
} from './harness.mjs';
import { startOAuthPeers, stopOAuthPeers, oauthSecrets } from './peers/oauth_mcp_server.mjs';

const TTL = 4; // access token lifetime, seconds
let as;
let mcp;
let gw;
const keys = {};

/** `tools/call whoami` on the OAuth upstream, raw. */
const rawCall = (key, id = 1) => mcpAnswer(gw, '/mcp/tickets', key, callTool(id, 'whoami'));

/** Calls until the answer is 200 again (up to 40 tries, 250 ms apart); returns the last status. */
async function untilOk(key) {
  let status = 0;
  for (let i = 0; i < 40 && status !== 200; i++) {
    status = (await rawCall(key)).status;
    if (status !== 200) await sleep(250);
  }
  return status;
}

/** The whole connect flow for a subject, from the connect_url its first request got. */
async function connect(subject, { deny = false } = {}) {
  const first = await rawCall(keys[subject]);
  assert.equal(first.status, 403);
  const started = await startOAuthConnect(gw, first.json.error.data.connect_url);
  const done = await finishOAuthConnect(gw, as, started, subject, { deny });
  return { ...done, ...started };
}

function killGrants(subject) {
  const tokens = as.stores.get('RefreshToken');
  for (const [id, e] of tokens) if (e.payload.accountId === subject) tokens.delete(id);
}

before(async () => {
  ({ as, mcp } = await startOAuthPeers({ accessTokenTtl: TTL }));
  gw = await startGateway();
  await putUpstream(gw, 'tickets', { url: mcp.url, oauth: {} });
  for (const s of ['alice', 'bob', 'carol', 'dave', 'erin', 'gil', 'hob', 'ida']) keys[s] = (await newKey(gw, s, ['tickets'])).key;
});

after(async () => {
  // Codes, tokens and client secrets the gateway held must not be in its log either.
  gw?.track(oauthSecrets(as, mcp));
  await stopOAuthPeers(as, mcp);
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
  assert.equal(await untilOk(keys.alice), 200);
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
  assert.equal(await untilOk(keys.alice), 200, 'the same connection works once the server answers again');
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
  const replay = await oauthCallback(first.callback, first.binding);
  assert.equal(replay.status, 400);
  await replay.text();
  // A state this gateway never issued.
  const forged = new URL(first.callback);
  forged.searchParams.set('state', 'mabs_' + randomBytes(32).toString('hex') + '_' + randomBytes(32).toString('base64url'));
  const f = await oauthCallback(forged, first.binding);
  assert.equal(f.status, 400);
  await f.text();
  // The right state, but an issuer that is not the server's (RFC 9207 mix-up).
  const link = (await newLink(gw, 'dave', 'tickets')).url;
  const started = await startOAuthConnect(gw, link);
  const callback = new URL(await as.completeLogin(started.authorize, { user: 'dave' }));
  callback.searchParams.set('iss', 'http://127.0.0.1:1');
  const mixed = await oauthCallback(callback, started.binding);
  assert.equal(mixed.status, 400);
  assert.match(await mixed.text(), /Open your connect link again/);
  assert.deepEqual(await nothingStored('dave'), [['tickets', 'connection_required', null]]);
  // Login CSRF: someone else's browser comes back with a valid callback for dave's flow (an
  // attacker started it and lured the victim to the authorization URL): refused, nothing stored.
  const lured = await startOAuthConnect(gw, link, started.cookie);
  const victimCallback = await as.completeLogin(lured.authorize, { user: 'victim' });
  const victim = await fetch(victimCallback, { redirect: 'manual' });
  assert.equal(victim.status, 400);
  assert.match(await victim.text(), /started in another browser/);
  assert.deepEqual(await nothingStored('dave'), [['tickets', 'connection_required', null]]);
  // Denied consent: a plain page, not a 5xx, and no connection.
  const denied = await connect('dave', { deny: true });
  assert.equal(denied.status, 403);
  assert.match(denied.text, /did not allow access/);
  assert.deepEqual(await nothingStored('dave'), [['tickets', 'connection_required', null]]);
  // A used link stays used.
  assert.equal((await fetch(link, { headers: { cookie: started.cookie } })).status, 200, 'the link survives a failed callback');
});

/** The connections list of a subject with nothing stored: `connection_required`, no `updated_at`. */
const nothingStored = async (subject) =>
  (await gw.admin('GET', `/connections?subject=${subject}`)).json.items.map((c) => [c.upstream, c.status, c.updated_at]);

test('a failed callback page says what to do next', async () => {
  for (const query of ['', '?state=nonsense&code=x', `?state=mabs_${'0'.repeat(64)}_${'A'.repeat(43)}&code=x`]) {
    const r = await fetch(`${gw.base}/oauth/callback${query}`, { redirect: 'manual' });
    assert.equal(r.status, 400, query);
    const html = await r.text();
    assert.match(html, /Sign-in not accepted/);
    assert.match(html, /Open your connect link again/, `${query}: the page names the next step`);
  }
  // A response without a code, for a real pending sign-in.
  const started = await startOAuthConnect(gw, (await newLink(gw, 'ida', 'tickets')).url);
  const callback = new URL(await as.completeLogin(started.authorize, { user: 'ida' }));
  callback.searchParams.delete('code');
  const noCode = await oauthCallback(callback, started.binding);
  assert.equal(noCode.status, 400);
  assert.match(await noCode.text(), /carries no code\. Open your connect link again/);
});

test('a callback from another browser leaves the sign-in for the browser that started it (a leaked state voids nothing)', async () => {
  const started = await startOAuthConnect(gw, (await newLink(gw, 'gil', 'tickets')).url);
  const callback = await as.completeLogin(started.authorize, { user: 'gil' });
  gw.track(new URL(callback).searchParams.get('code'));
  // Someone who learned the callback URL (state and code) comes back first, without the cookie,
  // or with a cookie of that name but another value.
  const name = started.binding.split('=')[0];
  for (const cookie of [undefined, `${name}=${'C'.repeat(43)}`]) {
    const other = await fetch(callback, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    assert.equal(other.status, 400);
    assert.match(await other.text(), /started in another browser/);
  }
  // The user's own browser still finishes.
  const done = await oauthCallback(callback, started.cookie);
  assert.equal(done.status, 200, await done.text());
  assert.equal((await whoamiVia(gw.base + '/mcp/tickets', keys.gil)).sub, 'gil');
});

test('two connects in one browser keep their own callback cookies and both complete', async () => {
  // One browser starts a connect for hob, then another for ida, before finishing either.
  const first = await startOAuthConnect(gw, (await newLink(gw, 'hob', 'tickets')).url);
  const second = await startOAuthConnect(gw, (await newLink(gw, 'ida', 'tickets')).url, first.cookie);
  assert.notEqual(first.binding.split('=')[0], second.binding.split('=')[0], 'one cookie per pending sign-in');
  let jar = second.cookie;
  assert.ok(jar.includes(first.binding) && jar.includes(second.binding), jar);
  for (const [started, subject] of [[first, 'hob'], [second, 'ida']]) {
    const callback = await as.completeLogin(started.authorize, { user: subject });
    gw.track(new URL(callback).searchParams.get('code'));
    const done = await fetch(callback, { redirect: 'manual', headers: { cookie: jar } });
    assert.equal(done.status, 200, await done.text());
    jar = withCookies(jar, done.headers);
    assert.ok(!jar.includes(started.binding), 'the used binding cookie is cleared');
    assert.equal((await whoamiVia(gw.base + '/mcp/tickets', keys[subject])).sub, subject);
  }
});

test('disconnect revokes at the authorization server, then forgets', async () => {
  const revocations = as.counts().revocations;
  const disconnected = await gw.admin('DELETE', '/subjects/carol/connections/tickets');
  assert.equal(disconnected.status, 200, disconnected.text);
  assert.deepEqual(disconnected.json, { revoked: true });
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
    const put = await putUpstream(gw, id, {
      url: mcp.url,
      oauth: { client_id: client.client_id, client_secret: client.client_secret, token_endpoint_auth_method: method, authorization_server: as.issuer, scopes: ['tickets:read'] },
    });
    assert.ok(!put.text.includes(client.client_secret));
    const key = (await newKey(gw, 'fay', [id])).key;
    const link = await newLink(gw, 'fay', id);
    const started = await startOAuthConnect(gw, link.url);
    const callback = await as.completeLogin(started.authorize, { user: 'fay' });
    assert.equal(new URL(callback).searchParams.get('state')?.startsWith('mabs_'), true);
    const done = await oauthCallback(callback, started.binding);
    assert.equal(done.status, 200, await done.text());
    const r = await rawMcp(gw, `/mcp/${id}`, key, callTool(1, 'whoami'));
    assert.equal(r.status, 200);
    assert.match(await r.text(), new RegExp(client.client_id));
  }
});

test('re-PUT of an operator client without client_secret keeps the secret: the OAuth flow still works', async () => {
  const reg = await fetch(`${as.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [gw.base + '/oauth/callback'], token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'] }),
  });
  const client = await reg.json();
  gw.track(client.client_secret);
  const oauth = { client_id: client.client_id, token_endpoint_auth_method: 'client_secret_basic', authorization_server: as.issuer };
  await putUpstream(gw, 'kept', { url: mcp.url, oauth: { ...oauth, client_secret: client.client_secret } });
  // The operator changes the scopes and sends no secret: it is kept.
  const again = await putUpstream(gw, 'kept', { url: mcp.url, oauth: { ...oauth, scopes: ['tickets:read'] } });
  assert.equal(again.json.oauth.client_secret_set, true, again.text);
  const key = (await newKey(gw, 'jan', ['kept'])).key;
  const started = await startOAuthConnect(gw, (await newLink(gw, 'jan', 'kept')).url);
  const done = await oauthCallback(await as.completeLogin(started.authorize, { user: 'jan' }), started.binding);
  assert.equal(done.status, 200, await done.text());
  const r = await rawMcp(gw, '/mcp/kept', key, callTool(1, 'whoami'));
  assert.equal(r.status, 200);
  assert.match(await r.text(), new RegExp(client.client_id));
  // A new client_id without a secret drops it; so does "client_secret": null.
  const other = await putUpstream(gw, 'kept', { url: mcp.url, oauth: { ...oauth, client_id: 'another-client' } });
  assert.equal(other.json.oauth.client_secret_set, false);
  await putUpstream(gw, 'kept', { url: mcp.url, oauth: { ...oauth, client_secret: client.client_secret } });
  const cleared = await putUpstream(gw, 'kept', { url: mcp.url, oauth: { ...oauth, client_secret: null } });
  assert.equal(cleared.json.oauth.client_secret_set, false);
});

test('client metadata document', async () => {
  const r = await fetch(gw.base + '/oauth/client-metadata.json');
  const doc = await r.json();
  assert.equal(doc.client_id, gw.base + '/oauth/client-metadata.json');
  assert.deepEqual(doc.redirect_uris, [gw.base + '/oauth/callback']);
});
