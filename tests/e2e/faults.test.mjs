// End-to-end: the contract under faults. The MCP surface (API.md §1) when upstreams drop a
// stream half-way, send a malformed one, or fail with 5xx: the client always gets a well-formed
// answer or a visibly broken stream (never a hang), and no secret. Stored state (§4 writes, §3
// connections and pending OAuth authorizations) when `wrangler dev` is stopped and started again
// (and killed) in the middle of a flow, under concurrent admin writes to one subject, and across
// an ENCRYPTION_KEY rotation (§5): every acknowledged write stays whole. Also the log scan every
// gateway runs at stop(). Real SDK servers where the SDK can show the fault
// (tests/e2e/peers/fault_servers.mjs), raw node:http answers where it cannot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startGateway, sleep, freePort, whoamiVia, legacyWhoamiVia, scanLog, sseData, callTool,
  rawMcp, mcpAnswer, newKey, putUpstream, newLink, openPage, submit, startOAuthConnect, finishOAuthConnect,
} from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';
import { startFaultyStreamable, startFaultyLegacy } from './peers/fault_servers.mjs';
import { startOAuthPeers, stopOAuthPeers, oauthSecrets } from './peers/oauth_mcp_server.mjs';

const rand = () => randomBytes(9).toString('base64url');
const SECRETS = {
  tenant: 'tenant-' + rand(),
  rita: 'rita-key-' + rand(),
  samTyped: 'sam-typed-' + rand(),
  tomTyped: 'tom-typed-' + rand(),
};
const GOOD = new Set([SECRETS.rita, SECRETS.samTyped, SECRETS.tomTyped]);
const LIMIT_MS = 15_000; // "did not hang": far above anything here takes
const UPSTREAM_TIMEOUT_MS = 2000;

let gw;
let as;
let oauthMcp;
const up = {};
const keys = {};

const goodHeaders = (h) => h['x-tenant'] === SECRETS.tenant && GOOD.has(h['x-api-key']);
const range = (n) => Array.from({ length: n }, (_, i) => i);

/** Every request here is bounded: a hang fails its test instead of the suite. */
const bounded = () => ({ signal: AbortSignal.timeout(LIMIT_MS) });
const post = (path, key, body) => rawMcp(gw, path, key, body, {}, bounded());

/** Reads what is left of a body, bounded: `{bytes, error, timedOut}`; never hangs the suite. */
async function drain(reader, limitMs = LIMIT_MS) {
  const chunks = [];
  let error = null;
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; reader.cancel().catch(() => {}); }, limitMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
    }
  } catch (e) {
    error = e;
  } finally {
    clearTimeout(timer);
  }
  return { bytes: Buffer.concat(chunks), error, timedOut };
}

