// Measurement, shared by the benchmark (bench/run.mjs) and the A/B (bench/ab.mjs): the timed HTTP
// client, the processes (the upstream, each Worker under its own `wrangler dev`), finding the
// workerd that runs a Worker and that Worker's own socket, CPU and memory of that workerd, the
// bundle, percentiles and the throughput loop. Every loop is bounded in count and time, and
// everything listens and is called on loopback (127.0.0.1) only.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Wall-clock time in ms with sub-ms precision, comparable across processes (the upstream stamps SSE events with it). */
export const now = () => performance.timeOrigin + performance.now();
export const log = (...a) => console.error('[bench]', ...a);

// ---------------------------------------------------------------------------------------------
// HTTP with keep-alive, one agent per path so no path waits on another's sockets.

/** One keep-alive agent, for one path. */
export const keepAlive = () => new http.Agent({ keepAlive: true, maxSockets: 128 });

/**
 * One HTTP request, timed from before it is sent to the end of the answer; `onEvent(event, data,
 * at, res)` is called for each SSE event as it arrives, `at` its arrival time (`now()`).
 */
export function request(agent, url, { method = 'GET', headers = {}, body, onEvent } = {}) {
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

export function expectOk(r, what) {
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${r.body.slice(0, 300)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Processes: the upstream, and a Worker under `wrangler dev`.

/** The benchmark's upstream (bench/upstream.mjs) demanding `key`; it exits when our stdin to it closes. */
export function startUpstream(key) {
  const child = spawn(process.execPath, [path.join(ROOT, 'bench/upstream.mjs'), key], { stdio: ['pipe', 'pipe', 'inherit'] });
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

export function freePort() {
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
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
/** CPU time a process has used (user + system), in ms. */
export const cpuMs = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
};
export const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/** Listening TCP ports of a process, in the order it opened them (by fd). */
export function listeningPorts(pid) {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  return out.split('\n')
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => ({ port: Number(/127\.0\.0\.1:(\d+)/.exec(l)?.[1]), fd: Number(/fd=(\d+)/.exec(l)?.[1]) }))
    .filter((x) => x.port)
    .sort((a, b) => a.fd - b.fd)
    .map((x) => x.port);
}

/**
 * The workerd that runs a `wrangler dev`'s Worker: the descendant of that wrangler started with its
 * entry socket on an ephemeral loopback port. Only that wrangler's descendants, so another workerd
 * on the machine (a second Worker of the benchmark, the tests) is never taken for it.
 */
const workerdOf = (wranglerPid) => descendants(wranglerPid).find((p) => cmdline(p).some((a) => a === '--socket-addr=entry=127.0.0.1:0'));

async function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

// Quiet, and without the dev-only extras that cost per request: the inspector proxy, the local
// explorer and the trace collector that receives every invocation's tail events.
const QUIET_ENV = { MAB_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false', VSCODE_INSPECTOR_OPTIONS: '1', X_LOCAL_OBSERVABILITY: 'false', X_LOCAL_EXPLORER: 'false' };

/**
 * Starts `wrangler dev` in `cwd` on loopback `port` with the flags every Worker of the bench gets
 * (`--log-level warn`, no interactive session, `--persist-to persist`), plus `flags` and `vars`,
 * and waits for the workerd that runs the Worker (not the dev proxy) to listen, without sending it a
 * request: the caller's first request (`firstRequest`) is the cold one. Output goes to `logFile`,
 * or nowhere without one.
 */
export async function startWorker(name, { cwd, port, persist, flags = [], vars = {}, env = {}, logFile }) {
  const args = ['dev', ...flags, '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'warn', '--persist-to', persist, '--show-interactive-dev-session=false'];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  mkdirSync(persist, { recursive: true });
  const child = spawn(path.join(ROOT, 'node_modules/.bin/wrangler'), args, {
    cwd,
    env: { ...process.env, ...QUIET_ENV, ...env },
    stdio: ['ignore', logFile ? 'pipe' : 'ignore', logFile ? 'pipe' : 'ignore'],
    detached: true,
  });
  if (logFile) {
    const out = createWriteStream(logFile);
    child.stdout.pipe(out);
    child.stderr.pipe(out);
  }
  const output = () => (logFile ? `:\n${readFileSync(logFile, 'utf8')}` : '');
  let exited = null;
  child.on('exit', (c) => { exited = c; });
  running.add(child);
  child.on('exit', () => running.delete(child));
  const deadline = Date.now() + 120_000;
  const started = performance.now();
  let workerd;
  for (;;) {
    if (exited !== null) throw new Error(`${name}: wrangler dev exited ${exited}${output()}`);
    if (Date.now() > deadline) throw new Error(`${name}: not ready in 120 s${output()}`);
    workerd = workerdOf(child.pid);
    if (workerd && (await tcpOpen(port)) && listeningPorts(workerd).length >= 2) break;
    await sleep(100);
  }
  return {
    name,
    devBase: `http://127.0.0.1:${port}`,
    candidates: listeningPorts(workerd),
    base: null, // set by the first request (entry port found)
    workerd,
    startupMs: performance.now() - started,
    agent: keepAlive(),
    stop: async () => {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      for (let i = 0; i < 50 && exited === null; i++) await sleep(100);
      if (exited === null) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    },
  };
}

/**
 * The first request to a Worker, straight to its workerd (wrangler's dev proxy skipped: a second
 * hop that costs more than the Workers themselves). Finds the Worker's entry socket — the first of
 * the workerd's sockets that answers 200; the others answer without running it — sets
 * `worker.base`, and returns the request's time.
 */
export async function firstRequest(worker, pathname, headers, body) {
  for (const port of worker.candidates) {
    const base = `http://127.0.0.1:${port}`;
    try {
      const r = await request(worker.agent, base + pathname, { method: 'POST', headers, body });
      if (r.status === 200) { worker.base = base; return r.ms; }
    } catch { /* not this one */ }
  }
  throw new Error(`${worker.name}: no socket answered ${pathname}`);
}

/** The wasm bundle in KiB, raw and as the test command's size budget measures it (`gzip -9`). */
export function bundleKiB(wasm) {
  return { raw: statSync(wasm).size / 1024, gzip: execFileSync('gzip', ['-9c', wasm], { maxBuffer: 1 << 26 }).length / 1024 };
}

// ---------------------------------------------------------------------------------------------
// Statistics.

export const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
export const median = (xs) => pct(xs, 50);
export const shuffle = (xs) => { const a = [...xs]; for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; } return a; };

/**
 * Requests/s of `concurrency` loops each sending `send(loop, i)` back to back for `ms` (at most
 * 100,000 each); any answer but 200 fails the measurement.
 */
export async function throughput(what, concurrency, ms, send) {
  const deadline = performance.now() + ms;
  let done = 0;
  let failed = 0;
  const started = performance.now();
  const loop = async (w) => {
    for (let i = 0; i < 100_000 && performance.now() < deadline; i++) {
      const r = await send(w, i);
      if (r.status === 200) done += 1; else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => loop(w)));
  if (failed) throw new Error(`${what} at ${concurrency}: ${failed} failed`);
  return done / ((performance.now() - started) / 1000);
}
