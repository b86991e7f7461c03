// End-to-end: the MCP surface (API.md §1) and header templates (§2). The built Worker under
// `wrangler dev`, real MCP servers and clients from the official TypeScript and Python SDKs, all
// on loopback: every transport (Streamable HTTP stateful and stateless, JSON and SSE answers,
// 2026-07-28, legacy HTTP+SSE) relayed with each subject's own rendered headers and never the
// gateway key; MCP headers, sessions and upstream statuses passed through; every row of the error
// table. Also the admin API's (§4) authentication, guessing limit, input validation, secret-free
// lists and the security headers on every answer the gateway makes itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startGateway, rpcMessages, freePort, sleep, startPyServer, runPyClient, sdkClient, sdkLegacyClient, whoami,
  ACCEPT, initialize, callTool, rawMcp, newKey, putUpstream, newLink,
} from './harness.mjs';
import { startStreamable, startLegacySse, startHanging } from './peers/ts_servers.mjs';

const SECRETS = {
  tenant: 'acme-tenant-7',
  opKey: 'op-apikey-' + 'x'.repeat(20),
  aliceKey: 'alice-upstream-key-1111',
  bobKey: 'bob-upstream-key-2222',
  aliceClientId: 'alice-client',
  aliceClientSecret: 'alice-client-secret-3333',
};
const keys = {}; // subject/purpose -> gateway key
let gw;
const up = {};

const basic = (a, b) => 'Basic ' + Buffer.from(`${a}:${b}`).toString('base64');

before(async () => {
  up.tenant = await startStreamable({
    name: 'tenant',
    check: (h) => h['x-tenant-id'] === SECRETS.tenant && [SECRETS.aliceKey, SECRETS.bobKey].includes(h['x-api-key']),
  });
  up.apikey = await startStreamable({
    name: 'apikey', stateless: true, json: true,
    check: (h) => h.authorization === `ApiKey ${SECRETS.opKey}`,
  });
  up.basic = await startStreamable({
    name: 'basic',
    check: (h) => h.authorization === basic(SECRETS.aliceClientId, SECRETS.aliceClientSecret),
  });
  up.legacy = await startLegacySse({ check: (h) => [SECRETS.aliceKey, SECRETS.bobKey].includes(h['x-api-key']) });
  up.hanging = await startHanging();
  up.python = await startPyServer({ apiKey: SECRETS.aliceKey });
  gw = await startGateway({ UPSTREAM_TIMEOUT_MS: '1500', ALLOWED_ORIGINS: 'https://app.example', UPSTREAM_REGION: 'eu-1' });

  await putUpstream(gw, 'tenant', {
    url: up.tenant.url,
    headers: { 'X-API-KEY': '{{user.api_key}}', 'X-Tenant-ID': '{{secret.tenant}}', 'X-Region': '{{env.UPSTREAM_REGION}}', 'X-Subject': 'user={{subject}}' },
    user_fields: [{ name: 'api_key', label: 'API key' }],
  });
  await putUpstream(gw, 'apikey', { url: up.apikey.url, headers: { Authorization: 'ApiKey {{secret.op_key}}' } });
  await putUpstream(gw, 'basic', { url: up.basic.url, headers: { Authorization: 'Basic {{basic(user.client_id, user.client_secret)}}' } });
  await putUpstream(gw, 'legacy', { url: up.legacy.url, transport: 'sse', headers: { 'X-API-KEY': '{{user.api_key}}' } });
  await putUpstream(gw, 'hanging', { url: up.hanging.url });
  await putUpstream(gw, 'python', { url: up.python.url, headers: { 'X-API-KEY': '{{user.api_key}}' } });
  // The same server behind a URL it redirects (Starlette: /mcp/ → /mcp).
  await putUpstream(gw, 'redirecting', { url: up.python.url + '/', headers: { 'X-API-KEY': '{{user.api_key}}' } });
  await putUpstream(gw, 'closed', { url: `http://127.0.0.1:${await freePort()}/mcp` });
  await putUpstream(gw, 'needs-op', { url: up.apikey.url, headers: { Authorization: 'ApiKey {{secret.not_set}}' } });
  await putUpstream(gw, 'wrong-op', { url: up.apikey.url, headers: { Authorization: 'ApiKey {{secret.tenant}}' } });

  for (const [name, value] of [['tenant', SECRETS.tenant], ['op_key', SECRETS.opKey]]) {
    assert.equal((await gw.admin('PUT', `/secrets/${name}`, { value })).status, 204);
  }
  const subjectSecret = async (subject, name, value) =>
    assert.equal((await gw.admin('PUT', `/subjects/${subject}/secrets/${name}`, { value })).status, 204);
  await subjectSecret('alice@example.com', 'api_key', SECRETS.aliceKey);
  await subjectSecret('alice@example.com', 'client_id', SECRETS.aliceClientId);
  await subjectSecret('alice@example.com', 'client_secret', SECRETS.aliceClientSecret);
  await subjectSecret('bob', 'api_key', SECRETS.bobKey);

  keys.alice = (await newKey(gw, 'alice@example.com', ['*'], { label: 'alice laptop' })).key;
  keys.bob = (await newKey(gw, 'bob', ['tenant', 'legacy'])).key;
  keys.carol = (await newKey(gw, 'carol', ['tenant', 'legacy'])).key; // never given an api_key
});

