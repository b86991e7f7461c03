// A CPU profile of mcp-authbridge on the tools/call path: `node bench/profile.mjs [requests]`.
// Needs a build that keeps the wasm names (`MAB_KEEP_NAMES=1 bash scripts/build.sh`: without
// wasm-opt, so somewhat slower than the release build), so the profile names Rust functions. Runs the Worker under `wrangler dev` with its inspector, seeds one
// upstream and key as bench/ab.mjs does, warms up, then samples V8's profiler (through the
// inspector, the DevTools protocol) over `requests` tools/call and prints the functions by self
// time and by total time, grouped: the Worker's wasm, its JS glue, the runtime. Writes the raw
// profile to bench/profile.cpuprofile (open it in Chrome DevTools). Loopback only.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startUpstream, startWorker, firstRequest, request, expectOk, freePort, sleep, listeningPorts } from './measure.mjs';
import { admin } from './workloads.mjs';

const N = Number(process.argv[2] || 2000);
const { origin } = await startUpstream('profile-upstream-key');
const port = await freePort();
const inspector = await freePort();
const worker = await startWorker('mcp-authbridge', {
  cwd: ROOT,
  port,
  persist: mkdtempSync(path.join(os.tmpdir(), 'mab-profile-')),
  flags: ['--inspector-port', String(inspector)],
  vars: { ADMIN_TOKEN: 'profile-admin', ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'), ALLOW_PRIVATE_UPSTREAMS: 'true' },
});
const a = (method, p, b) => admin(worker.devBase, 'profile-admin', method, p, b);
await a('PUT', '/upstreams/p', { url: `${origin}/json`, headers: { 'X-API-KEY': '{{user.api_key}}' } });
await a('PUT', '/subjects/p/secrets/api_key', { value: 'profile-upstream-key' });
const { key } = await a('POST', '/keys', { subject: 'p', upstreams: ['p'] });
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } });
await firstRequest(worker, '/mcp/p', headers, body);
const url = `${worker.base}/mcp/p`;
const call = async () => expectOk(await request(worker.agent, url, { method: 'POST', headers, body }), 'tools/call');
for (let i = 0; i < 300; i++) await call();

// The inspector of the workerd itself (not wrangler's proxy, which turns on more than the
// profiler): the one of its loopback sockets that lists the Worker's target.
let target;
for (let i = 0; i < 50 && !target; i++) {
  for (const port of listeningPorts(worker.workerd)) {
    try {
      const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      target = list.find((t) => t.id === 'core:user:mcp-authbridge');
      if (target) break;
    } catch { /* not the inspector */ }
  }
  if (!target) await sleep(200);
}
if (!target) throw new Error('no inspector target');
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
let seq = 0;
const pending = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
};
const cdp = (method, params = {}) => new Promise((r) => { const id = ++seq; pending.set(id, r); ws.send(JSON.stringify({ id, method, params })); });
await cdp('Profiler.enable');
await cdp('Profiler.setSamplingInterval', { interval: 50 });
await cdp('Profiler.start');
const t0 = performance.now();
for (let i = 0; i < N; i++) await call();
const wall = performance.now() - t0;
const { result } = await cdp('Profiler.stop');
const profile = result.profile;
writeFileSync(path.join(ROOT, 'bench/profile.cpuprofile'), JSON.stringify(profile));

// Self time per node from the samples, then per function; total time along each node's parents.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const dt = profile.timeDeltas;
const selfUs = new Map();
for (let i = 0; i < profile.samples.length; i++) selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + (dt[i + 1] ?? 0));
// V8 names wasm functions by index in the profile: the module's name section says which they are.
const wasmNames = (() => {
  const d = readFileSync(path.join(ROOT, 'build/index_bg.wasm'));
  let i = 8;
  const leb = () => { let r = 0, s = 0, b; do { b = d[i++]; r += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80); return r; };
  const names = new Map();
  while (i < d.length) {
    const id = d[i++];
    const size = leb();
    const end = i + size;
    if (id === 0) {
      const len = leb();
      const section = d.subarray(i, i + len).toString();
      i += len;
      if (section === 'name') {
        while (i < end) {
          const sub = d[i++];
          const subSize = leb();
          const subEnd = i + subSize;
          if (sub === 1) for (let k = leb(); k > 0; k--) { const idx = leb(); const l = leb(); names.set(idx, d.subarray(i, i + l).toString()); i += l; }
          i = subEnd;
        }
      }
    }
    i = end;
  }
  return names;
})();
const demangle = (s) => s.replace(/::h[0-9a-f]{16}$/, '').replace(/\$LT\$/g, '<').replace(/\$GT\$/g, '>').replace(/\$u20\$/g, ' ').replace(/\$RF\$/g, '&').replace(/\.\./g, '::');
const nameOf = (n) => {
  const f = n.callFrame;
  const w = /^wasm-function\[(\d+)\]$/.exec(f.functionName);
  if (w) return `wasm ${demangle(wasmNames.get(Number(w[1])) ?? f.functionName)}`;
  const where = f.url ? path.basename(f.url.split('?')[0]) : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};
const self = new Map();
const total = new Map();
let all = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const name = nameOf(n);
  all += us;
  if (name === '(idle)' || name === '(program)') { if (name === '(idle)') idle += us; }
  self.set(name, (self.get(name) ?? 0) + us);
  const seen = new Set();
  for (let p = id; p !== undefined; p = parent.get(p)) {
    const pn = nameOf(byId.get(p));
    if (!seen.has(pn)) { seen.add(pn); total.set(pn, (total.get(pn) ?? 0) + us); }
  }
}
const busy = all - idle;
const per = (us) => (us / N / 1000).toFixed(4);
console.log(`${N} tools/call in ${wall.toFixed(0)} ms (${(wall / N).toFixed(3)} ms each); sampled busy ${(busy / 1000).toFixed(0)} ms = ${per(busy)} ms/request`);
const group = (name) => (name.includes('.wasm') ? 'wasm' : name.endsWith('.js') || name.endsWith('.mjs') ? 'glue' : 'runtime');
const groups = {};
for (const [name, us] of self) if (name !== '(idle)') groups[group(name)] = (groups[group(name)] ?? 0) + us;
console.log('self time by group (ms/request):', Object.fromEntries(Object.entries(groups).map(([g, us]) => [g, per(us)])));
const top = (m, k) => [...m].filter(([n]) => n !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, k);
console.log('\n-- self time, ms/request --');
for (const [n, us] of top(self, 60)) console.log(per(us).padStart(8), n.slice(0, 150));
console.log('\n-- total time, ms/request --');
for (const [n, us] of top(total, 60)) console.log(per(us).padStart(8), n.slice(0, 150));
ws.close();
await worker.stop();
process.exit(0);
