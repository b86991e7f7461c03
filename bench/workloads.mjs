// What the benchmark sends: the MCP requests, the four paths to the upstream, the Workers and the
// state seeded into them, and the workloads — tools/call (JSON), tools/list, an SSE answer of
// 20 events, legacy HTTP+SSE round trips, throughput, and the OAuth refresh storm. Each
// workload sends the same requests over every path, round-robin in shuffled order. Besides the
// four paths, a fifth through mcp-authbridge: the same tools/call with the gateway's own OAuth
// access token (an upstream with `sign_in: "self"`) instead of a key, measured beside the key
// path in a workload of its own.
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, request, expectOk, keepAlive, freePort, startWorker, firstRequest, median, shuffle, sleep, cpuMs, throughput as closedLoops } from './measure.mjs';
import { signInByHttp, tokenRequest } from '../tests/e2e/harness.mjs';

export const CONCURRENCY = [1, 16, 64];
export const STORM = 100;
export const TOKEN_TTL = 5; // seconds: the storm's access tokens
export const EVENTS = 20;
const EVENT_GAP_MS = 2;

/** Fresh for every benchmark process. */
export const SECRETS = {
  upstreamKey: 'upk_' + randomBytes(16).toString('hex'),
  adminToken: 'adm_' + randomBytes(16).toString('hex'),
  seedToken: 'seed_' + randomBytes(16).toString('hex'),
  encryptionKey: randomBytes(32).toString('base64'),
};

export const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
export const call = (id, name, args, meta) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) } });
export const bearer = (k) => ({ ...MCP_HEADERS, authorization: `Bearer ${k}` });

// ---------------------------------------------------------------------------------------------
// The Workers, and the paths.

/** The three Workers, each with its config, `--var`s and persisted state under `state`. */
export function workers(upstream, state) {
  const ws = {
    'mcp-authbridge': { config: path.join(ROOT, 'wrangler.toml'), vars: { ADMIN_TOKEN: SECRETS.adminToken, ENCRYPTION_KEY: SECRETS.encryptionKey, ALLOW_PRIVATE_UPSTREAMS: 'true' } },
    'JS passthrough': { config: path.join(ROOT, 'bench/passthrough/wrangler.toml'), vars: { UPSTREAM: upstream.origin, API_KEY: SECRETS.upstreamKey } },
    'JS same-work': { config: path.join(ROOT, 'bench/samework/wrangler.toml'), vars: { UPSTREAM: upstream.origin, SEED_TOKEN: SECRETS.seedToken } },
  };
  for (const [name, w] of Object.entries(ws)) w.persist = path.join(state, name.replace(/\W+/g, '-'));
  return ws;
}

