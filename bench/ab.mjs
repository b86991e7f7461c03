// A/B of two builds of mcp-authbridge: `node bench/ab.mjs <checkout A> <checkout B> [requests]
// [rounds]`. Each checkout must hold a release build (`bash scripts/build.sh` there). Both run at
// once under `wrangler dev` (the bench's quiet flags and workerd lookup, bench/measure.mjs) against
// one upstream; batches of tools/call alternate A, B, B, A … so drift hits both alike. Prints CPU
// of each Worker's workerd per request, wall time per request and p50. Used to decide each hot-path
// change (bench/RESULTS.md).
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startUpstream, startWorker, firstRequest, request, expectOk, cpuMs, median } from './measure.mjs';
import { admin } from './workloads.mjs';

const [dirA, dirB] = process.argv.slice(2, 4).map((d) => path.resolve(d));
if (!dirA || !dirB) {
  console.error('usage: node bench/ab.mjs <checkout A> <checkout B> [requests per batch] [rounds]');
  process.exit(2);
}
const N = Number(process.argv[4] || 300);
const ROUNDS = Number(process.argv[5] || 6);
const { origin } = await startUpstream('ab-upstream-key');

const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } });

async function start(label, cwd, port) {
  const worker = await startWorker(label, {
    cwd,
    port,
    persist: mkdtempSync(path.join(os.tmpdir(), 'mab-ab-')),
    vars: { ADMIN_TOKEN: 'ab-admin', ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'), ALLOW_PRIVATE_UPSTREAMS: 'true' },
  });
  const a = (method, p, b) => admin(worker.devBase, 'ab-admin', method, p, b);
  await a('PUT', '/upstreams/ab', { url: `${origin}/json`, headers: { 'X-API-KEY': '{{user.api_key}}' } });
  await a('PUT', '/subjects/ab/secrets/api_key', { value: 'ab-upstream-key' });
  const { key } = await a('POST', '/keys', { subject: 'ab', upstreams: ['ab'] });
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  // Finds the Worker's own socket on its workerd, as the benchmark does (wrangler's dev proxy skipped).
  await firstRequest(worker, '/mcp/ab', headers, body);
  return { label, pid: worker.workerd, url: `${worker.base}/mcp/ab`, headers, agent: worker.agent, cpu: 0, wall: 0, times: [] };
}

const call = async (w) => expectOk(await request(w.agent, w.url, { method: 'POST', headers: w.headers, body }), w.label).ms;

const A = await start(`A ${path.basename(dirA)}`, dirA, 9801);
const B = await start(`B ${path.basename(dirB)}`, dirB, 9802);
for (const w of [A, B]) for (let i = 0; i < 200; i++) await call(w);
for (let round = 0; round < ROUNDS; round++) {
  for (const w of round % 2 ? [B, A] : [A, B]) {
    const c0 = cpuMs(w.pid);
    const t0 = performance.now();
    for (let i = 0; i < N; i++) w.times.push(await call(w));
    w.cpu += cpuMs(w.pid) - c0;
    w.wall += performance.now() - t0;
  }
}
for (const w of [A, B]) {
  const n = w.times.length;
  console.log(`${w.label.padEnd(24)} CPU ${(w.cpu / n).toFixed(3)} ms/request   wall ${(w.wall / n).toFixed(3)} ms/request   p50 ${median(w.times).toFixed(3)} ms`);
}
process.exit(0);
