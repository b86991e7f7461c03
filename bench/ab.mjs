// A/B of two builds of mcp-authbridge: `node bench/ab.mjs <checkout A> <checkout B> [requests]
// [rounds]`. Each checkout must hold a release build (`bash scripts/build.sh` there). Both run at
// once under `wrangler dev` (the bench's quiet flags and workerd lookup, bench/measure.mjs) against
// one upstream; batches of tools/call alternate A, B, B, A … so drift hits both alike. Prints CPU
// of each Worker's workerd per request, wall time per request and p50. Used to decide each hot-path
// change (bench/RESULTS.md). With `AB_SAMEWORK=1`, the JS same-work Worker (bench/samework) runs
// beside them on the same upstream and takes its turn in the rounds, as a reference: each build's
// CPU and p50 are then also given as a ratio to it; with `AB_PASSTHROUGH=1` as well, the JS
// passthrough (bench/passthrough) runs too, so that what a same-work Worker adds over the bare
// passthrough is seen beside what each build adds.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startUpstream, startWorker, firstRequest, request, expectOk, cpuMs, median } from './measure.mjs';
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

/** The JS same-work Worker, seeded with the upstream's key, as a third path (`AB_SAMEWORK=1`). */
async function samework(port) {
  const seedToken = 'ab-seed';
  const worker = await startWorker('JS same-work', {
    cwd: path.join(ROOT, 'bench/samework'),
    port,
    persist: mkdtempSync(path.join(os.tmpdir(), 'mab-ab-js-')),
    vars: { UPSTREAM: `${origin}`, SEED_TOKEN: seedToken },
  });
  const seeded = await fetch(`${worker.devBase}/seed`, { method: 'POST', headers: { authorization: `Bearer ${seedToken}` }, body: JSON.stringify({ subject: 'ab', headers: { 'x-api-key': 'ab-upstream-key' } }) });
  const { key } = await seeded.json();
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  await firstRequest(worker, '/json', headers, body);
  return { label: 'JS same-work', pid: worker.workerd, url: `${worker.base}/json`, headers, agent: worker.agent, cpu: 0, wall: 0, times: [] };
}

/** The JS passthrough Worker, with the upstream's key as its one header (`AB_PASSTHROUGH=1`). */
async function passthrough(port) {
  const worker = await startWorker('JS passthrough', {
    cwd: path.join(ROOT, 'bench/passthrough'),
    port,
    persist: mkdtempSync(path.join(os.tmpdir(), 'mab-ab-pt-')),
    vars: { UPSTREAM: `${origin}`, API_KEY: 'ab-upstream-key' },
  });
  const headers = { authorization: 'Bearer client-key', 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  await firstRequest(worker, '/json', headers, body);
  return { label: 'JS passthrough', pid: worker.workerd, url: `${worker.base}/json`, headers, agent: worker.agent, cpu: 0, wall: 0, times: [] };
}

const call = async (w) => expectOk(await request(w.agent, w.url, { method: 'POST', headers: w.headers, body }), w.label).ms;

const A = await start(`A ${path.basename(dirA)}`, dirA, 9801);
const B = await start(`B ${path.basename(dirB)}`, dirB, 9802);
const all = process.env.AB_SAMEWORK === '1' ? [A, B, await samework(9803)] : [A, B];
if (process.env.AB_SAMEWORK === '1' && process.env.AB_PASSTHROUGH === '1') all.push(await passthrough(9804));
for (const w of all) for (let i = 0; i < 200; i++) await call(w);
for (let round = 0; round < ROUNDS; round++) {
  for (const w of round % 2 ? [...all].reverse() : all) {
    const c0 = cpuMs(w.pid);
    const t0 = performance.now();
    for (let i = 0; i < N; i++) w.times.push(await call(w));
    w.cpu += cpuMs(w.pid) - c0;
    w.wall += performance.now() - t0;
  }
}
const js = all[2];
for (const w of all) {
  const n = w.times.length;
  const ratio = js && w !== js && w.label !== 'JS passthrough' ? `   ÷ JS: CPU ${((w.cpu / n) / (js.cpu / js.times.length)).toFixed(2)}, p50 ${(median(w.times) / median(js.times)).toFixed(2)}` : '';
  console.log(`${w.label.padEnd(24)} CPU ${(w.cpu / n).toFixed(3)} ms/request   wall ${(w.wall / n).toFixed(3)} ms/request   p50 ${median(w.times).toFixed(3)} ms${ratio}`);
}
process.exit(0);
