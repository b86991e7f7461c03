// End-to-end: the credential lifecycle of API.md §4 "Credentials stay where the user gave
// them" and the refresh rules behind §1's 503 row. A connection never follows an upstream that
// moved to another origin; an operator's rotated client secret applies to existing grants; an
// `invalid_client` keeps the grant; a refusal under a name of its own ends it with a link; one
// upstream's hung authorization server never delays another upstream of the same subject; an
// operator's client secret goes only to the server the operator named. Real peers: oidc-provider,
// a JWT-verifying MCP server and SDK servers, all on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startGateway, sleep, callTool, mcpAnswer, newKey, putUpstream, newLink, openPage, submit,
  startOAuthConnect, finishOAuthConnect, oauthCallback,
} from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';
import { startOAuthPeers, stopOAuthPeers, oauthSecrets, startProtectedMcp } from './peers/oauth_mcp_server.mjs';

const TTL = 4; // access token lifetime, seconds
let as;
let mcp;
let gw;

/** `tools/call whoami` on an upstream, raw. */
const call = (upstream, key, id = 1) => mcpAnswer(gw, `/mcp/${upstream}`, key, callTool(id, 'whoami'));

/** Calls until the answer is 200 (up to 40 tries, 250 ms apart); returns the last status. */
async function untilOk(upstream, key) {
  let status = 0;
  for (let i = 0; i < 40 && status !== 200; i++) {
    status = (await call(upstream, key)).status;
    if (status !== 200) await sleep(250);
  }
  return status;
}

/** Connects `subject` to the OAuth upstream `upstream` through an admin-made link. */
async function connectOAuth(subject, upstream) {
  const link = await newLink(gw, subject, upstream);
  const started = await startOAuthConnect(gw, link.url);
  const done = await finishOAuthConnect(gw, as, started, subject);
  assert.equal(done.status, 200, done.text);
}

const connection = async (subject, upstream) =>
  (await gw.admin('GET', `/connections?subject=${subject}`)).json.items.find((c) => c.upstream === upstream);

before(async () => {
  ({ as, mcp } = await startOAuthPeers({ accessTokenTtl: TTL }));
  gw = await startGateway();
});

after(async () => {
  gw?.track(oauthSecrets(as, mcp));
  await stopOAuthPeers(as, mcp);
  await gw?.stop();
});

test('an upstream moved to another origin receives nothing of its connections: typed values', async () => {
  const check = (h) => !!h['x-api-key'];
  const home = await startStreamable({ check, stateless: true, json: true, name: 'home' });
  const elsewhere = await startStreamable({ check, stateless: true, json: true, name: 'elsewhere' });
  try {
    const body = (url) => ({ url, headers: { 'X-API-KEY': '{{user.api_key}}' }, user_fields: [{ name: 'api_key', label: 'API key' }] });
    await putUpstream(gw, 'typed', body(home.url));
    const { key } = await newKey(gw, 'gail', ['typed']);
    const link = await newLink(gw, 'gail', 'typed');
    const page = await openPage(link.url);
    const typed = 'gail-typed-key-' + 'x'.repeat(16);
    const sent = await submit(gw, link.url, { csrf: page.csrf, api_key: typed }, page.cookie);
    assert.equal(sent.status, 200, await sent.text());
    assert.equal((await call('typed', key)).status, 200);
    assert.ok(home.requests.some((r) => r.headers['x-api-key'] === typed));

    await putUpstream(gw, 'typed', body(elsewhere.url));
    const moved = await call('typed', key);
    assert.equal(moved.status, 403, moved.text);
    assert.equal(moved.json.error.data.reason, 'connection_required');
    assert.match(moved.json.error.data.connect_url, /\/connect\/mabl_/);
    assert.equal(elsewhere.requests.length, 0, 'the new host got no request at all');
    assert.equal((await connection('gail', 'typed')).status, 'connection_required');

    // Moved back: the connection was made there, so it works again.
    await putUpstream(gw, 'typed', body(home.url));
    assert.equal((await call('typed', key)).status, 200);
  } finally {
    home.close();
    elsewhere.close();
  }
});

test('an upstream moved to another origin receives nothing of its connections: OAuth tokens', async () => {
  const other = await startProtectedMcp({ issuer: as.issuer, jwksUri: as.jwksUri });
  try {
    await putUpstream(gw, 'moving', { url: mcp.url, oauth: {} });
    const { key } = await newKey(gw, 'hana', ['moving']);
    await connectOAuth('hana', 'moving');
    assert.equal((await call('moving', key)).status, 200);
    await putUpstream(gw, 'moving', { url: other.url, oauth: {} });
    const moved = await call('moving', key);
    assert.equal(moved.status, 403, moved.text);
    assert.equal(moved.json.error.data.reason, 'connection_required');
    assert.ok(other.requests.every((r) => !r.headers.authorization), 'no token went to the new host');
  } finally {
    other.close();
  }
});

