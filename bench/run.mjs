// The benchmark (README: `bash scripts/bench.sh`). One process drives four paths to the same
// upstream MCP server on loopback — direct, mcp-authbridge, a JS passthrough Worker and a JS
// same-work Worker (bench/passthrough, bench/samework) — through every workload, BENCH_RUNS times
// (default 3) with each Worker freshly started per run, and writes bench/RESULTS.md. A fifth path,
// mcp-authbridge with its own OAuth access token instead of a key, is measured beside the key path.
//
// How the Workers run: each under its own `wrangler dev` (same wrangler, same flags:
// `--log-level warn`, VSCODE_INSPECTOR_OPTIONS=1), and requests go straight to the socket of the
// workerd that runs the Worker, skipping wrangler's dev proxy (a second hop that costs more than
// the Workers themselves). Every loop is bounded in count and time.
//
// This file is the driver; what is sent is in bench/workloads.mjs, how it is measured in
// bench/measure.mjs, and the table in bench/report.mjs.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAuthServer } from '../tests/e2e/peers/oauth_server.mjs';
import { startProtectedMcp } from '../tests/e2e/peers/oauth_mcp_server.mjs';
import { ROOT, log, startUpstream, bundleKiB, cpuMs, rssMiB, shuffle } from './measure.mjs';
import { CONCURRENCY, TOKEN_TTL, SECRETS, workers, start, seed, coldRequests, paths as pathsTo, tokenPath, renewAccessToken, warm, latency, accessToken, sse, legacy, throughput, refreshStorm } from './workloads.mjs';
import { report, versions } from './report.mjs';

const RUNS = Number(process.env.BENCH_RUNS || 3);
const N = {
  latency: Number(process.env.BENCH_REQUESTS || 300), // per path and workload
  sse: Number(process.env.BENCH_STREAMS || 30), // streams of 20 events per path
  legacy: Number(process.env.BENCH_LEGACY || 100), // legacy round trips per path
  throughputMs: Number(process.env.BENCH_THROUGHPUT_MS || 2000),
};

async function main() {
  const bundle = bundleKiB(path.join(ROOT, 'build/index_bg.wasm'));
  const state = mkdtempSync(path.join(os.tmpdir(), 'mab-bench-'));
  const upstream = await startUpstream(SECRETS.upstreamKey);
  const as = await startAuthServer({ accessTokenTtl: TOKEN_TTL });
  const oauthMcp = await startProtectedMcp({ issuer: as.issuer, jwksUri: as.jwksUri });
  as.setResource(oauthMcp.url);
  log(`upstream ${upstream.origin}, state ${state}`);

  const ws = workers(upstream, state);
  const keys = await seed(ws, upstream, oauthMcp, as);
  let lastRefresh = performance.now();

  const runs = [];
  for (let run = 1; run <= RUNS; run++) {
    log(`run ${run}/${RUNS}`);
    const res = { cold: {}, rss: {}, latency: {}, list: {}, token: null, sse: {}, legacy: {}, throughput: {}, storm: null };
    const started = {};
    for (const [name, w] of Object.entries(ws)) started[name] = await start(name, w);
    res.cold = await coldRequests(started, keys);
    await renewAccessToken(started['mcp-authbridge'], keys);
    const paths = pathsTo(upstream, started, keys);
    await warm(paths);

    const cpuBefore = Object.fromEntries(Object.entries(started).map(([n, w]) => [n, cpuMs(w.workerd)]));
    res.latency = await latency(paths, 'call', N.latency);
    res.cpu = Object.fromEntries(Object.entries(started).map(([n, w]) => [n, (cpuMs(w.workerd) - cpuBefore[n]) / N.latency]));
    res.list = await latency(paths, 'list', N.latency);
    res.token = await accessToken(started['mcp-authbridge'], paths, tokenPath(started, keys), N.latency);
    res.sse = await sse(paths, N.sse);
    res.legacy = await legacy(paths, N.legacy);
    for (const c of CONCURRENCY) {
      res.throughput[c] = {};
      for (const p of shuffle(paths)) res.throughput[c][p.name] = await throughput(p, c, N.throughputMs);
    }
    for (const [name, w] of Object.entries(started)) res.rss[name] = rssMiB(w.workerd);

    // The refresh storm: the access token has expired; 100 calls at once.
    const storm = await refreshStorm(started['mcp-authbridge'], keys, as, lastRefresh);
    lastRefresh = storm.refreshed;
    res.storm = storm.result;
    for (const w of Object.values(started)) await w.stop();
    runs.push(res);
    log(`run ${run}: storm ${JSON.stringify(res.storm)}`);
  }
  upstream.stop();
  oauthMcp.close();
  await as.stop();
  const md = report(runs, N, bundle, versions());
  writeFileSync(path.join(ROOT, 'bench/RESULTS.md'), md);
  process.stdout.write(md);
  rmSync(state, { recursive: true, force: true });
}

main().catch((e) => { console.error(e); process.exit(1); });