/** Starts one of `workers()` under its own `wrangler dev`, on free loopback ports. */
export async function start(name, w) {
  const port = await freePort();
  const inspector = await freePort();
  return startWorker(name, {
    cwd: path.dirname(w.config),
    port,
    persist: w.persist,
    flags: ['--config', w.config, '--inspector-port', String(inspector)],
    vars: w.vars,
    env: { PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH}`, CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1' },
    logFile: path.join(w.persist, `${name}.log`),
  });
}

/** The first request to each started Worker (the cold one), which also finds its entry socket. */
export async function coldRequests(started, keys) {
  const cold = {};
  cold['mcp-authbridge'] = await firstRequestOf(started['mcp-authbridge'], '/mcp/bench-json', keys.ours);
  cold['JS passthrough'] = await firstRequestOf(started['JS passthrough'], '/json', 'anything');
  cold['JS same-work'] = await firstRequestOf(started['JS same-work'], '/json', keys.js);
  return cold;
}
const firstRequestOf = (w, pathname, key) => firstRequest(w, pathname, bearer(key), call(0, 'echo', { text: 'cold' }));

/** The four paths to the upstream: {name, agent, json: {url, headers}, stream, legacy}. */
export function paths(upstream, started, keys) {
  const ours = started['mcp-authbridge'];
  const pt = started['JS passthrough'];
  const sw = started['JS same-work'];
  const direct = { 'x-api-key': SECRETS.upstreamKey };
  return [
    { name: 'direct', agent: keepAlive(), json: { url: `${upstream.origin}/json`, headers: { ...MCP_HEADERS, ...direct } },
      stream: { url: `${upstream.origin}/stream`, headers: { ...MCP_HEADERS, ...direct } }, legacy: { url: `${upstream.origin}/legacy/sse`, headers: direct } },
    { name: 'mcp-authbridge', agent: ours.agent, json: { url: `${ours.base}/mcp/bench-json`, headers: bearer(keys.ours) },
      stream: { url: `${ours.base}/mcp/bench-stream`, headers: bearer(keys.ours) }, legacy: { url: `${ours.base}/sse/bench-legacy`, headers: { authorization: `Bearer ${keys.ours}` } } },
    { name: 'JS passthrough', agent: pt.agent, json: { url: `${pt.base}/json`, headers: bearer('client-key') },
      stream: { url: `${pt.base}/stream`, headers: bearer('client-key') }, legacy: { url: `${pt.base}/legacy/sse`, headers: { authorization: 'Bearer client-key' } } },
    { name: 'JS same-work', agent: sw.agent, json: { url: `${sw.base}/json`, headers: bearer(keys.js) },
      stream: { url: `${sw.base}/stream`, headers: bearer(keys.js) }, legacy: { url: `${sw.base}/legacy/sse`, headers: { authorization: `Bearer ${keys.js}` } } },
  ];
}

export const TOKEN_PATH = 'mcp-authbridge, OAuth access token';

/**
 * The fifth path: through mcp-authbridge (same workerd, same agent as its key path) to the same
 * upstream, as an upstream with `sign_in: "self"`, with the gateway's own access token.
 */
export function tokenPath(started, keys) {
  const ours = started['mcp-authbridge'];
  return { name: TOKEN_PATH, agent: ours.agent, json: { url: `${ours.base}/mcp/bench-self`, headers: bearer(keys.access) } };
}

// ---------------------------------------------------------------------------------------------
// Workloads. Each returns, per path name, the times it measured.

/** Warms every path (JIT, connections) before measuring. */
export async function warm(paths) {
  for (const p of paths) for (let i = 0; i < 50; i++) expectOk(await request(p.agent, p.json.url, { method: 'POST', headers: p.json.headers, body: call(i, 'echo', { text: 'warm' }) }), `${p.name} warm`);
}

/** `n` tools/call (`workload` 'call') or tools/list ('list') per path: each request's time. */
export async function latency(paths, workload, n) {
  const times = Object.fromEntries(paths.map((p) => [p.name, []]));
  for (let i = 0; i < n; i++) {
    for (const p of shuffle(paths)) {
      const body = workload === 'list' ? { jsonrpc: '2.0', id: i, method: 'tools/list', params: {} } : call(i, 'echo', { text: `hello ${i}` });
      const r = expectOk(await request(p.agent, p.json.url, { method: 'POST', headers: p.json.headers, body }), `${p.name} ${workload}`);
      times[p.name].push(r.ms);
    }
  }
  return times;
}

/** `n` SSE answers of EVENTS progress events per path: each stream's median event delay, and its whole time. */
export async function sse(paths, n) {
  const perEvent = Object.fromEntries(paths.map((p) => [p.name, []]));
  const total = Object.fromEntries(paths.map((p) => [p.name, []]));
  for (let i = 0; i < n; i++) {
    for (const p of shuffle(paths)) {
      const delays = [];
      const r = expectOk(await request(p.agent, p.stream.url, {
        method: 'POST', headers: p.stream.headers, body: call(i, 'ticks', { count: EVENTS, gap_ms: EVENT_GAP_MS }, { progressToken: i }),
        onEvent: (_e, data, at) => {
          const msg = JSON.parse(data);
          if (msg.method === 'notifications/progress') delays.push(at - Number(msg.params.message));
        },
      }), `${p.name} sse`);
      if (delays.length !== EVENTS) throw new Error(`${p.name}: ${delays.length} of ${EVENTS} events`);
      perEvent[p.name].push(median(delays));
      total[p.name].push(r.ms);
    }
  }
  return { perEvent, total };
}

/**
 * The access-token path beside the key path: `n` tools/call each on direct, mcp-authbridge's key
 * path and `token`, round-robin in shuffled order (as `latency` does), after 50 warm-up calls of
 * `token`; then `n` calls of the key path alone and of `token` alone, for the CPU of the workerd
 * per request (both go to the same workerd, so each needs a window of its own). Returns
 * `{latency: {path name: times}, cpu: {path name: ms per request}}`.
 */
export async function accessToken(ours, paths, token, n) {
  const key = paths.find((p) => p.name === 'mcp-authbridge');
  const three = [paths.find((p) => p.name === 'direct'), key, token];
  for (let i = 0; i < 50; i++) expectOk(await request(token.agent, token.json.url, { method: 'POST', headers: token.json.headers, body: call(i, 'echo', { text: 'warm' }) }), `${token.name} warm`);
  const times = await latency(three, 'call', n);
  const cpu = {};
  for (const p of shuffle([key, token])) {
    const before = cpuMs(ours.workerd);
    for (let i = 0; i < n; i++) expectOk(await request(p.agent, p.json.url, { method: 'POST', headers: p.json.headers, body: call(i, 'echo', { text: `cpu ${i}` }) }), `${p.name} cpu`);
    cpu[p.name] = (cpuMs(ours.workerd) - before) / n;
  }
  return { latency: times, cpu };
}

/** Opens a legacy session; resolves with a function that makes one round trip on it. */
async function legacySession(p) {
  const pending = new Map();
  let endpoint;
  let res;
  const ready = new Promise((resolve, reject) => {
    request(p.agent, p.legacy.url, {
      headers: { ...p.legacy.headers, accept: 'text/event-stream' },
      onEvent: (event, data, _at, r) => {
        res = r;
        if (event === 'endpoint') { endpoint = new URL(data, p.legacy.url).toString(); resolve(); return; }
        const msg = JSON.parse(data);
        pending.get(msg.id)?.(msg);
      },
    }).catch(reject);
  });
  await ready;
  const post = async (msg) => {
    const answered = new Promise((resolve) => pending.set(msg.id, resolve));
    const t = performance.now();
    const r = await request(p.agent, endpoint, { method: 'POST', headers: { ...p.legacy.headers, 'content-type': 'application/json' }, body: msg });
    if (r.status !== 202) throw new Error(`${p.name} legacy post: ${r.status} ${r.body}`);
    const answer = await answered;
    pending.delete(msg.id);
    if (answer.error) throw new Error(`${p.name} legacy: ${JSON.stringify(answer.error)}`);
    return performance.now() - t;
  };
  await post({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  return { roundTrip: (i) => post(call(i, 'echo', { text: `legacy ${i}` })), close: () => res?.destroy() };
}

/** One legacy session per path, `n` round trips (POST, answer on the stream) each. */
export async function legacy(paths, n) {
  const times = Object.fromEntries(paths.map((p) => [p.name, []]));
  const sessions = new Map();
  for (const p of paths) sessions.set(p.name, await legacySession(p));
  for (let i = 0; i < n; i++) {
    for (const p of shuffle(paths)) times[p.name].push(await sessions.get(p.name).roundTrip(i));
  }
  for (const s of sessions.values()) s.close();
  return times;
}

/** Requests/s of tools/call (JSON) on one path, `concurrency` at once, for `ms`. */
export const throughput = (p, concurrency, ms) => closedLoops(p.name, concurrency, ms,
  (w, i) => request(p.agent, p.json.url, { method: 'POST', headers: p.json.headers, body: call(`${w}-${i}`, 'echo', { text: 'x' }) }));

/**
 * The refresh storm: once the access token got at `lastRefresh` (performance.now()) has expired,
 * STORM calls at once through mcp-authbridge to the OAuth upstream. Returns the figures and when the
 * storm's token was got.
 */
export async function refreshStorm(ours, keys, as, lastRefresh) {
  const wait = TOKEN_TTL * 1000 + 500 - (performance.now() - lastRefresh);
  if (wait > 0) await sleep(wait);
  const before = as.counts().refresh_grants;
  const t0 = performance.now();
  const storm = await Promise.all(Array.from({ length: STORM }, (_, i) => request(ours.agent, `${ours.base}/mcp/tickets`, { method: 'POST', headers: bearer(keys.storm), body: call(i, 'whoami', {}) })));
  const refreshed = performance.now();
  return {
    refreshed,
    result: {
      grants: as.counts().refresh_grants - before,
      ok: storm.filter((r) => r.status === 200).length,
      statuses: [...new Set(storm.map((r) => r.status))],
      wallMs: performance.now() - t0,
      p50: median(storm.map((r) => r.ms)),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Seeding: upstreams, values and keys, written once into persisted state.

/** One admin API call; throws unless it succeeded. */
export async function admin(base, token, method, p, body) {
  const r = await fetch(`${base}/admin/v1${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`admin ${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function connectOAuth(base, key, as) {
  const first = await fetch(`${base}/mcp/tickets`, { method: 'POST', headers: bearer(key), body: JSON.stringify(call(1, 'whoami', {})) });
  const link = JSON.parse(await first.text()).error.data.connect_url;
  const page = await fetch(link);
  const csrf = (await page.text()).match(/name="csrf" value="([^"]+)"/)[1];
  // The page sets the CSRF cookie and the one that makes this browser the link's owner.
  const cookies = (r) => r.headers.getSetCookie().map((c) => c.split(';')[0]);
  const cookie = cookies(page).join('; ');
  const go = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body: new URLSearchParams({ csrf }).toString(), redirect: 'manual' });
  if (go.status !== 303) throw new Error(`OAuth connect: ${go.status} ${await go.text()}`);
  const binding = cookies(go).join('; ');
  const callback = await as.completeLogin(go.headers.get('location'), { user: 'storm' });
  const done = await fetch(callback, { redirect: 'manual', headers: { cookie: binding } });
  if (done.status !== 200) throw new Error(`OAuth connect: ${done.status} ${await done.text()}`);
}

/** The gateway as `tests/e2e/harness.mjs`'s OAuth helpers want it; nothing here is logged by the bench. */
const gateway = (base) => ({ base, track: () => {} });

/**
 * The access token path's grant: an OAuth-only client signs in by HTTP as the e2e tests do
 * (register, GET /oauth/authorize, the consent form with its CSRF cookie and field and the
 * person's own API key, the code from the 302, POST /oauth/token). Sets `keys.client`,
 * `keys.access` and `keys.refresh`.
 */
async function signInSelf(base, keys) {
  const redirect = 'http://127.0.0.1:9/callback'; // never visited: the code is read off the 302
  const { reg, tokens } = await signInByHttp(gateway(base), { redirect, clientName: 'bench', resource: `${base}/mcp/bench-self`, fields: { api_key: SECRETS.upstreamKey } });
  Object.assign(keys, { client: reg.client_id, access: tokens.access_token, refresh: tokens.refresh_token });
}

/**
 * A fresh access token for the run (they live an hour; a long benchmark outlasts one): one refresh
 * through the started Worker, after its cold request. Updates `keys.access` and `keys.refresh`.
 */
export async function renewAccessToken(ours, keys) {
  const r = await tokenRequest(gateway(ours.base), { grant_type: 'refresh_token', refresh_token: keys.refresh, client_id: keys.client });
  if (r.status !== 200) throw new Error(`access token refresh: ${r.status} ${JSON.stringify(r.json)}`);
  Object.assign(keys, { access: r.json.access_token, refresh: r.json.refresh_token });
}

/**
 * Seeds once (through wrangler's dev port), into the state the runs reuse: mcp-authbridge's
 * upstreams, the subject's value, its keys, the storm's OAuth connection and the access token
 * path's grant; the same-work Worker's key. Returns the keys.
 */
export async function seed(ws, upstream, oauthMcp, as) {
  const keys = {};
  const ours = await start('seed-ours', ws['mcp-authbridge']);
  const a = (method, p, body) => admin(ours.devBase, SECRETS.adminToken, method, p, body);
  const headers = { 'X-API-KEY': '{{user.api_key}}' };
  await a('PUT', '/upstreams/bench-json', { url: `${upstream.origin}/json`, headers, user_fields: [{ name: 'api_key', label: 'API key' }] });
  await a('PUT', '/upstreams/bench-stream', { url: `${upstream.origin}/stream`, headers, user_fields: [{ name: 'api_key', label: 'API key' }] });
  await a('PUT', '/upstreams/bench-legacy', { url: `${upstream.origin}/legacy/sse`, transport: 'sse', headers, user_fields: [{ name: 'api_key', label: 'API key' }] });
  await a('PUT', '/upstreams/tickets', { url: oauthMcp.url, oauth: {} });
  await a('PUT', '/upstreams/bench-self', { url: `${upstream.origin}/json`, headers, user_fields: [{ name: 'api_key', label: 'API key' }], sign_in: 'self' });
  await a('PUT', '/subjects/bench/secrets/api_key', { value: SECRETS.upstreamKey });
  keys.ours = (await a('POST', '/keys', { subject: 'bench', upstreams: ['*'] })).key;
  keys.storm = (await a('POST', '/keys', { subject: 'storm', upstreams: ['tickets'] })).key;
  await connectOAuth(ours.devBase, keys.storm, as);
  await signInSelf(ours.devBase, keys);
  await ours.stop();
  const js = await start('seed-js', ws['JS same-work']);
  const r = await fetch(`${js.devBase}/seed`, { method: 'POST', headers: { authorization: `Bearer ${SECRETS.seedToken}` }, body: JSON.stringify({ subject: 'bench', headers: { 'x-api-key': SECRETS.upstreamKey } }) });
  keys.js = (await r.json()).key;
  await js.stop();
  return keys;
}