after(async () => {
  for (const s of Object.values(up)) s.close();
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

test('health and admin authentication', async () => {
  assert.equal(await (await fetch(gw.base + '/healthz')).text(), 'ok');
  const r = await fetch(gw.base + '/admin/v1/upstreams', { headers: { authorization: 'Bearer wrong' } });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.code, 'unauthorized');
  const none = await fetch(gw.base + '/admin/v1/upstreams');
  assert.equal(none.status, 401);
});

test('admin-token guessing: after 10 wrong tokens a client gets 429 with Retry-After, even with the right token; other clients are unaffected', async () => {
  const from = (ip, token) => fetch(gw.base + '/admin/v1/upstreams', {
    headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': ip },
  });
  const guesser = '203.0.113.' + (1 + randomBytes(1)[0] % 250);
  for (let i = 0; i < 10; i++) {
    const r = await from(guesser, `guess-${i}`);
    assert.equal(r.status, 401, `guess ${i}`);
    await r.text();
  }
  for (const token of ['guess-10', gw.adminToken]) {
    const r = await from(guesser, token);
    assert.equal(r.status, 429, 'over the limit, the token is not even looked at');
    assert.equal((await r.json()).error.code, 'too_many_attempts');
    const after = Number(r.headers.get('retry-after'));
    assert.ok(after >= 1 && after <= 300, `Retry-After ${after}`);
  }
  const other = await from('198.51.100.7', gw.adminToken);
  assert.equal(other.status, 200, 'another client is not locked out');
  await other.text();
  assert.equal((await gw.admin('GET', '/upstreams')).status, 200);
});

test('security headers on every answer the gateway makes itself, none added to relayed upstream answers', async () => {
  const adminAuth = { authorization: `Bearer ${gw.adminToken}` };
  const own = [
    ['GET', '/healthz', {}, 200],
    ['GET', '/admin/v1/upstreams', adminAuth, 200],
    ['GET', '/admin/v1/upstreams', {}, 401],
    ['PUT', '/admin/v1/keys', adminAuth, 405],
    ['GET', '/nowhere', {}, 404],
    ['POST', '/mcp/tenant', { 'content-type': 'application/json' }, 401],
    ['POST', '/mcp/nope', { authorization: `Bearer ${keys.alice}`, 'content-type': 'application/json' }, 404],
    ['POST', '/mcp/tenant', { authorization: `Bearer ${keys.alice}`, origin: 'https://evil.example' }, 403],
    ['GET', '/oauth/client-metadata.json', {}, 200],
    ['GET', '/oauth/callback', {}, 400],
  ];
  for (const [method, path, headers, status] of own) {
    const r = await fetch(gw.base + path, { method, headers, body: method === 'POST' ? '{}' : undefined });
    const what = `${method} ${path}`;
    assert.equal(r.status, status, what);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', what);
    assert.equal(r.headers.get('cache-control'), 'no-store', what);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', what);
    assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, what);
    await r.text();
  }
  const relayed = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize());
  assert.equal(relayed.status, 200);
  for (const h of ['x-content-type-options', 'referrer-policy', 'content-security-policy']) {
    assert.equal(relayed.headers.get(h), null, `${h} is not added to an upstream's answer`);
  }
  await relayed.text();
});

test('open redirect: no route sends a browser where a parameter says', async () => {
  const evil = encodeURIComponent('https://evil.example/x');
  const link = (await newLink(gw, 'bob', 'tenant')).url;
  for (const path of [
    `/oauth/callback?state=x&code=y&redirect_uri=${evil}&next=${evil}`,
    `/oauth/callback?error=access_denied&state=x&return_to=${evil}`,
    `${new URL(link).pathname}?next=${evil}&redirect_uri=${evil}`,
    `/connect/mabl_${'0'.repeat(64)}_${'A'.repeat(43)}?next=${evil}`,
    `/healthz?redirect=${evil}`,
  ]) {
    const r = await fetch(gw.base + path, { redirect: 'manual' });
    assert.ok(r.status < 300 || r.status >= 400, `${path}: ${r.status}`);
    assert.equal(r.headers.get('location'), null, path);
    assert.ok(!(await r.text()).includes('evil.example'), `${path}: the target is not echoed`);
  }
});