/** Reads until `text` holds `until` (bounded); returns the text so far. */
async function readUntil(reader, until, text = '') {
  const decoder = new TextDecoder();
  for (let i = 0; i < 100 && !text.includes(until); i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

/** A whoami over the legacy transport with the official SDK client. */
const legacyWhoami = (id, key) => legacyWhoamiVia(`${gw.base}/sse/${id}`, key);

/** `tools/call whoami` on a stateless JSON upstream, raw: {status, seen (the upstream's headers)}. */
async function rawWhoami(upstream, key) {
  const r = await mcpAnswer(gw, `/mcp/${upstream}`, key, callTool(1, 'whoami'), {}, bounded());
  if (r.status !== 200) return { status: r.status, text: r.text };
  return { status: r.status, seen: JSON.parse(r.json.result.content[0].text) };
}

/** The legacy event stream of `faulty-legacy`, opened raw with `key`. */
const openLegacy = (key, init = bounded()) => fetch(gw.base + '/sse/faulty-legacy', { headers: { authorization: `Bearer ${key}` }, ...init });

/** Waits (up to 5 s) for the legacy upstream's open streams to fall to `baseline`; returns the count. */
async function streamsBackTo(baseline) {
  let open = up.legacy.openStreams();
  for (let i = 0; i < 50 && open > baseline; i++) {
    await sleep(100);
    open = up.legacy.openStreams();
  }
  return open;
}

before(async () => {
  up.faulty = await startFaultyStreamable({ check: goodHeaders });
  up.legacy = await startFaultyLegacy({ check: goodHeaders });
  up.tickets = await startStreamable({ name: 'tickets', stateless: true, json: true, check: goodHeaders });
  up.wide = await startStreamable({ name: 'wide', stateless: true, json: true, check: () => true });
  ({ as, mcp: oauthMcp } = await startOAuthPeers({ accessTokenTtl: 60 }));
  gw = await startGateway({ UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS) });
  gw.track(Object.values(SECRETS));

  const headers = { 'X-API-KEY': '{{user.api_key}}', 'X-Tenant': '{{secret.tenant}}' };
  const userFields = [{ name: 'api_key', label: 'Your API key' }];
  await putUpstream(gw, 'faulty', { url: up.faulty.url, headers, user_fields: userFields });
  await putUpstream(gw, 'faulty-legacy', { url: up.legacy.url, transport: 'sse', headers });
  await putUpstream(gw, 'tickets', { url: up.tickets.url, headers, user_fields: userFields });
  await putUpstream(gw, 'oauthy', { url: oauthMcp.url, oauth: {} });
  assert.equal((await gw.admin('PUT', '/secrets/tenant', { value: SECRETS.tenant })).status, 204);
  assert.equal((await gw.admin('PUT', '/subjects/rita/secrets/api_key', { value: SECRETS.rita })).status, 204);
  keys.rita = (await newKey(gw, 'rita', ['faulty', 'faulty-legacy', 'tickets'])).key;
});

after(async () => {
  // OAuth values the gateway held: they must not be in its log either.
  gw?.track(oauthSecrets(as, oauthMcp));
  for (const s of Object.values(up)) s.close();
  await stopOAuthPeers(as, oauthMcp);
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

test('the log scan every gateway runs at stop() finds what it must, and only that', () => {
  const link = 'mabl_' + 'a'.repeat(64) + '_' + 'B'.repeat(43);
  const log = [
    '[wrangler:info] Ready on http://127.0.0.1:1',
    `[wrangler:info] GET /connect/${link} 200 OK (3ms)`,
    'mcp-authbridge: refresh failed: bad value s3cr3t-value-1',
    'a value split\nacross-lines-9',
  ].join('\n');
  const tracked = new Map([['s3cr3t-value-1', 'secret'], [link, 'link'], ['split\nacross', 'secret'], ['never-logged-42', 'secret']]);
  const found = scanLog(log, tracked);
  assert.equal(found.length, 2, found.join('\n'));
  assert.ok(found.every((f) => !f.includes('s3cr3t-value-1')), 'findings do not quote the secret');
  assert.equal(scanLog(log + `\nconnect_url: http://x/connect/${link}`, tracked).length, 3, 'a link outside the access log is found');
});

test('Streamable HTTP: the upstream drops mid-SSE: the client gets the events sent, then a broken stream; the next request works', async () => {
  const r = await post('/mcp/faulty', keys.rita, callTool(11, 'drop_after', { steps: 3 }, { progressToken: 'drop-1' }));
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const out = await drain(r.body.getReader());
  assert.equal(out.timedOut, false, 'the stream ended: it did not hang');
  const messages = sseData(out.bytes.toString('utf8'));
  assert.deepEqual(messages.map((m) => [m.method, m.params.progress]), [1, 2, 3].map((i) => ['notifications/progress', i]),
    'the events sent before the drop, whole, and nothing else');
  assert.ok(out.error, 'the stream breaks where the upstream broke: it does not end as if complete');
  // The gateway goes on serving, on the same upstream.
  assert.equal((await whoamiVia(gw.base + '/mcp/faulty', keys.rita))['x-api-key'], SECRETS.rita);
});

test('legacy HTTP+SSE: the upstream drops the stream after the endpoint and a message: the client gets them, then a broken stream; a new stream works', async () => {
  const stream = await openLegacy(keys.rita);
  assert.equal(stream.status, 200);
  const reader = stream.body.getReader();
  let text = await readUntil(reader, '\n\n');
  const endpoint = text.match(/^data: (\/sse\/faulty-legacy\/messages\?s=\S+)$/m)?.[1];
  assert.ok(endpoint, text);
  const ping = await post(endpoint, keys.rita, { jsonrpc: '2.0', id: 'before-drop', method: 'ping' });
  assert.equal(ping.status, 202);
  await ping.text();
  text = await readUntil(reader, '"before-drop"', text);
  assert.ok(text.includes('"before-drop"'), 'the answer came on the stream');
  assert.equal(up.legacy.openStreams(), 1);
  up.legacy.dropStreams();
  const rest = await drain(reader);
  assert.equal(rest.timedOut, false, 'the stream ended: it did not hang');
  assert.ok(rest.error, 'the client sees the stream break');
  // Its message URL now leads nowhere upstream: relayed as the upstream says it (404).
  const orphan = await post(endpoint, keys.rita, { jsonrpc: '2.0', id: 2, method: 'ping' });
  assert.equal(orphan.status, 404);
  await orphan.text();
  assert.equal((await legacyWhoami('faulty-legacy', keys.rita))['x-api-key'], SECRETS.rita);
});

test('Streamable HTTP: a malformed answer (junk, non-UTF-8, cut JSON) is relayed byte for byte', async () => {
  const cases = [
    ['text/event-stream', Buffer.concat([
      Buffer.from('event: message\ndata: {not json\n\n'),
      Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x0d, 0x0a, 0x0d]),
      Buffer.from('data: \u00e9\u0000\n\nretry: x\nid: \u2028\n\n: unterminated'),
    ])],
    ['application/json', Buffer.from('{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"cut')],
    ['text/event-stream', Buffer.from('data: ' + 'y'.repeat(300_000))],
  ];
  for (const [contentType, body] of cases) {
    up.faulty.setFault({ headers: { 'content-type': contentType }, body });
    const r = await post('/mcp/faulty', keys.rita, { jsonrpc: '2.0', id: 5, method: 'tools/list' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), contentType);
    const out = await drain(r.body.getReader());
    assert.equal(out.timedOut, false);
    assert.equal(out.error, null);
    assert.ok(out.bytes.equals(body), `${contentType}: ${out.bytes.length} bytes relayed of ${body.length}`);
  }
  up.faulty.setFault(null);
  assert.equal((await whoamiVia(gw.base + '/mcp/faulty', keys.rita))['x-api-key'], SECRETS.rita);
});

test('legacy HTTP+SSE: a bad endpoint event is a 502 with the reason, a stalled stream a 504; junk before a good endpoint passes', async () => {
  const otherPort = await freePort();
  const sse = { 'content-type': 'text/event-stream' };
  // Streams that earlier SDK clients closed may still be open upstream: the runtime notices a
  // client has gone only when it next writes to it, and the SDK's legacy server sends nothing
  // on an idle stream. Count from here.
  const baseline = up.legacy.openStreams();
  const cases = [
    ['on another origin', 'event: endpoint\ndata: https://evil.example/messages?sessionId=1\n\n', /another origin/],
    ['on another port of the same host', `event: endpoint\ndata: http://127.0.0.1:${otherPort}/messages?sessionId=1\n\n`, /another origin/],
    ['protocol-relative', 'event: endpoint\ndata: //evil.example/messages\n\n', /another origin/],
    ['not a URL', 'event: endpoint\ndata: http://[::1/messages\n\n', /not a URL/],
    ['never sent, the stream ends', Buffer.from([0xff, 0xfe, 0x0a, 0x0a, 0x3a, 0x20, 0x68, 0x69, 0x0a, 0x0a]), /ended before its endpoint event/],
    ['never sent, 70 KiB of junk', 'data: ' + 'z'.repeat(70 * 1024), /first 64 KiB/],
  ];
  for (const [what, body, reason] of cases) {
    up.legacy.setFault({ headers: sse, body, hold: !what.includes('ends') });
    const r = await openLegacy(keys.rita);
    const text = await r.text();
    assert.equal(r.status, 502, `${what}: ${r.status} ${text.slice(0, 200)}`);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    const answer = JSON.parse(text);
    assert.equal(answer.error.data.reason, 'upstream_protocol_error', what);
    assert.match(answer.error.message, reason, what);
    assert.ok(!text.includes('evil.example') && !text.includes('127.0.0.1'), `${what}: the endpoint is not echoed`);
  }

  // Headers, then nothing: the gateway does not wait forever for the endpoint.
  up.legacy.setFault({ headers: sse, body: ': keep-alive\n\n', hold: true });
  const started = Date.now();
  const stalled = await openLegacy(keys.rita);
  assert.equal(stalled.status, 504);
  assert.equal((await stalled.json()).error.data.reason, 'upstream_timeout');
  assert.ok(Date.now() - started < LIMIT_MS);

  // Junk that is not an endpoint event passes as it came; the endpoint after it is rewritten.
  const junk = Buffer.from([0x3a, 0xff, 0xfe, 0x0a, 0x64, 0x61, 0x74, 0x61, 0x3a, 0x80, 0x0a, 0x0a]);
  up.legacy.setFault({ headers: sse, body: Buffer.concat([junk, Buffer.from('event: endpoint\ndata: /messages?sessionId=1\n\n')]), hold: true, keepAlive: 200 });
  const ctl = new AbortController();
  const ok = await openLegacy(keys.rita, { signal: ctl.signal });
  assert.equal(ok.status, 200);
  const reader = ok.body.getReader();
  let head = Buffer.alloc(0);
  for (let i = 0; i < 50 && !head.includes('messages?s='); i++) {
    const { value, done } = await reader.read();
    if (done) break;
    head = Buffer.concat([head, Buffer.from(value)]);
  }
  ctl.abort();
  assert.ok(head.subarray(0, junk.length).equals(junk), 'the junk event, byte for byte');
  assert.match(head.subarray(junk.length).toString(), /^event: endpoint\ndata: \/sse\/faulty-legacy\/messages\?s=v1\./);

  // The streams the gateway refused are closed upstream too, and so is the one the client left
  // (the runtime notices a client has gone at the next write: here, the next keep-alive).
  const open = await streamsBackTo(baseline);
  assert.ok(open <= baseline, `${open - baseline} upstream streams left open`);
  up.legacy.setFault(null);
  assert.equal((await legacyWhoami('faulty-legacy', keys.rita))['x-api-key'], SECRETS.rita);
});

test('a client that goes away mid-stream: the upstream stream is closed too, at its next keep-alive', async () => {
  // The same raw stream behind both routes: /mcp/ relays it untouched, /sse/ rewrites it.
  await putUpstream(gw, 'faulty-raw', { url: up.legacy.url, headers: { 'X-API-KEY': '{{user.api_key}}', 'X-Tenant': '{{secret.tenant}}' } });
  const key = (await newKey(gw, 'rita', ['faulty-raw', 'faulty-legacy'])).key;
  up.legacy.setFault({ headers: { 'content-type': 'text/event-stream' }, body: 'event: endpoint\ndata: /messages?sessionId=1\n\n', hold: true, keepAlive: 200 });
  for (const path of ['/mcp/faulty-raw', '/sse/faulty-legacy']) {
    const baseline = up.legacy.openStreams(); // see the test above
    const ctl = new AbortController();
    const r = await fetch(gw.base + path, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' }, signal: ctl.signal });
    assert.equal(r.status, 200, path);
    await r.body.getReader().read();
    assert.equal(up.legacy.openStreams(), baseline + 1, path);
    ctl.abort();
    const open = await streamsBackTo(baseline);
    assert.ok(open <= baseline, `${path}: the upstream stream was closed after the client left`);
  }
  up.legacy.setFault(null);
});

test('upstream 5xx: status and body relayed, no secret added, upstream cookies dropped, connection state untouched', async () => {
  const secrets = [...Object.values(SECRETS), keys.rita, gw.adminToken];
  for (const [status, extra] of [[500, {}], [502, {}], [503, { 'retry-after': '7' }]]) {
    const body = JSON.stringify({ error: `upstream failed with ${status}`, trace: 'abc-123' });
    up.faulty.setFault({
      status,
      headers: { 'content-type': 'application/json', 'set-cookie': 'upstream_session=leak; Path=/', 'www-authenticate': 'Bearer realm="upstream"', ...extra },
      body,
    });
    const r = await post('/mcp/faulty', keys.rita, { jsonrpc: '2.0', id: 9, method: 'tools/list' });
    const text = await r.text();
    assert.equal(r.status, status);
    assert.equal(text, body, 'the upstream body, as it came');
    assert.equal(r.headers.get('set-cookie'), null);
    assert.equal(r.headers.get('www-authenticate'), null);
    assert.equal(r.headers.get('retry-after'), extra['retry-after'] ?? null);
    const everything = text + JSON.stringify([...r.headers]);
    for (const s of secrets) assert.ok(!everything.includes(s), `${status}: a secret in the answer`);
  }
  // The legacy stream's 5xx is relayed the same way.
  up.legacy.setFault({ status: 503, headers: { 'content-type': 'text/plain' }, body: 'maintenance' });
  const legacy = await openLegacy(keys.rita);
  assert.equal(legacy.status, 503);
  assert.equal(await legacy.text(), 'maintenance');
  up.legacy.setFault(null);

  // A subject whose value the upstream refused stays `connection_required` through a 5xx: only
  // a real answer to its values says they work again.
  up.faulty.setFault(null);
  assert.equal((await gw.admin('PUT', '/subjects/zed/secrets/api_key', { value: 'zed-stale-' + rand() })).status, 204);
  const zed = (await newKey(gw, 'zed', ['faulty'])).key;
  const refused = await post('/mcp/faulty', zed, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
  assert.equal(refused.status, 403);
  gw.trackLink((await refused.json()).error.data.connect_url);
  up.faulty.setFault({ status: 503, headers: { 'content-type': 'application/json' }, body: '{"error":"down"}' });
  const down = await post('/mcp/faulty', zed, { jsonrpc: '2.0', id: 2, method: 'tools/list' });
  assert.equal(down.status, 503);
  await down.text();
  up.faulty.setFault(null);
  await sleep(200);
  const conns = await gw.admin('GET', '/connections?subject=zed');
  assert.deepEqual(conns.json.items.map((c) => c.status), ['connection_required']);
});

test('wrangler dev restarted mid-flow: keys, secrets, connections, links and a pending OAuth authorization survive; an open stream ends', async () => {
  // Before: a connection made on a connect page (sam), a link not yet used (tom), an OAuth
  // connection (vic), an OAuth authorization half-way (uma: at the authorization server), a
  // revoked key, and a legacy stream open through the gateway.
  for (const s of ['sam', 'tom']) keys[s] = (await newKey(gw, s, ['tickets'])).key;
  for (const s of ['uma', 'vic']) keys[s] = (await newKey(gw, s, ['oauthy'])).key;
  const samLink = (await newLink(gw, 'sam', 'tickets')).url;
  const samPage = await openPage(samLink);
  const samDone = await submit(gw, samLink, { csrf: samPage.csrf, api_key: SECRETS.samTyped }, samPage.cookie);
  assert.equal(samDone.status, 200);
  await samDone.text();
  const tomLink = (await newLink(gw, 'tom', 'tickets')).url;
  const vicLink = (await newLink(gw, 'vic', 'oauthy')).url;
  const vic = await finishOAuthConnect(gw, as, await startOAuthConnect(gw, vicLink), 'vic');
  assert.equal(vic.status, 200, vic.text);
  const umaLink = (await newLink(gw, 'uma', 'oauthy')).url;
  const umaPending = await startOAuthConnect(gw, umaLink);
  const revoked = await newKey(gw, 'rita', ['tickets']);
  assert.equal((await gw.admin('DELETE', `/keys/${revoked.id}`)).status, 204);
  const ritaKeys = (await gw.admin('GET', '/keys?subject=rita')).json.items.map((k) => k.id).sort();
  assert.equal((await rawWhoami('tickets', keys.sam)).seen['x-api-key'], SECRETS.samTyped);

  const ctl = new AbortController();
  const stream = await openLegacy(keys.rita, { signal: ctl.signal });
  assert.equal(stream.status, 200);
  const reader = stream.body.getReader();
  assert.match(await readUntil(reader, '\n\n'), /event: endpoint/);

  await gw.restart();

  const ended = await drain(reader);
  assert.equal(ended.timedOut, false, 'the stream open during the restart ended, it did not hang');
  ctl.abort();

  // Operator and subject secrets, and the value typed on the connect page.
  const rita = await rawWhoami('tickets', keys.rita);
  assert.equal(rita.status, 200, rita.text);
  assert.equal(rita.seen['x-api-key'], SECRETS.rita);
  assert.equal(rita.seen['x-tenant'], SECRETS.tenant);
  assert.equal((await rawWhoami('tickets', keys.sam)).seen['x-api-key'], SECRETS.samTyped);
  // Keys: the same ones, the revoked one still revoked.
  assert.deepEqual((await gw.admin('GET', '/keys?subject=rita')).json.items.map((k) => k.id).sort(), ritaKeys);
  assert.equal((await rawWhoami('tickets', revoked.key)).status, 401);
  // The used link is still used; the unused one still works.
  assert.equal((await openPage(samLink)).status, 410);
  const tomPage = await openPage(tomLink);
  assert.equal(tomPage.status, 200);
  const tomDone = await submit(gw, tomLink, { csrf: tomPage.csrf, api_key: SECRETS.tomTyped }, tomPage.cookie);
  assert.equal(tomDone.status, 200);
  await tomDone.text();
  assert.equal((await rawWhoami('tickets', keys.tom)).seen['x-api-key'], SECRETS.tomTyped);
  // OAuth: the stored connection works, and the authorization begun before the restart ends well.
  assert.equal((await whoamiVia(gw.base + '/mcp/oauthy', keys.vic)).sub, 'vic');
  const uma = await finishOAuthConnect(gw, as, umaPending, 'uma');
  assert.equal(uma.status, 200, uma.text);
  assert.equal((await whoamiVia(gw.base + '/mcp/oauthy', keys.uma)).sub, 'uma');
  for (const [subject, upstream] of [['sam', 'tickets'], ['tom', 'tickets'], ['vic', 'oauthy'], ['uma', 'oauthy']]) {
    const conns = await gw.admin('GET', `/connections?subject=${subject}`);
    assert.deepEqual(conns.json.items.map((c) => [c.upstream, c.status]), [[upstream, 'connected']], subject);
  }
});

test('wrangler dev killed (SIGKILL) during concurrent writes: every acknowledged write survives, nothing half-written', async (t) => {
  const values = range(20).map((i) => `crash-${i}-${rand()}`);
  for (const v of values) GOOD.add(v);
  const settled = [];
  const attempt = (kind, i, request) => request.then(
    (r) => { settled.push(kind); return { kind, i, status: r.status, json: r.json }; },
    (error) => { settled.push(kind); return { kind, i, error }; },
  );
  const writes = range(20).flatMap((i) => [
    attempt('key', i, gw.admin('POST', '/keys', { subject: 'crash', upstreams: ['tickets'], label: `k${i}` })),
    attempt('secret', i, gw.admin('PUT', '/subjects/crash/secrets/api_key', { value: values[i] })),
  ]);
  for (let i = 0; i < 400 && settled.length < 8; i++) await sleep(5);
  await gw.restart({ signal: 'SIGKILL' });
  const results = await Promise.all(writes);
  const ackedKeys = results.filter((r) => r.kind === 'key' && r.status === 201).map((r) => r.json);
  const ackedSecrets = results.filter((r) => r.kind === 'secret' && r.status === 204);
  assert.ok(results.every((r) => r.error || [201, 204].includes(r.status)), 'answers are acknowledgements or lost connections');
  t.diagnostic(`acknowledged before the kill: ${ackedKeys.length}/20 keys, ${ackedSecrets.length}/20 secret writes`);

  const listed = (await gw.admin('GET', '/keys?subject=crash')).json.items;
  const listedIds = new Set(listed.map((k) => k.id));
  for (const k of ackedKeys) assert.ok(listedIds.has(k.id), 'an acknowledged key is listed');
  for (const k of listed) {
    assert.equal(k.subject, 'crash');
    assert.deepEqual(k.upstreams, ['tickets']);
  }
  // Each acknowledged key works, with a whole secret value: one of those written, if any was.
  for (const k of ackedKeys) {
    const r = await rawWhoami('tickets', k.key);
    if (ackedSecrets.length) {
      assert.equal(r.status, 200, r.text);
      assert.ok(values.includes(r.seen['x-api-key']), 'the secret is one written value, whole');
    } else {
      assert.ok(r.status === 200 ? values.includes(r.seen['x-api-key']) : r.status === 403, r.text);
    }
  }
  // Every listed key is whole: it can be revoked by its id, and then it is gone.
  for (const k of listed) assert.equal((await gw.admin('DELETE', `/keys/${k.id}`)).status, 204, `revoke ${k.id}`);
  assert.deepEqual((await gw.admin('GET', '/keys?subject=crash')).json.items, []);
  for (const k of ackedKeys) assert.equal((await rawWhoami('tickets', k.key)).status, 401);
});

test('concurrent admin writes to one subject: 20 secrets, 20 keys and 10 links at once, all visible and consistent', async () => {
  const subject = 'conc@example.com';
  const values = range(20).map((i) => `conc-${i}-${rand()}`);
  await putUpstream(gw, 'wide', {
    url: up.wide.url,
    headers: Object.fromEntries(range(20).map((i) => [`X-S${i}`, `{{user.s${i}}}`])),
    user_fields: [{ name: 's0', label: 'S0' }],
  });
  const answers = await Promise.all([
    ...values.map((value, i) => gw.admin('PUT', `/subjects/${subject}/secrets/s${i}`, { value })),
    ...range(20).map((i) => gw.admin('POST', '/keys', { subject, upstreams: ['wide'], label: `k${i}` })),
    ...range(10).map(() => gw.admin('POST', '/links', { subject, upstream: 'wide' })),
  ]);
  assert.deepEqual(answers.map((a) => a.status), [...range(20).map(() => 204), ...range(30).map(() => 201)]);
  const created = answers.slice(20, 40).map((a) => a.json);
  const links = answers.slice(40).map((a) => a.json.url);
  assert.equal(new Set(created.map((k) => k.id)).size, 20);
  assert.equal(new Set(links).size, 10);

  const listed = (await gw.admin('GET', `/keys?subject=${encodeURIComponent(subject)}`)).json.items;
  assert.deepEqual(listed.map((k) => k.id).sort(), created.map((k) => k.id).sort());
  assert.deepEqual(listed.map((k) => k.label).sort(), range(20).map((i) => `k${i}`).sort());
  const seen = await Promise.all(created.map((k) => rawWhoami('wide', k.key)));
  for (const r of seen) {
    assert.equal(r.status, 200, r.text);
    for (const i of range(20)) assert.equal(r.seen[`x-s${i}`], values[i], `s${i}`);
  }
  for (const url of links) {
    const page = await openPage(url);
    assert.equal(page.status, 200);
    assert.match(page.html, /conc@example\.com/);
  }
});

test('parallel PUTs of one upstream, and of one subject secret, end with one whole write, never a mix', async () => {
  const N = 20;
  const shared = range(N).map((i) => `shared-${i}-${rand()}`);
  const body = (i) => ({
    url: `${up.wide.url}?v=${i}`,
    headers: { 'X-Version': `v${i}`, 'X-Check': `c${i}`, 'X-Shared': '{{user.shared}}' },
    user_fields: [{ name: 'shared', label: `Field ${i}` }],
  });
  const answers = await Promise.all([
    ...range(N).map((i) => gw.admin('PUT', '/upstreams/race', body(i))),
    ...shared.map((value) => gw.admin('PUT', '/subjects/racer/secrets/shared', { value })),
  ]);
  assert.deepEqual(answers.map((a) => a.status), [...range(N).map(() => 200), ...range(N).map(() => 204)]);

  const stored = (await gw.admin('GET', '/upstreams/race')).json;
  const i = Number(stored.headers['X-Version'].slice(1));
  assert.ok(Number.isInteger(i) && i >= 0 && i < N, JSON.stringify(stored));
  assert.equal(stored.url, body(i).url);
  assert.deepEqual(stored.headers, body(i).headers);
  assert.equal(stored.user_fields[0].label, `Field ${i}`);
  assert.equal((await gw.admin('GET', '/upstreams')).json.items.filter((u) => u.id === 'race').length, 1);

  const key = (await newKey(gw, 'racer', ['race'])).key;
  const r = await rawWhoami('race', key);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.seen['x-version'], `v${i}`);
  assert.equal(r.seen['x-check'], `c${i}`);
  assert.ok(shared.includes(r.seen['x-shared']), 'the subject secret is one written value, whole');
});

// Last in this file: it leaves the gateway running under the new key alone.
test('ENCRYPTION_KEY rotation: "B,A" opens what A sealed and re-seals it under B (by the reseal endpoint, or by a store when next used); then B alone works', async () => {
  const A = gw.encryptionKey;
  const B = randomBytes(32).toString('base64');
  const typed = { named: 'rot-named-' + rand(), lazy: 'rot-lazy-' + rand(), idle: 'rot-idle-' + rand() };
  for (const v of Object.values(typed)) GOOD.add(v);
  gw.track(Object.values(typed));
  const subjects = ['rot-named', 'rot-lazy', 'rot-idle', 'rot-oauth', 'rot-pending'];
  for (const s of subjects) keys[s] = (await newKey(gw, s, s.includes('oauth') || s.includes('pending') ? ['oauthy'] : ['tickets'])).key;

  // Under A: subject secrets set by the admin API (named, idle), a value typed on a connect page
  // (lazy), an OAuth connection (oauth), an OAuth authorization half-way (pending), an operator
  // secret and an operator OAuth client secret in KV.
  for (const s of ['named', 'idle']) {
    assert.equal((await gw.admin('PUT', `/subjects/rot-${s}/secrets/api_key`, { value: typed[s] })).status, 204);
  }
  const lazyLink = (await newLink(gw, 'rot-lazy', 'tickets')).url;
  const lazyPage = await openPage(lazyLink);
  const lazyDone = await submit(gw, lazyLink, { csrf: lazyPage.csrf, api_key: typed.lazy }, lazyPage.cookie);
  assert.equal(lazyDone.status, 200, await lazyDone.text());
  const oauthLink = (await newLink(gw, 'rot-oauth', 'oauthy')).url;
  assert.equal((await finishOAuthConnect(gw, as, await startOAuthConnect(gw, oauthLink), 'rot-oauth')).status, 200);
  const pendingLink = (await newLink(gw, 'rot-pending', 'oauthy')).url;
  const pending = await startOAuthConnect(gw, pendingLink);
  await putUpstream(gw, 'rot-client', { url: oauthMcp.url, oauth: { client_id: 'rot-client', client_secret: 'rot-client-secret-' + rand(), authorization_server: as.issuer } });
  for (const s of ['named', 'lazy', 'idle']) assert.equal((await rawWhoami('tickets', keys[`rot-${s}`])).seen['x-api-key'], typed[s]);

  // "B,A": everything still opens. rot-lazy's store re-seals itself on this first use.
  await gw.restart({ vars: { ENCRYPTION_KEY: `${B},${A}` } });
  assert.equal((await rawWhoami('tickets', keys['rot-lazy'])).seen['x-api-key'], typed.lazy);
  const reseal = (subjectList) => gw.admin('POST', '/reseal', { subjects: subjectList });
  const first = await reseal(['rot-named', 'rot-oauth', 'rot-pending']);
  assert.equal(first.status, 200, first.text);
  assert.equal(first.json.config.unreadable, 0, first.text);
  assert.ok(first.json.config.resealed >= 2, `the tenant secret and the client secret at least: ${first.text}`);
  assert.deepEqual(first.json.subjects['rot-named'], { resealed: 1, current: 0, unreadable: 0 });
  assert.ok(first.json.subjects['rot-oauth'].resealed >= 1 && first.json.subjects['rot-oauth'].unreadable === 0, first.text);
  assert.ok(first.json.subjects['rot-pending'].resealed >= 1 && first.json.subjects['rot-pending'].unreadable === 0, first.text);
  assert.equal((await rawWhoami('tickets', keys['rot-named'])).seen['x-api-key'], typed.named);
  assert.equal((await whoamiVia(gw.base + '/mcp/oauthy', keys['rot-oauth'])).sub, 'rot-oauth');
  const again = await reseal(['rot-named', 'rot-lazy', 'rot-oauth', 'rot-pending']);
  assert.equal(again.json.config.resealed, 0, again.text);
  for (const s of ['rot-named', 'rot-lazy', 'rot-oauth', 'rot-pending']) {
    assert.equal(again.json.subjects[s].resealed, 0, `${s} was already under B: ${again.text}`);
    assert.ok(again.json.subjects[s].current >= 1, again.text);
  }
  assert.equal(new Set([first.json.key_id, again.json.key_id]).size, 1);

  // B alone: what was re-sealed works, the OAuth authorization begun under A completes; the one
  // subject neither used nor named (rot-idle) is the documented limit: its value stays under A,
  // its requests fail (500), and the reseal endpoint reports it unreadable.
  await gw.restart({ vars: { ENCRYPTION_KEY: B } });
  for (const s of ['named', 'lazy']) {
    const r = await rawWhoami('tickets', keys[`rot-${s}`]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.seen['x-api-key'], typed[s]);
    assert.equal(r.seen['x-tenant'], SECRETS.tenant);
  }
  assert.equal((await whoamiVia(gw.base + '/mcp/oauthy', keys['rot-oauth'])).sub, 'rot-oauth');
  const finished = await finishOAuthConnect(gw, as, pending, 'rot-pending');
  assert.equal(finished.status, 200, finished.text);
  assert.equal((await whoamiVia(gw.base + '/mcp/oauthy', keys['rot-pending'])).sub, 'rot-pending');
  const idle = await rawWhoami('tickets', keys['rot-idle']);
  assert.equal(idle.status, 500, idle.text);
  assert.ok(!idle.text.includes(typed.idle));
  const report = await reseal(['rot-idle', 'rot-named']);
  assert.equal(report.json.config.unreadable, 0, report.text);
  assert.deepEqual(report.json.subjects['rot-idle'], { resealed: 0, current: 0, unreadable: 1 });
  assert.equal(report.json.subjects['rot-named'].unreadable, 0);
  assert.equal(report.json.key_id, first.json.key_id);
});
