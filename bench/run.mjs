// The benchmark (README: `bash scripts/bench.sh`). One process drives four paths to the same
// upstream MCP server on loopback — direct, mcp-authbridge, a JS passthrough Worker and a JS
// same-work Worker (bench/passthrough, bench/samework) — through every workload, BENCH_RUNS times
// (default 3) with each Worker freshly started per run, and writes bench/RESULTS.md.
//
// How the Workers run: each under its own `wrangler dev` (same wrangler, same flags:
// `--log-level warn`, VSCODE_INSPECTOR_OPTIONS=1), and requests go straight to the socket of the
// workerd that runs the Worker, skipping wrangler's dev proxy (a second hop that costs more than
// the Workers themselves). Every loop is bounded in count and time.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, statSync, createWriteStream, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startAuthServer } from '../tests/e2e/peers/oauth_server.mjs';
import { startProtectedMcp } from '../tests/e2e/peers/oauth_mcp_server.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS || 3);
const N_LATENCY = Number(process.env.BENCH_REQUESTS || 300); // per path and workload
const N_SSE = Number(process.env.BENCH_STREAMS || 30); // streams of 20 events per path
const N_LEGACY = Number(process.env.BENCH_LEGACY || 100); // legacy round trips per path
const THROUGHPUT_MS = Number(process.env.BENCH_THROUGHPUT_MS || 2000);
const CONCURRENCY = [1, 16, 64];
const STORM = 100;
const TOKEN_TTL = 5; // seconds: the storm's access tokens
const EVENTS = 20;
const EVENT_GAP_MS = 2;

const UPSTREAM_KEY = 'upk_' + randomBytes(16).toString('hex');
const ADMIN_TOKEN = 'adm_' + randomBytes(16).toString('hex');
const SEED_TOKEN = 'seed_' + randomBytes(16).toString('hex');
const ENCRYPTION_KEY = randomBytes(32).toString('base64');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();
const log = (...a) => console.error('[bench]', ...a);

// ---------------------------------------------------------------------------------------------
// HTTP with keep-alive, one agent per path so no path waits on another's sockets.

function request(agent, url, { method = 'GET', headers = {}, body, onEvent } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      let buffer = '';
      res.on('data', (c) => {
        chunks.push(c);
        if (onEvent) {
          const at = now();
          buffer += c.toString('utf8');
          let i;
          while ((i = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, i);
            buffer = buffer.slice(i).replace(/^\r?\n\r?\n/, '');
            const event = /^event: ?(.*)$/m.exec(block)?.[1] ?? 'message';
            const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.replace(/^data: ?/, '')).join('\n');
            onEvent(event, data, at, res);
          }
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
const call = (id, name, args, meta) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) } });

// ---------------------------------------------------------------------------------------------
// Processes: the upstream, and a Worker under `wrangler dev`.

function startUpstream() {
  const child = spawn(process.execPath, [path.join(ROOT, 'bench/upstream.mjs'), UPSTREAM_KEY], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve({ child, origin: `http://127.0.0.1:${JSON.parse(d.toString()).port}`, stop: () => child.kill() }));
    child.once('exit', (c) => reject(new Error(`upstream exited ${c}`)));
  });
}

/** Every `wrangler dev` still running, killed when the benchmark exits however it exits. */
const running = new Set();
process.on('exit', () => {
  for (const c of running) try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
});

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function descendants(pid) {
  const children = new Map();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(p));
    } catch { /* gone */ }
  }
  const out = [];
  const walk = (p) => { for (const c of children.get(p) ?? []) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}

const cmdline = (pid) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); } catch { return []; } };
/** CPU time a process has used (user + system), in ms. */
const cpuMs = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
};
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
export const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/** Listening TCP ports of a process, in the order it opened them (by fd). */
function listeningPorts(pid) {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  return out.split('\n')
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => ({ port: Number(/127\.0\.0\.1:(\d+)/.exec(l)?.[1]), fd: Number(/fd=(\d+)/.exec(l)?.[1]) }))
    .filter((x) => x.port)
    .sort((a, b) => a.fd - b.fd)
    .map((x) => x.port);
}

async function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