test('admin API validates input and names the field', async () => {
  const cases = [
    ['PUT', '/upstreams/Bad_Id', { url: 'http://127.0.0.1:1/' }, 'id'],
    ['PUT', '/upstreams/x', {}, 'url'],
    ['PUT', '/upstreams/x', { url: 'http://169.254.169.254/latest' }, 'url'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', headers: { 'X-A': 'a\r\nX-Injected: 1' } }, 'headers.X-A'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', headers: { 'X-A': 'a\u0000b' } }, 'headers.X-A'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', headers: { 'X-A': '{{env.ADMIN_TOKEN}}' } }, 'headers.X-A'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', headers: { 'X-A': '{{secret.API_KEY}}' } }, 'headers.X-A'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', headers: { 'X-A': 'café' } }, 'headers.X-A'],
    ['PUT', '/secrets/x', { value: 'naïve' }, 'value'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', headers: { 'X-A': '{{env.ENCRYPTION_KEY}}' } }, 'headers.X-A'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', headers: { 'Mcp-Session-Id': 'x' } }, 'headers.Mcp-Session-Id'],
    ['PUT', '/upstreams/x', { url: 'http://127.0.0.1:1/', transport: 'websocket' }, 'transport'],
    ['PUT', '/upstreams/x', '{not json', 'body'],
    ['PUT', '/secrets/x', { value: 'a\nb' }, 'value'],
    ['PUT', '/secrets/x', {}, 'value'],
    ['PUT', '/subjects/bad subject/secrets/x', { value: 'v' }, 'subject'],
    ['POST', '/keys', { upstreams: ['*'] }, 'subject'],
    ['POST', '/keys', { subject: 'a' }, 'upstreams'],
    ['POST', '/keys', { subject: 'a', upstreams: ['Nope!'] }, 'upstreams'],
    ['POST', '/keys', { subject: 'a', upstreams: ['*'], expires_in: -5 }, 'expires_in'],
    ['GET', '/keys', undefined, 'subject'],
  ];
  for (const [method, path, body, field] of cases) {
    const r = await gw.admin(method, path, body);
    assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)} → ${r.text}`);
    assert.equal(r.json.error.code, 'invalid_request');
    assert.equal(r.json.error.data.field, field, r.text);
    assert.ok(r.json.error.message.startsWith(field), r.json.error.message);
  }
  assert.equal((await gw.admin('GET', '/upstreams/nope')).status, 404);
  assert.equal((await gw.admin('DELETE', '/keys/nope')).status, 404);
});

test('admin lists never show secrets or keys', async () => {
  const oauth = await gw.admin('PUT', '/upstreams/with-client', {
    url: 'http://127.0.0.1:1/mcp',
    oauth: { client_id: 'cid', client_secret: 'very-secret-client-secret', authorization_server: 'http://127.0.0.1:1' },
  });
  assert.equal(oauth.status, 200);
  assert.equal(oauth.json.oauth.client_secret_set, true);
  const list = await gw.admin('GET', '/upstreams');
  assert.ok(list.json.items.every((u) => typeof u.id === 'string'));
  assert.ok(!list.text.includes('very-secret-client-secret'));
  assert.ok(!list.text.includes(SECRETS.tenant));
  const one = await gw.admin('GET', '/upstreams/with-client');
  assert.ok(!one.text.includes('very-secret-client-secret'));
  assert.equal((await gw.admin('DELETE', '/upstreams/with-client')).status, 204);
  assert.equal((await gw.admin('GET', '/upstreams/with-client')).status, 404);

  const ks = await gw.admin('GET', '/keys?subject=alice@example.com');
  assert.equal(ks.status, 200);
  assert.equal(ks.json.items.length, 1);
  assert.equal(ks.json.items[0].label, 'alice laptop');
  assert.equal(ks.json.items[0].expires_at, null);
  assert.ok(!ks.text.includes(keys.alice) && !ks.text.includes('"hash"'));
});

test('official SDK client: each subject reaches the upstream with its own headers, never the gateway key', async () => {
  for (const [subject, expected, id] of [['alice', SECRETS.aliceKey, 'alice@example.com'], ['bob', SECRETS.bobKey, 'bob']]) {
    const client = await sdkClient(gw.base + '/mcp/tenant', keys[subject]);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['slow_progress', 'whoami']);
    const seen = await whoami(client);
    assert.equal(seen['x-api-key'], expected);
    assert.equal(seen['x-tenant-id'], SECRETS.tenant);
    assert.equal(seen['x-region'], 'eu-1');
    assert.equal(seen['x-subject'], `user=${id}`);
    assert.equal(seen.authorization, undefined, 'the client credential never goes upstream');
    await client.close();
  }
});

test('an OpenAI-style raw client: initialize, tools/list, tools/call with one Authorization', async () => {
  const ua = { 'user-agent': 'openai-mcp/1.0.0' };
  const init = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize(), ua);
  assert.equal(init.status, 200);
  const [initResult] = await rpcMessages(init);
  assert.equal(initResult.result.serverInfo.name, 'apikey');
  const notified = await rawMcp(gw, '/mcp/apikey', keys.alice, { jsonrpc: '2.0', method: 'notifications/initialized' }, ua);
  assert.equal(notified.status, 202);
  const list = await rpcMessages(await rawMcp(gw, '/mcp/apikey', keys.alice, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, ua));
  assert.ok(list[0].result.tools.some((t) => t.name === 'whoami'));
  const call = await rawMcp(gw, '/mcp/apikey', keys.alice, callTool(3, 'whoami'), ua);
  assert.match(call.headers.get('content-type'), /application\/json/);
  const [answer] = await rpcMessages(call);
  const seen = JSON.parse(answer.result.content[0].text);
  assert.equal(seen.authorization, `ApiKey ${SECRETS.opKey}`);
  assert.equal(seen['user-agent'], 'openai-mcp/1.0.0');
  assert.equal(seen.accept, ACCEPT);
});

test('usage and request logs: a key\'s last use is in the keys list, written at most once a minute; one JSON log line per proxied request', async () => {
  const { id, key } = await newKey(gw, 'alice@example.com', ['apikey'], { label: 'usage' });
  const listed = async () => (await gw.admin('GET', '/keys?subject=alice@example.com')).json.items.find((k) => k.id === id);
  assert.equal((await listed()).last_used, null, 'never used');
  const before = Date.now() - 2000;
  assert.equal((await rawMcp(gw, '/mcp/apikey', key, callTool(1, 'whoami'))).status, 200);
  const first = (await listed()).last_used;
  assert.ok(Date.parse(first) >= before && Date.parse(first) <= Date.now() + 2000, first);
  await sleep(1100);
  assert.equal((await rawMcp(gw, '/mcp/apikey', key, callTool(2, 'whoami'))).status, 200);
  assert.equal((await listed()).last_used, first, 'within the minute nothing is written again');

  // Request logs: one JSON line per proxied request, with the key's id, never the key.
  const lines = () => gw.logText().split('\n').map((l) => l.match(/\{"request":.*\}$/)?.[0]).filter(Boolean).map((l) => JSON.parse(l).request);
  let mine = [];
  for (let i = 0; i < 50 && mine.length < 2; i++, await sleep(100)) mine = lines().filter((l) => l.credential === id);
  assert.equal(mine.length, 2, 'one line per request');
  const [line] = mine;
  assert.deepEqual(
    { upstream: line.upstream, subject: line.subject, method: line.method, tool: line.tool, status: line.status, upstream_status: line.upstream_status },
    { upstream: 'apikey', subject: 'alice@example.com', method: 'tools/call', tool: 'whoami', status: 200, upstream_status: 200 },
  );
  assert.ok(Number.isInteger(line.ms) && !Number.isNaN(Date.parse(line.time)));
  assert.ok(!gw.logText().includes(key), 'never the key');
  assert.equal((await rawMcp(gw, '/mcp/apikey', null, callTool(3, 'whoami'))).status, 401);
  let refused;
  for (let i = 0; i < 50 && !refused; i++, await sleep(100)) refused = lines().find((l) => l.status === 401 && l.upstream === 'apikey');
  assert.ok(refused && refused.subject === undefined && refused.credential === undefined, 'refused requests are logged too, without a subject');
});

test('Basic credentials from two user values', async () => {
  const client = await sdkClient(gw.base + '/mcp/basic', keys.alice);
  const seen = await whoami(client);
  assert.equal(seen.authorization, basic(SECRETS.aliceClientId, SECRETS.aliceClientSecret));
  await client.close();
});

test('progress notifications stream through before the final result', async () => {
  const client = await sdkClient(gw.base + '/mcp/tenant', keys.alice);
  const progressAt = [];
  const started = Date.now();
  const result = await client.callTool({ name: 'slow_progress', arguments: { steps: 3 } }, undefined, {
    onprogress: (p) => progressAt.push({ progress: p.progress, at: Date.now() - started }),
  });
  const doneAt = Date.now() - started;
  assert.equal(result.content[0].text, 'done');
  assert.deepEqual(progressAt.map((p) => p.progress), [1, 2, 3]);
  // The tool sleeps 300 ms after each notification: a buffering proxy would deliver all three
  // together with the result, about 900 ms in.
  assert.ok(progressAt[0].at < doneAt - 500, `first progress at ${progressAt[0].at} ms, result at ${doneAt} ms`);
  await client.close();
});

test('session id, DELETE and 404 for a dead session pass through', async () => {
  const init = await rawMcp(gw, '/mcp/tenant', keys.bob, initialize());
  assert.equal(init.status, 200);
  const sid = init.headers.get('mcp-session-id');
  assert.ok(sid, 'session id header relayed');
  await init.text();
  const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' };
  assert.equal((await rawMcp(gw, '/mcp/tenant', keys.bob, { jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status, 202);
  const seenBefore = up.tenant.requests.at(-1).headers;
  assert.equal(seenBefore['mcp-session-id'], sid);
  assert.equal(seenBefore['mcp-protocol-version'], '2025-06-18');
  const del = await fetch(gw.base + '/mcp/tenant', { method: 'DELETE', headers: { authorization: `Bearer ${keys.bob}`, ...h } });
  assert.equal(del.status, 200);
  const dead = await rawMcp(gw, '/mcp/tenant', keys.bob, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, h);
  assert.equal(dead.status, 404);
  assert.equal((await dead.json()).error.message, 'Session not found');
  // Status codes the upstream gives are relayed as they are (the SDK server's 406 and 415).
  const notAcceptable = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize(), { accept: 'application/json' });
  assert.equal(notAcceptable.status, 406);
  await notAcceptable.text();
  const unsupported = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize(), { 'content-type': 'text/plain' });
  assert.equal(unsupported.status, 415);
  await unsupported.text();
});

test('2026-07-28 request headers reach the upstream untouched', async () => {
  const headers = {
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': 'tools/call',
    'mcp-name': 'whoami',
    'mcp-param-region': 'eu-west',
  };
  const r = await rawMcp(gw, '/mcp/apikey', keys.alice, callTool(5, 'whoami'), headers);
  await r.text();
  const seen = up.apikey.requests.at(-1).headers;
  for (const [k, v] of Object.entries(headers)) assert.equal(seen[k], v, k);
});

test('2026-07-28 end to end: the official Python SDK client and server through the gateway', async () => {
  const out = await runPyClient(gw.base + '/mcp/python', keys.alice);
  assert.equal(out.protocol_version, '2026-07-28');
  assert.deepEqual(out.tools, ['whoami']);
  const seen = out.whoami.headers;
  assert.equal(seen['x-api-key'], SECRETS.aliceKey);
  assert.equal(seen.authorization, undefined);
  assert.equal(seen['mcp-protocol-version'], '2026-07-28');
  assert.equal(seen['mcp-method'], 'tools/call');
  assert.equal(seen['mcp-name'], 'whoami');
  // The server/discover probe was authenticated and forwarded like any other request.
  const methods = up.python.requests().map((r) => r.headers['mcp-method']);
  assert.ok(methods.includes('server/discover'), JSON.stringify(methods));
  // A stateless 2026-07-28 server answers GET with 405: relayed as it is.
  const get = await fetch(gw.base + '/mcp/python', { headers: { authorization: `Bearer ${keys.alice}`, 'mcp-protocol-version': '2026-07-28', accept: 'text/event-stream' } });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  await get.text();
  // Bob's key is not allowed here; Carol has no api_key: neither reaches the server.
  await assert.rejects(runPyClient(gw.base + '/mcp/python', keys.bob), /exited 1/);
});

test('legacy HTTP+SSE: endpoint rewritten, sealed, bound to its subject', async () => {
  const client = await sdkLegacyClient(gw.base + '/sse/legacy', keys.bob);
  const seen = await whoami(client);
  assert.equal(seen['x-api-key'], SECRETS.bobKey);
  await client.close();

  // The raw stream: the endpoint event points at the gateway, and carries no upstream URL.
  const ctl = new AbortController();
  const stream = await fetch(gw.base + '/sse/legacy', { headers: { authorization: `Bearer ${keys.bob}` }, signal: ctl.signal });
  assert.equal(stream.status, 200);
  const reader = stream.body.getReader();
  let text = '';
  while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
  ctl.abort();
  const endpoint = text.match(/data: (.*)/)[1];
  assert.match(endpoint, /^\/sse\/legacy\/messages\?s=v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$/);
  assert.ok(!endpoint.includes('sessionId') && !endpoint.includes('127.0.0.1'));

  const ping = { jsonrpc: '2.0', id: 1, method: 'ping' };
  const other = await rawMcp(gw, endpoint, keys.alice, ping);
  assert.equal(other.status, 400, 'another subject cannot use this session');
  assert.equal((await other.json()).error.data.reason, 'invalid_session_url');
  const forged = await rawMcp(gw, endpoint.slice(0, -4) + 'AAAA', keys.bob, ping);
  assert.equal(forged.status, 400);
  await forged.text();
});

test('error table: keys', async () => {
  const list = { jsonrpc: '2.0', id: 'req-1', method: 'tools/list' };
  const noKey = await rawMcp(gw, '/mcp/tenant', null, list);
  assert.equal(noKey.status, 401);
  assert.equal(noKey.headers.get('www-authenticate'), 'Bearer realm="mcp-authbridge"');
  const body = await noKey.json();
  assert.equal(body.jsonrpc, '2.0');
  assert.equal(body.id, 'req-1');
  assert.equal(body.error.data.reason, 'invalid_key');

  const unknown = await rawMcp(gw, '/mcp/tenant', keys.alice.slice(0, -3) + 'AAA', list);
  assert.equal(unknown.status, 401);
  await unknown.text();
  // Well-formed, but its routing part names no store of ours.
  const stranger = 'mab_' + randomBytes(32).toString('hex') + '_' + randomBytes(32).toString('base64url');
  const strangerAnswer = await rawMcp(gw, '/mcp/tenant', stranger, list);
  assert.equal(strangerAnswer.status, 401);
  await strangerAnswer.text();
  const garbage = await rawMcp(gw, '/mcp/tenant', 'mab_not-a-key', list);
  assert.equal(garbage.status, 401);
  await garbage.text();

  // A bare key without "Bearer" is accepted.
  const bare = await rawMcp(gw, '/mcp/apikey', null, initialize(), { authorization: keys.alice });
  assert.equal(bare.status, 200);
  await bare.text();

  const scoped = await rawMcp(gw, '/mcp/apikey', keys.bob, list);
  assert.equal(scoped.status, 403);
  const scopedBody = await scoped.json();
  assert.equal(scopedBody.error.data.reason, 'key_not_allowed');
  assert.equal(scopedBody.error.data.upstream, 'apikey');

  const missing = await rawMcp(gw, '/mcp/no-such-upstream', keys.alice, list);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.data.reason, 'unknown_upstream');
  const wrongWay = await rawMcp(gw, '/mcp/legacy', keys.alice, list);
  assert.equal(wrongWay.status, 404);
  assert.match((await wrongWay.json()).error.message, /use \/sse\/legacy/);

  // Revocation: works now, fails on the very next request.
  const k = await newKey(gw, 'dave', ['apikey']);
  assert.equal((await rawMcp(gw, '/mcp/apikey', k.key, initialize())).status, 200);
  assert.equal((await gw.admin('DELETE', `/keys/${k.id}`)).status, 204);
  const revoked = await rawMcp(gw, '/mcp/apikey', k.key, initialize());
  assert.equal(revoked.status, 401);
  await revoked.text();
  assert.equal((await gw.admin('GET', '/keys?subject=dave')).json.items.length, 0);

  // Expiry.
  const e = await newKey(gw, 'erin', ['apikey'], { expires_in: 1 });
  assert.match(e.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  await sleep(1500);
  const expired = await rawMcp(gw, '/mcp/apikey', e.key, initialize());
  assert.equal(expired.status, 401);
  await expired.text();
});

test('error table: connection required, operator values, upstream rejection', async () => {
  const list = { jsonrpc: '2.0', id: 7, method: 'tools/list' };
  const carol = await rawMcp(gw, '/mcp/tenant', keys.carol, list);
  assert.equal(carol.status, 403);
  const cb = await carol.json();
  assert.equal(cb.id, 7);
  assert.equal(cb.error.data.reason, 'connection_required');
  assert.equal(cb.error.data.upstream, 'tenant');
  assert.match(cb.error.data.connect_url, new RegExp(`^${gw.base}/connect/mabl_`));
  gw.trackLink(cb.error.data.connect_url);

  const op = await rawMcp(gw, '/mcp/needs-op', keys.alice, list);
  assert.equal(op.status, 500);
  const ob = await op.json();
  assert.equal(ob.error.data.name, 'secret.not_set');

  // The upstream refuses operator-configured credentials: 502, and its headers stay behind.
  const rejected = await rawMcp(gw, '/mcp/wrong-op', keys.alice, list);
  assert.equal(rejected.status, 502);
  assert.equal(rejected.headers.get('www-authenticate'), null);
  assert.equal(rejected.headers.get('set-cookie'), null);
  assert.equal((await rejected.json()).error.data.reason, 'upstream_rejected_credentials');

  // The upstream refuses the subject's own value: connection_required, visible to the operator,
  // and cleared once a working value is set.
  assert.equal((await gw.admin('PUT', '/subjects/frank/secrets/api_key', { value: 'stale-key' })).status, 204);
  const frank = (await newKey(gw, 'frank', ['tenant'])).key;
  const stale = await rawMcp(gw, '/mcp/tenant', frank, initialize());
  assert.equal(stale.status, 403);
  const staleBody = await stale.json();
  assert.equal(staleBody.error.data.reason, 'connection_required');
  gw.trackLink(staleBody.error.data.connect_url);
  const conns = await gw.admin('GET', '/connections?subject=frank');
  assert.deepEqual(conns.json.items.map((c) => [c.id, c.upstream, c.status]), [['tenant', 'tenant', 'connection_required']]);
  assert.equal((await gw.admin('PUT', '/subjects/frank/secrets/api_key', { value: SECRETS.bobKey })).status, 204);
  const fixed = await rawMcp(gw, '/mcp/tenant', frank, initialize());
  assert.equal(fixed.status, 200);
  await fixed.text();
  await sleep(200);
  assert.equal((await gw.admin('GET', '/connections?subject=frank')).json.items[0].status, 'connected');
});

test('an upstream redirect is refused, never followed or relayed', async () => {
  const r = await rawMcp(gw, '/mcp/redirecting', keys.alice, initialize());
  assert.equal(r.status, 502);
  assert.equal(r.headers.get('location'), null);
  const body = await r.json();
  assert.equal(body.error.data.reason, 'upstream_protocol_error');
  assert.ok(!JSON.stringify(body).includes('127.0.0.1'));
});

test('an unauthenticated client cannot make the gateway buffer a large body', async () => {
  const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { pad: 'x'.repeat(5 * 1024 * 1024) } });
  const r = await rawMcp(gw, '/mcp/apikey', null, big);
  assert.equal(r.status, 401, 'the key is checked before the body is read');
  await r.text();
});

test('deeply nested bodies: the MCP body stays opaque (relayed, never a 5xx from the gateway); the admin API answers 400', async () => {
  const depth = 200_000;
  const nested = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + '['.repeat(depth) + ']'.repeat(depth) + '}';
  const deepArray = '['.repeat(depth) + ']'.repeat(depth);
  for (const body of [nested, deepArray]) {
    const r = await rawMcp(gw, '/mcp/apikey', keys.alice, body);
    assert.ok(r.status < 500, `relayed or refused, not a crash: ${r.status}`);
    await r.text();
  }
  const admin = await gw.admin('PUT', '/secrets/deep', '{"value":' + '['.repeat(depth) + ']'.repeat(depth) + '}');
  assert.equal(admin.status, 400, admin.text);
  assert.equal(admin.json.error.data.field, 'body');
  const after = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize());
  assert.equal(after.status, 200, 'the gateway still answers');
  await after.text();
});

test('error table: unreachable, timeout, body limit, origin', async () => {
  const list = { jsonrpc: '2.0', id: 1, method: 'tools/list' };
  const closed = await rawMcp(gw, '/mcp/closed', keys.alice, list);
  assert.equal(closed.status, 502);
  assert.equal((await closed.json()).error.data.reason, 'upstream_unreachable');

  const started = Date.now();
  const hung = await rawMcp(gw, '/mcp/hanging', keys.alice, list);
  assert.equal(hung.status, 504);
  assert.equal((await hung.json()).error.data.reason, 'upstream_timeout');
  assert.ok(Date.now() - started < 10_000);

  const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { pad: 'x'.repeat(4 * 1024 * 1024) } });
  const tooBig = await rawMcp(gw, '/mcp/apikey', keys.alice, big);
  assert.equal(tooBig.status, 413);
  const tb = await tooBig.json();
  assert.equal(tb.error.data.limit, 4 * 1024 * 1024);

  const evil = await rawMcp(gw, '/mcp/apikey', keys.alice, list, { origin: 'https://evil.example' });
  assert.equal(evil.status, 403);
  assert.equal((await evil.json()).error.data.reason, 'origin_not_allowed');
  const good = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize(), { origin: 'https://app.example' });
  assert.equal(good.status, 200);
  assert.equal(good.headers.get('access-control-allow-origin'), 'https://app.example');
  await good.text();
  const pre = await fetch(gw.base + '/mcp/apikey', {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, mcp-param-region' },
  });
  assert.equal(pre.status, 204);
  assert.match(pre.headers.get('access-control-allow-headers'), /Mcp-Session-Id/);
  assert.match(pre.headers.get('access-control-allow-headers'), /mcp-param-region/);
  const badPre = await fetch(gw.base + '/mcp/apikey', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(badPre.status, 403);
  await badPre.text();
});

test('a body over the limit with Content-Length is a JSON-RPC error with the request id, judged from its first 64 KiB', async () => {
  const big = JSON.stringify({ jsonrpc: '2.0', id: 'big-7', method: 'tools/call', params: { pad: 'x'.repeat(5 * 1024 * 1024) } });
  const started = Date.now();
  const r = await rawMcp(gw, '/mcp/apikey', keys.alice, big);
  assert.equal(r.status, 413);
  const body = await r.json();
  assert.equal(body.jsonrpc, '2.0');
  assert.equal(body.id, 'big-7');
  assert.equal(body.error.code, -32600);
  assert.equal(body.error.data.reason, 'body_too_large');
  assert.equal(body.error.data.limit, 4 * 1024 * 1024);
  assert.ok(Date.now() - started < 10_000);
  // The same without a key: 401, also as a JSON-RPC error with the id, the body not read past 64 KiB.
  const anonymous = await rawMcp(gw, '/mcp/apikey', null, big);
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).id, 'big-7');
  // Not JSON-RPC: the plain form.
  const plain = await rawMcp(gw, '/mcp/apikey', keys.alice, 'x'.repeat(5 * 1024 * 1024));
  assert.equal(plain.status, 413);
  assert.equal((await plain.json()).error.code, 'body_too_large');
});

test('a body without Content-Length (chunked) is counted as it streams: within the limit it goes through, over it the 413 is judged from its first 64 KiB', async () => {
  const chunked = (text, size = 64 * 1024) => ({
    body: new ReadableStream({
      start(c) {
        const bytes = Buffer.from(text);
        for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.subarray(i, i + size));
        c.close();
      },
    }),
    duplex: 'half',
  });
  const small = await rawMcp(gw, '/mcp/apikey', keys.alice, '', {}, chunked(JSON.stringify(callTool(3, 'whoami')), 7));
  const answer = await small.text();
  assert.equal(small.status, 200, answer);
  assert.match(answer, /"id":3/);
  const big = JSON.stringify({ jsonrpc: '2.0', id: 'chunked-9', method: 'tools/call', params: { pad: 'x'.repeat(5 * 1024 * 1024) } });
  const r = await rawMcp(gw, '/mcp/apikey', keys.alice, '', {}, chunked(big));
  assert.equal(r.status, 413);
  const body = await r.json();
  assert.equal(body.id, 'chunked-9');
  assert.equal(body.error.data.reason, 'body_too_large');
  assert.equal(body.error.data.limit, 4 * 1024 * 1024);
});

test("a same-origin Origin (the gateway's own) is accepted without ALLOWED_ORIGINS; another origin is still refused", async () => {
  const own = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize(), { origin: gw.base });
  assert.equal(own.status, 200);
  await own.text();
  const pre = await fetch(gw.base + '/mcp/apikey', { method: 'OPTIONS', headers: { origin: gw.base, 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  for (const origin of ['https://evil.example', gw.base.replace('127.0.0.1', 'localhost'), gw.base.replace(/:(\d+)$/, (_, p) => `:${Number(p) + 1}`), 'null']) {
    const other = await rawMcp(gw, '/mcp/apikey', keys.alice, initialize(), { origin });
    assert.equal(other.status, 403, origin);
    assert.equal((await other.json()).error.data.reason, 'origin_not_allowed');
  }
});

test('no secret ever reached an upstream, a response or the log', async () => {
  const gatewayKeys = Object.values(keys);
  for (const dump of [up.tenant, up.apikey, up.basic, up.legacy].map((s) => JSON.stringify(s.requests)).concat(JSON.stringify(up.python.requests()))) {
    for (const k of gatewayKeys) assert.ok(!dump.includes(k), 'gateway key reached an upstream');
    assert.ok(!dump.includes('mab_'), 'gateway key prefix reached an upstream');
    assert.ok(!dump.includes(gw.adminToken));
  }
  const log = gw.logText();
  for (const secret of [...Object.values(SECRETS), ...gatewayKeys, gw.adminToken, gw.encryptionKey]) {
    assert.ok(!log.includes(secret), `a secret appeared in the wrangler log`);
  }
});
