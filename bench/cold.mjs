// Cold first requests of two builds of mcp-authbridge: `node bench/cold.mjs <checkout A>
// <checkout B> [starts]`. Each checkout must hold a release build. For each, one `wrangler dev`
// seeds a persisted state (upstream, the subject's value, a key) and stops; then, `starts` times
// per build in alternation, a fresh `wrangler dev` on that state gets one tools/call, straight on
// its workerd's socket (the bench's quiet flags, bench/measure.mjs): the time of that first
// request, whose isolate has run nothing yet. Prints each build's times and median. Used to
// decide a change for the cold start (bench/RESULTS.md "first request after start"). With
// `COLD_HEALTHZ=1` the first request is `GET /healthz` instead, which runs almost none of the
// Worker's code: what starting the isolate and the module costs by itself.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startUpstream, startWorker, firstRequest, request, median, freePort } from './measure.mjs';
import { admin } from './workloads.mjs';

const [dirA, dirB] = process.argv.slice(2, 4).map((d) => path.resolve(d));
if (!dirA || !dirB) {
  console.error('usage: node bench/cold.mjs <checkout A> <checkout B> [starts]');
  process.exit(2);
}
const STARTS = Number(process.argv[4] || 5);
const { origin } = await startUpstream('cold-upstream-key');
const vars = { ADMIN_TOKEN: 'cold-admin', ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'), ALLOW_PRIVATE_UPSTREAMS: 'true' };
const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'cold' } } });

async function seeded(label, cwd) {
  const persist = mkdtempSync(path.join(os.tmpdir(), 'mab-cold-'));
  const seeder = await startWorker(`${label} seed`, { cwd, port: await freePort(), persist, vars });
  const a = (method, p, b) => admin(seeder.devBase, 'cold-admin', method, p, b);
  await a('PUT', '/upstreams/cold', { url: `${origin}/json`, headers: { 'X-API-KEY': '{{user.api_key}}' } });
  await a('PUT', '/subjects/cold/secrets/api_key', { value: 'cold-upstream-key' });
  const { key } = await a('POST', '/keys', { subject: 'cold', upstreams: ['cold'] });
  await seeder.stop();
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  return { label, cwd, persist, headers, times: [] };
}

/** `GET /healthz` on the Worker's own socket (the first of the workerd's sockets that answers 200). */
async function healthz(worker) {
  for (const port of worker.candidates) {
    try {
      const r = await request(worker.agent, `http://127.0.0.1:${port}/healthz`);
      if (r.status === 200 && r.body === 'ok') return r.ms;
    } catch { /* not this one */ }
  }
  throw new Error('no socket answered /healthz');
}

const builds = [await seeded(`A ${path.basename(dirA)}`, dirA), await seeded(`B ${path.basename(dirB)}`, dirB)];
for (let i = 0; i < STARTS; i++) {
  for (const b of i % 2 ? [...builds].reverse() : builds) {
    const worker = await startWorker(b.label, { cwd: b.cwd, port: await freePort(), persist: b.persist, vars });
    b.times.push(process.env.COLD_HEALTHZ === '1' ? await healthz(worker) : await firstRequest(worker, '/mcp/cold', b.headers, body));
    await worker.stop();
  }
}
for (const b of builds) console.log(`${b.label.padEnd(24)} first request ${b.times.map((t) => t.toFixed(0)).join(', ')} ms   median ${median(b.times).toFixed(1)} ms`);
process.exit(0);