/**
 * Starts `wrangler dev` for a config and waits for the workerd that runs the Worker (not the dev
 * proxy) to listen, without sending it a request: the caller's first request is the cold one.
 */
async function startWorker(name, config, vars, persist) {
  const port = await freePort();
  const inspector = await freePort();
  const args = ['dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector),
    '--log-level', 'warn', '--persist-to', persist, '--show-interactive-dev-session=false'];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  mkdirSync(persist, { recursive: true });
  const logFile = path.join(persist, `${name}.log`);
  const child = spawn(path.join(ROOT, 'node_modules/.bin/wrangler'), args, {
    cwd: path.dirname(config),
    env: { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH}`, MAB_SKIP_BUILD: '1',
      WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1',
      // Quiet, and without the dev-only extras that cost per request: the inspector proxy, the
      // local explorer and the trace collector that receives every invocation's tail events.
      VSCODE_INSPECTOR_OPTIONS: '1', X_LOCAL_OBSERVABILITY: 'false', X_LOCAL_EXPLORER: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const out = createWriteStream(logFile);
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  let exited = null;
  child.on('exit', (c) => { exited = c; });
  running.add(child);
  child.on('exit', () => running.delete(child));
  const deadline = Date.now() + 120_000;
  const started = performance.now();
  let workerd;
  for (;;) {
    if (exited !== null) throw new Error(`${name}: wrangler dev exited ${exited}:\n${readFileSync(logFile, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`${name}: not ready in 120 s:\n${readFileSync(logFile, 'utf8')}`);
    workerd = descendants(child.pid).find((p) => cmdline(p).some((a) => a === '--socket-addr=entry=127.0.0.1:0'));
    if (workerd && (await tcpOpen(port)) && listeningPorts(workerd).length >= 2) break;
    await sleep(100);
  }
  const candidates = listeningPorts(workerd);
  return {
    name,
    devBase: `http://127.0.0.1:${port}`,
    candidates,
    base: null, // set by the first request (entry port found)
    workerd,
    startupMs: performance.now() - started,
    agent: new http.Agent({ keepAlive: true, maxSockets: 128 }),
    stop: async () => {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      for (let i = 0; i < 50 && exited === null; i++) await sleep(100);
      if (exited === null) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    },
  };
}

/** The first request to a Worker: finds its entry socket (the others answer without running it). */
async function firstRequest(worker, pathname, headers, body) {
  for (const port of worker.candidates) {
    const base = `http://127.0.0.1:${port}`;
    try {
      const r = await request(worker.agent, base + pathname, { method: 'POST', headers, body });
      if (r.status === 200) { worker.base = base; return r.ms; }
    } catch { /* not this one */ }
  }
  throw new Error(`${worker.name}: no socket answered ${pathname}`);
}

// ---------------------------------------------------------------------------------------------
// Statistics.

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);
const shuffle = (xs) => { const a = [...xs]; for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; } return a; };

