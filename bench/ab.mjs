// A/B of two builds of mcp-authbridge: `node bench/ab.mjs <checkout A> <checkout B> [requests]
// [rounds]`. Each checkout must hold a release build (`bash scripts/build.sh` there). Both run at
// once under `wrangler dev` (the bench's quiet flags) against one upstream; batches of tools/call
// alternate A, B, B, A … so drift hits both alike. Prints CPU of each Worker's workerd per
// request, wall time per request and p50. Used to decide each hot-path change (bench/RESULTS.md).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const [dirA, dirB] = process.argv.slice(2, 4).map((d) => path.resolve(d));
if (!dirA || !dirB) {
  console.error('usage: node bench/ab.mjs <checkout A> <checkout B> [requests per batch] [rounds]');
  process.exit(2);
}
const N = Number(process.argv[4] || 300);
const ROUNDS = Number(process.argv[5] || 6);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ticks = (pid) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
};
const TICK_MS = 1000 / (Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100);
const workerds = () => {
  try {
    return execFileSync('pgrep', ['-f', 'socket-addr=entry=127.0.0.1:0'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

const children = [];
process.on('exit', () => {
  for (const c of children) try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
});
const upstream = spawn(process.execPath, [path.join(ROOT, 'bench/upstream.mjs'), 'ab-upstream-key'], { stdio: ['pipe', 'pipe', 'inherit'] });
children.push(upstream);
const origin = `http://127.0.0.1:${await new Promise((r) => upstream.stdout.once('data', (d) => r(JSON.parse(d).port)))}`;

async function start(label, cwd, port) {
  const before = new Set(workerds());
  const child = spawn(path.join(ROOT, 'node_modules/.bin/wrangler'), [
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'warn', '--persist-to', mkdtempSync(path.join(os.tmpdir(), 'mab-ab-')),
    '--var', 'ADMIN_TOKEN:ab-admin', '--var', `ENCRYPTION_KEY:${Buffer.alloc(32, 7).toString('base64')}`, '--var', 'ALLOW_PRIVATE_UPSTREAMS:true',
    '--show-interactive-dev-session=false',
  ], {
    cwd,
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, MAB_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false', VSCODE_INSPECTOR_OPTIONS: '1', X_LOCAL_OBSERVABILITY: 'false', X_LOCAL_EXPLORER: 'false' },
  });
  children.push(child);
  const dev = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try { if ((await fetch(`${dev}/healthz`)).ok) break; } catch { /* not yet */ }
    await sleep(200);
  }
  const admin = (method, p, body) => fetch(`${dev}/admin/v1${p}`, { method, headers: { authorization: 'Bearer ab-admin' }, body: JSON.stringify(body) }).then((r) => r.json().catch(() => null));
  await admin('PUT', '/upstreams/ab', { url: `${origin}/json`, headers: { 'X-API-KEY': '{{user.api_key}}' } });
  await admin('PUT', '/subjects/ab/secrets/api_key', { value: 'ab-upstream-key' });
  const { key } = await admin('POST', '/keys', { subject: 'ab', upstreams: ['ab'] });
  const pid = Number(workerds().find((p) => !before.has(p)));
  // The workerd's first listening socket is the Worker's own (wrangler's dev proxy skipped).
  const ports = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`pid=${pid},`))
    .map((l) => [Number(/:(\d+) /.exec(l)[1]), Number(/fd=(\d+)/.exec(l)[1])]).sort((a, b) => a[1] - b[1]);
  return { label, pid, url: `http://127.0.0.1:${ports[0][0]}/mcp/ab`, key, agent: new http.Agent({ keepAlive: true }), cpu: 0, wall: 0, times: [] };
}

const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } });
const call = (w) => new Promise((resolve, reject) => {
  const t = performance.now();
  const headers = { authorization: `Bearer ${w.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const r = http.request(w.url, { method: 'POST', agent: w.agent, headers }, (res) => {
    res.resume();
    res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t) : reject(new Error(`${w.label}: ${res.statusCode}`))));
  });
  r.on('error', reject);
  r.end(body);
});

const A = await start(`A ${path.basename(dirA)}`, dirA, 9801);
const B = await start(`B ${path.basename(dirB)}`, dirB, 9802);
for (const w of [A, B]) for (let i = 0; i < 200; i++) await call(w);
for (let round = 0; round < ROUNDS; round++) {
  for (const w of round % 2 ? [B, A] : [A, B]) {
    const c0 = ticks(w.pid);
    const t0 = performance.now();
    for (let i = 0; i < N; i++) w.times.push(await call(w));
    w.cpu += (ticks(w.pid) - c0) * TICK_MS;
    w.wall += performance.now() - t0;
  }
}
for (const w of [A, B]) {
  w.times.sort((a, b) => a - b);
  const n = w.times.length;
  console.log(`${w.label.padEnd(24)} CPU ${(w.cpu / n).toFixed(3)} ms/request   wall ${(w.wall / n).toFixed(3)} ms/request   p50 ${w.times[n >> 1].toFixed(3)} ms`);
}
process.exit(0);