test("a rotated operator client secret applies to existing grants: the next refresh works with the same grant", async () => {
  const reg = await fetch(`${as.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [gw.base + '/oauth/callback'], token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'] }),
  });
  assert.equal(reg.status, 201);
  const client = await reg.json();
  const upstream = (secret) => ({
    url: mcp.url,
    oauth: { client_id: client.client_id, client_secret: secret, authorization_server: as.issuer, scopes: ['tickets:read'] },
  });
  await putUpstream(gw, 'rotating', upstream(client.client_secret));
  const { key } = await newKey(gw, 'ines', ['rotating']);
  await connectOAuth('ines', 'rotating');
  assert.equal((await call('rotating', key)).status, 200);

  const rotated = as.rotateClientSecret(client.client_id);
  gw.track(rotated);
  await putUpstream(gw, 'rotating', upstream(rotated));
  await sleep(TTL * 1000 + 200);
  const grants = as.counts().refresh_grants;
  assert.equal((await call('rotating', key)).status, 200, 'refreshed with the new secret');
  assert.equal(as.counts().refresh_grants - grants, 1);
  const refreshes = as.tokenResponses().filter((t) => t.grant_type === 'refresh_token');
  assert.equal(refreshes.at(-1).status, 200);
  assert.equal(as.counts().refresh_token_reuse, 0);
});

test("an operator's client secret needs the server it may go to: authorization_server is required with client_secret", async () => {
  const r = await gw.admin('PUT', '/upstreams/unpinned', { url: mcp.url, oauth: { client_id: 'c', client_secret: 'operator-secret-' + 'y'.repeat(12) } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.data.field, 'oauth.authorization_server');
});

test('invalid_client at a refresh keeps the grant: 503 meanwhile, flagged for the operator, the same grant afterwards', async () => {
  await putUpstream(gw, 'tickets', { url: mcp.url, oauth: {} });
  const { key } = await newKey(gw, 'jon', ['tickets']);
  await connectOAuth('jon', 'tickets');
  assert.equal((await call('tickets', key)).status, 200);
  await sleep(TTL * 1000 + 200);
  as.setDown(true, { mode: 'answer', status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' } });
  const refused = await call('tickets', key);
  assert.equal(refused.status, 503, refused.text);
  assert.equal(refused.json.error.data.reason, 'authorization_server_unavailable');
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  const flagged = await connection('jon', 'tickets');
  assert.equal(flagged.status, 'connected');
  assert.equal(flagged.problem, 'invalid_client');
  as.setDown(false);
  const codes = as.counts().authorization_code_grants;
  assert.equal(await untilOk('tickets', key), 200);
  assert.equal(as.counts().authorization_code_grants, codes, 'no new connect: the same grant');
  assert.equal((await connection('jon', 'tickets')).problem, undefined);
});

test('a refusal under a name of its own ends the grant: connection_required with a link at once', async () => {
  const { key } = await newKey(gw, 'kim', ['tickets']);
  await connectOAuth('kim', 'tickets');
  await sleep(TTL * 1000 + 200);
  // GitHub answers a dead refresh token so, with HTTP 200.
  as.setDown(true, { mode: 'answer', status: 200, body: { error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' } });
  const refused = await call('tickets', key);
  as.setDown(false);
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.json.error.data.reason, 'connection_required');
  assert.match(refused.json.error.data.connect_url, /\/connect\/mabl_/);
  assert.equal((await connection('kim', 'tickets')).status, 'connection_required');
});

test("one upstream's hung authorization server never delays another upstream of the same subject", async () => {
  const plain = await startStreamable({ check: (h) => h['x-api-key'] === 'operator-plain-key-000', stateless: true, json: true, name: 'plain' });
  try {
    const secret = await gw.admin('PUT', '/secrets/plain_key', { value: 'operator-plain-key-000' });
    assert.equal(secret.status, 204);
    await putUpstream(gw, 'plain', { url: plain.url, headers: { 'X-API-KEY': '{{secret.plain_key}}' } });
    const { key } = await newKey(gw, 'lee', ['tickets', 'plain']);
    await connectOAuth('lee', 'tickets');
    await sleep(TTL * 1000 + 200);
    as.setDown(true, { mode: 'hang' });
    const hung = call('tickets', key);
    await sleep(300);
    const started = Date.now();
    const other = await call('plain', key);
    const took = Date.now() - started;
    assert.equal(other.status, 200, other.text);
    assert.ok(took < 2000, `the other upstream answered after ${took} ms`);
    const { status } = await hung;
    assert.equal(status, 503);
    as.setDown(false);
    assert.equal(await untilOk('tickets', key), 200);
  } finally {
    plain.close();
  }
});

test("a callback on another authorization server's redirect path is refused (mix-up)", async () => {
  const { key } = await newKey(gw, 'mia', ['tickets']);
  const link = await newLink(gw, 'mia', 'tickets');
  const started = await startOAuthConnect(gw, link.url);
  const redirect = new URL(new URL(started.authorize).searchParams.get('redirect_uri'));
  assert.match(redirect.pathname, /^\/oauth\/callback\/[0-9a-f]{16}$/, 'a registration has its own path');
  const callback = new URL(await as.completeLogin(started.authorize, { user: 'mia' }));
  callback.pathname = '/oauth/callback';
  const elsewhere = await oauthCallback(callback, started.binding);
  assert.equal(elsewhere.status, 400);
  assert.match(await elsewhere.text(), /did not come from the expected server/);
  assert.equal((await call('tickets', key)).status, 403, 'nothing was stored');
});