function expectOk(r, what) {
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${r.body.slice(0, 300)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Workloads. A path is {name, agent, json: {url, headers}, stream, legacy}.

async function latency(paths, workload) {
  const times = Object.fromEntries(paths.map((p) => [p.name, []]));
  for (let i = 0; i < N_LATENCY; i++) {
    for (const p of shuffle(paths)) {
      const body = workload === 'list' ? { jsonrpc: '2.0', id: i, method: 'tools/list', params: {} } : call(i, 'echo', { text: `hello ${i}` });
      const r = expectOk(await request(p.agent, p.json.url, { method: 'POST', headers: p.json.headers, body }), `${p.name} ${workload}`);
      times[p.name].push(r.ms);
    }
  }
  return times;
}

async function sse(paths) {
  const perEvent = Object.fromEntries(paths.map((p) => [p.name, []]));
  const total = Object.fromEntries(paths.map((p) => [p.name, []]));
  for (let i = 0; i < N_SSE; i++) {
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

async function legacy(paths) {
  const times = Object.fromEntries(paths.map((p) => [p.name, []]));
  const sessions = new Map();
  for (const p of paths) sessions.set(p.name, await legacySession(p));
  for (let i = 0; i < N_LEGACY; i++) {
    for (const p of shuffle(paths)) times[p.name].push(await sessions.get(p.name).roundTrip(i));
  }
  for (const s of sessions.values()) s.close();
  return times;
}

async function throughput(p, concurrency) {
  const deadline = performance.now() + THROUGHPUT_MS;
  let done = 0;
  let failed = 0;
  const started = performance.now();
  const worker = async (w) => {
    for (let i = 0; i < 100_000 && performance.now() < deadline; i++) {
      const r = await request(p.agent, p.json.url, { method: 'POST', headers: p.json.headers, body: call(`${w}-${i}`, 'echo', { text: 'x' }) });
      if (r.status === 200) done += 1; else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  if (failed) throw new Error(`${p.name} at ${concurrency}: ${failed} failed`);
  return done / ((performance.now() - started) / 1000);
}

// ---------------------------------------------------------------------------------------------
// Seeding: upstreams, values and keys, written once into persisted state.

async function admin(base, method, p, body) {
  const r = await fetch(`${base}/admin/v1${p}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`admin ${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function connectOAuth(base, key, as) {
  const first = await fetch(`${base}/mcp/tickets`, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${key}` }, body: JSON.stringify(call(1, 'whoami', {})) });
  const link = JSON.parse(await first.text()).error.data.connect_url;
  const page = await fetch(link);
  const csrf = (await page.text()).match(/name="csrf" value="([^"]+)"/)[1];
  const cookie = page.headers.get('set-cookie').split(';')[0];
  const go = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body: new URLSearchParams({ csrf }).toString(), redirect: 'manual' });
  const binding = go.headers.get('set-cookie').split(';')[0];
  const callback = await as.completeLogin(go.headers.get('location'), { user: 'storm' });
  const done = await fetch(callback, { redirect: 'manual', headers: { cookie: binding } });
  if (done.status !== 200) throw new Error(`OAuth connect: ${done.status} ${await done.text()}`);
}

// ---------------------------------------------------------------------------------------------

function versions() {
  const pkg = (p) => JSON.parse(readFileSync(path.join(ROOT, 'node_modules', p, 'package.json'), 'utf8')).version;
  const lock = readFileSync(path.join(ROOT, 'Cargo.lock'), 'utf8');
  const crate = (n) => new RegExp(`name = "${n}"\\nversion = "([^"]+)"`).exec(lock)?.[1];
  let rustc = '?';
  try { rustc = execFileSync('rustc', ['--version'], { encoding: 'utf8' }).trim(); } catch { /* not on PATH */ }
  return {
    wrangler: pkg('wrangler'),
    workerd: pkg('@cloudflare/workerd-linux-64'),
    node: process.version,
    rustc,
    worker: crate('worker'),
    sdk: pkg('@modelcontextprotocol/sdk'),
    oidc: pkg('oidc-provider'),
  };
}

async function main() {
  const wasm = path.join(ROOT, 'build/index_bg.wasm');
  // Measured as the test command's size budget measures it (`gzip -9`).
  const bundle = { raw: statSync(wasm).size / 1024, gzip: execFileSync('gzip', ['-9c', wasm], { maxBuffer: 1 << 26 }).length / 1024 };
  const state = mkdtempSync(path.join(os.tmpdir(), 'mab-bench-'));
  const upstream = await startUpstream();
  const as = await startAuthServer({ accessTokenTtl: TOKEN_TTL });
  const oauthMcp = await startProtectedMcp({ issuer: as.issuer, jwksUri: as.jwksUri });
  as.setResource(oauthMcp.url);
  log(`upstream ${upstream.origin}, state ${state}`);

  const workers = {
    'mcp-authbridge': { config: path.join(ROOT, 'wrangler.toml'), vars: { ADMIN_TOKEN, ENCRYPTION_KEY, ALLOW_PRIVATE_UPSTREAMS: 'true' } },
    'JS passthrough': { config: path.join(ROOT, 'bench/passthrough/wrangler.toml'), vars: { UPSTREAM: upstream.origin, API_KEY: UPSTREAM_KEY } },
    'JS same-work': { config: path.join(ROOT, 'bench/samework/wrangler.toml'), vars: { UPSTREAM: upstream.origin, SEED_TOKEN } },
  };
  for (const [name, w] of Object.entries(workers)) w.persist = path.join(state, name.replace(/\W+/g, '-'));

  // Seed once (through wrangler's dev port), into state the runs reuse.
  const keys = {};
  {
    const ours = await startWorker('seed-ours', workers['mcp-authbridge'].config, workers['mcp-authbridge'].vars, workers['mcp-authbridge'].persist);
    const b = ours.devBase;
    const headers = { 'X-API-KEY': '{{user.api_key}}' };
    await admin(b, 'PUT', '/upstreams/bench-json', { url: `${upstream.origin}/json`, headers, user_fields: [{ name: 'api_key', label: 'API key' }] });
    await admin(b, 'PUT', '/upstreams/bench-stream', { url: `${upstream.origin}/stream`, headers, user_fields: [{ name: 'api_key', label: 'API key' }] });
    await admin(b, 'PUT', '/upstreams/bench-legacy', { url: `${upstream.origin}/legacy/sse`, transport: 'sse', headers, user_fields: [{ name: 'api_key', label: 'API key' }] });
    await admin(b, 'PUT', '/upstreams/tickets', { url: oauthMcp.url, oauth: {} });
    await admin(b, 'PUT', '/subjects/bench/secrets/api_key', { value: UPSTREAM_KEY });
    keys.ours = (await admin(b, 'POST', '/keys', { subject: 'bench', upstreams: ['*'] })).key;
    keys.storm = (await admin(b, 'POST', '/keys', { subject: 'storm', upstreams: ['tickets'] })).key;
    await connectOAuth(b, keys.storm, as);
    await ours.stop();
    const js = await startWorker('seed-js', workers['JS same-work'].config, workers['JS same-work'].vars, workers['JS same-work'].persist);
    const r = await fetch(`${js.devBase}/seed`, { method: 'POST', headers: { authorization: `Bearer ${SEED_TOKEN}` }, body: JSON.stringify({ subject: 'bench', headers: { 'x-api-key': UPSTREAM_KEY } }) });
    keys.js = (await r.json()).key;
    await js.stop();
  }
  let lastRefresh = performance.now();

  const runs = [];
  for (let run = 1; run <= RUNS; run++) {
    log(`run ${run}/${RUNS}`);
    const res = { cold: {}, rss: {}, latency: {}, list: {}, sse: {}, legacy: {}, throughput: {}, storm: null };
    const started = {};
    for (const [name, w] of Object.entries(workers)) started[name] = await startWorker(name, w.config, w.vars, w.persist);
    const bearer = (k) => ({ ...MCP_HEADERS, authorization: `Bearer ${k}` });
    const ours = started['mcp-authbridge'];
    const pt = started['JS passthrough'];
    const sw = started['JS same-work'];
    res.cold['mcp-authbridge'] = await firstRequest(ours, '/mcp/bench-json', bearer(keys.ours), call(0, 'echo', { text: 'cold' }));
    res.cold['JS passthrough'] = await firstRequest(pt, '/json', bearer('anything'), call(0, 'echo', { text: 'cold' }));
    res.cold['JS same-work'] = await firstRequest(sw, '/json', bearer(keys.js), call(0, 'echo', { text: 'cold' }));
    const directAgent = new http.Agent({ keepAlive: true, maxSockets: 128 });
    const direct = { 'x-api-key': UPSTREAM_KEY };
    const paths = [
      { name: 'direct', agent: directAgent, json: { url: `${upstream.origin}/json`, headers: { ...MCP_HEADERS, ...direct } },
        stream: { url: `${upstream.origin}/stream`, headers: { ...MCP_HEADERS, ...direct } }, legacy: { url: `${upstream.origin}/legacy/sse`, headers: direct } },
      { name: 'mcp-authbridge', agent: ours.agent, json: { url: `${ours.base}/mcp/bench-json`, headers: bearer(keys.ours) },
        stream: { url: `${ours.base}/mcp/bench-stream`, headers: bearer(keys.ours) }, legacy: { url: `${ours.base}/sse/bench-legacy`, headers: { authorization: `Bearer ${keys.ours}` } } },
      { name: 'JS passthrough', agent: pt.agent, json: { url: `${pt.base}/json`, headers: bearer('client-key') },
        stream: { url: `${pt.base}/stream`, headers: bearer('client-key') }, legacy: { url: `${pt.base}/legacy/sse`, headers: { authorization: 'Bearer client-key' } } },
      { name: 'JS same-work', agent: sw.agent, json: { url: `${sw.base}/json`, headers: bearer(keys.js) },
        stream: { url: `${sw.base}/stream`, headers: bearer(keys.js) }, legacy: { url: `${sw.base}/legacy/sse`, headers: { authorization: `Bearer ${keys.js}` } } },
    ];
    // Warm every path (JIT, connections) before measuring.
    for (const p of paths) for (let i = 0; i < 50; i++) expectOk(await request(p.agent, p.json.url, { method: 'POST', headers: p.json.headers, body: call(i, 'echo', { text: 'warm' }) }), `${p.name} warm`);

    const cpuBefore = Object.fromEntries(Object.entries(started).map(([n, w]) => [n, cpuMs(w.workerd)]));
    res.latency = await latency(paths, 'call');
    res.cpu = Object.fromEntries(Object.entries(started).map(([n, w]) => [n, (cpuMs(w.workerd) - cpuBefore[n]) / N_LATENCY]));
    res.list = await latency(paths, 'list');
    res.sse = await sse(paths);
    res.legacy = await legacy(paths);
    for (const c of CONCURRENCY) {
      res.throughput[c] = {};
      for (const p of shuffle(paths)) res.throughput[c][p.name] = await throughput(p, c);
    }
    for (const [name, w] of Object.entries(started)) res.rss[name] = rssMiB(w.workerd);

    // The refresh storm: the access token has expired; 100 calls at once.
    const wait = TOKEN_TTL * 1000 + 500 - (performance.now() - lastRefresh);
    if (wait > 0) await sleep(wait);
    const before = as.counts().refresh_grants;
    const t0 = performance.now();
    const storm = await Promise.all(Array.from({ length: STORM }, (_, i) => request(ours.agent, `${ours.base}/mcp/tickets`, { method: 'POST', headers: bearer(keys.storm), body: call(i, 'whoami', {}) })));
    lastRefresh = performance.now();
    res.storm = {
      grants: as.counts().refresh_grants - before,
      ok: storm.filter((r) => r.status === 200).length,
      statuses: [...new Set(storm.map((r) => r.status))],
      wallMs: performance.now() - t0,
      p50: median(storm.map((r) => r.ms)),
    };
    for (const w of Object.values(started)) await w.stop();
    runs.push(res);
    log(`run ${run}: storm ${JSON.stringify(res.storm)}`);
  }
  upstream.stop();
  oauthMcp.close();
  await as.stop();
  const md = report(runs, bundle, versions());
  writeFileSync(path.join(ROOT, 'bench/RESULTS.md'), md);
  process.stdout.write(md);
  rmSync(state, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The table.

const WORKERS = ['mcp-authbridge', 'JS passthrough', 'JS same-work'];

function report(runs, bundle, v) {
  const fmt = (x, d = 2) => (x >= 100 ? x.toFixed(0) : x.toFixed(d));
  const mmm = (xs, d) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 1 ? fmt(s[0], d) : `${fmt(s[0], d)} / **${fmt(median(s), d)}** / ${fmt(s[s.length - 1], d)}`;
  };
  // per run: a figure for each path
  const rows = [];
  const row = (figure, unit, perRun, { direct = false, better = 'lower', d = 2 } = {}) => {
    const cells = (name) => mmm(runs.map((r) => perRun(r, name)), d);
    const ratio = (base) => {
      const xs = runs.map((r) => perRun(r, 'mcp-authbridge') / perRun(r, base));
      return mmm(xs, 2);
    };
    rows.push(`| ${figure} | ${unit} | ${direct ? cells('direct') : '—'} | ${WORKERS.map(cells).join(' | ')} | ${ratio('JS passthrough')} | ${ratio('JS same-work')} | ${better} |`);
  };
  const added = (key, p) => (r, name) => pct(r[key][name], p) - pct(r[key].direct, p);
  const abs = (key, p) => (r, name) => pct(r[key][name], p);
  row('tools/call (JSON), added p50', 'ms', added('latency', 50));
  row('tools/call (JSON), added p99', 'ms', added('latency', 99));
  row('tools/call (JSON), p50', 'ms', abs('latency', 50), { direct: true });
  row('tools/call (JSON), CPU of the workerd running the Worker, per request', 'ms', (r, name) => r.cpu[name]);
  row('tools/list, added p50', 'ms', added('list', 50));
  row('tools/list, added p99', 'ms', added('list', 99));
  row(`SSE answer of ${EVENTS} events: added delay per event (median)`, 'ms', (r, name) => median(r.sse.perEvent[name]) - median(r.sse.perEvent.direct), { d: 3 });
  row(`SSE answer of ${EVENTS} events: whole stream, added p50`, 'ms', (r, name) => median(r.sse.total[name]) - median(r.sse.total.direct));
  row('legacy SSE session: call round trip, added p50', 'ms', added('legacy', 50));
  for (const c of CONCURRENCY) row(`requests/s at concurrency ${c} (tools/call JSON)`, 'req/s', (r, name) => r.throughput[c][name], { direct: true, better: 'higher', d: 0 });
  row('first request after start (cold)', 'ms', (r, name) => r.cold[name], { d: 1 });
  row('resident memory of the workerd running the Worker, after the load', 'MiB', (r, name) => r.rss[name], { d: 1 });
  const storms = runs.map((r) => r.storm);
  const allOk = storms.every((s) => s.ok === STORM);
  return `# Benchmark results

Written by \`bash scripts/bench.sh\` (bench/run.mjs) on ${new Date().toISOString().slice(0, 10)}.
Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}.
Versions: wrangler ${v.wrangler}, workerd ${v.workerd}, Node ${v.node}, ${v.rustc}, worker crate ${v.worker}, MCP TS SDK ${v.sdk}, oidc-provider ${v.oidc}.

Four paths to one upstream (official TS SDK server, stateless Streamable HTTP, on loopback, demanding
\`X-API-KEY\`): **direct**; **mcp-authbridge** (key check, one Durable Object call, template
rendered from the subject's sealed value); **JS passthrough** (\`bench/passthrough\`: swaps one
header); **JS same-work** (\`bench/samework\`: SHA-256 of the key, one SQLite Durable Object RPC
returning the headers, the fetch). Each Worker runs under its own \`wrangler dev\` with
\`--log-level warn\`, \`VSCODE_INSPECTOR_OPTIONS=1\`, \`X_LOCAL_OBSERVABILITY=false\` and
\`X_LOCAL_EXPLORER=false\` (no inspector proxy, no per-invocation trace collector: dev-only costs
that halved every Worker's CPU here), restarted for every run, and is called on its workerd's own
socket (wrangler's dev proxy skipped for all three). Absolute figures are local workerd on this
machine, not Cloudflare's edge; compare the columns. Requests of one workload
go round-robin over the paths in shuffled order; ${N_LATENCY} per path for latency, ${N_SSE}
streams, ${N_LEGACY} legacy round trips, ${THROUGHPUT_MS / 1000} s per throughput cell, after 50
warm-up calls. "Added" = the path's percentile minus direct's, in the same run.

Each cell: min / **median** / max over ${runs.length} runs. Ratios are mcp-authbridge ÷ that Worker,
per run (for latency lower is better, for requests/s higher is better).

| figure | unit | direct | mcp-authbridge | JS passthrough | JS same-work | ÷ passthrough | ÷ same-work | better |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Refresh storm (mcp-authbridge only; an OAuth upstream right after its access token expired, ${STORM}
concurrent calls): authorization-server refresh grants per storm ${storms.map((s) => s.grants).join(', ')};
answered 200: ${storms.map((s) => s.ok).join(', ')} of ${STORM}${allOk ? '' : ` (statuses ${JSON.stringify(storms.map((s) => s.statuses))})`};
all answered within ${storms.map((s) => s.wallMs.toFixed(0)).join(', ')} ms (p50 ${storms.map((s) => s.p50.toFixed(0)).join(', ')} ms).

wasm bundle: ${bundle.raw.toFixed(0)} KiB raw, ${bundle.gzip.toFixed(0)} KiB gzip.
`;
}

main().catch((e) => { console.error(e); process.exit(1); });
