// The report: bench/RESULTS.md's text, with the table, from the runs bench/run.mjs measured.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { ROOT, pct, median } from './measure.mjs';
import { CONCURRENCY, EVENTS, STORM, TOKEN_PATH } from './workloads.mjs';

const WORKERS = ['mcp-authbridge', 'JS passthrough', 'JS same-work'];

export function versions() {
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

/**
 * bench/RESULTS.md. `runs`: what each run measured; `n`: the workload sizes ({latency, sse,
 * legacy, throughputMs}); `bundle`: the wasm's size in KiB; `v`: `versions()`.
 */
export function report(runs, n, bundle, v) {
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
  // "Added" only for medians: a p99 is not additive (see the header text), so p99 rows give each
  // path's own p99 and the ratios of those.
  const added = (key) => (r, name) => median(r[key][name]) - median(r[key].direct);
  const abs = (key, p) => (r, name) => pct(r[key][name], p);
  row('tools/call (JSON), added p50', 'ms', added('latency'));
  row('tools/call (JSON), p50', 'ms', abs('latency', 50), { direct: true });
  row('tools/call (JSON), p99', 'ms', abs('latency', 99), { direct: true });
  row('tools/call (JSON), CPU of the workerd running the Worker, per request', 'ms', (r, name) => r.cpu[name]);
  row('tools/list, added p50', 'ms', added('list'));
  row('tools/list, p99', 'ms', abs('list', 99), { direct: true });
  row(`SSE answer of ${EVENTS} events: added delay per event (median)`, 'ms', (r, name) => median(r.sse.perEvent[name]) - median(r.sse.perEvent.direct), { d: 3 });
  row(`SSE answer of ${EVENTS} events: whole stream, added p50`, 'ms', (r, name) => median(r.sse.total[name]) - median(r.sse.total.direct));
  row('legacy SSE session: call round trip, added p50', 'ms', added('legacy'));
  for (const c of CONCURRENCY) row(`requests/s at concurrency ${c} (tools/call JSON)`, 'req/s', (r, name) => r.throughput[c][name], { direct: true, better: 'higher', d: 0 });
  row('first request after start (cold)', 'ms', (r, name) => r.cold[name], { d: 1 });
  row('resident memory of the workerd running the Worker, after the load', 'MiB', (r, name) => r.rss[name], { d: 1 });
  // The access token path beside the key path (its own workload: res.token).
  const tokenRows = [];
  const tokenRow = (figure, unit, perRun, { direct = false, d = 2 } = {}) => {
    const cells = (name) => mmm(runs.map((r) => perRun(r, name)), d);
    const ratio = mmm(runs.map((r) => perRun(r, TOKEN_PATH) / perRun(r, 'mcp-authbridge')), 2);
    tokenRows.push(`| ${figure} | ${unit} | ${direct ? cells('direct') : '—'} | ${cells('mcp-authbridge')} | ${cells(TOKEN_PATH)} | ${ratio} | lower |`);
  };
  const t = (r) => r.token.latency;
  tokenRow('tools/call (JSON), added p50', 'ms', (r, name) => median(t(r)[name]) - median(t(r).direct));
  tokenRow('tools/call (JSON), p50', 'ms', (r, name) => pct(t(r)[name], 50), { direct: true });
  tokenRow('tools/call (JSON), p99', 'ms', (r, name) => pct(t(r)[name], 99), { direct: true });
  tokenRow('tools/call (JSON), CPU of the workerd running the Worker, per request', 'ms', (r, name) => r.token.cpu[name]);
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
go round-robin over the paths in shuffled order; ${n.latency} per path for latency, ${n.sse}
streams, ${n.legacy} legacy round trips, ${n.throughputMs / 1000} s per throughput cell, after 50
warm-up calls.

"Added" (medians only) = the path's median minus direct's, in the same run: what the Worker adds
to the typical request. The p99 rows give each path's own p99, and their ratios are mcp-authbridge's
p99 ÷ that Worker's p99. A difference of two p99s would not be the p99 of the added time: a p99 is
the few slowest of ${n.latency} requests, made by rare stalls (a collection, the scheduler on a
shared core) that strike each path separately, so such a difference jumps from run to run and can
come out below zero, and a ratio of two of them means nothing.

Each cell: min / **median** / max over ${runs.length} runs. Ratios are mcp-authbridge ÷ that Worker,
per run (for latency lower is better, for requests/s higher is better).

| figure | unit | direct | mcp-authbridge | JS passthrough | JS same-work | ÷ passthrough | ÷ same-work | better |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

mcp-authbridge with its own OAuth access token (\`maba_…\`, on an upstream with \`sign_in: "self"\` in
front of the same upstream, the person's API key stored with the grant at consent), beside its key
path (\`mab_…\`, the subject's value set by the admin API), in a workload of their own: ${n.latency}
tools/call each, round-robin with direct in shuffled order (after 50 warm-up calls of the token
path), then ${n.latency} calls of each alone for the CPU per request (both run in the same workerd).
The token is got by HTTP at seeding (register, authorize, consent, code, token) and refreshed once
per run. Same units and cells as above; the ratio is token ÷ key, per run.

| figure | unit | direct | mcp-authbridge, key | mcp-authbridge, access token | ÷ key | better |
|---|---|---|---|---|---|---|
${tokenRows.join('\n')}

Refresh storm (mcp-authbridge only; an OAuth upstream right after its access token expired, ${STORM}
concurrent calls): authorization-server refresh grants per storm ${storms.map((s) => s.grants).join(', ')};
answered 200: ${storms.map((s) => s.ok).join(', ')} of ${STORM}${allOk ? '' : ` (statuses ${JSON.stringify(storms.map((s) => s.statuses))})`};
all answered within ${storms.map((s) => s.wallMs.toFixed(0)).join(', ')} ms (p50 ${storms.map((s) => s.p50.toFixed(0)).join(', ')} ms).

wasm bundle: ${bundle.raw.toFixed(0)} KiB raw, ${bundle.gzip.toFixed(0)} KiB gzip.

Where mcp-authbridge's time goes, part by part (A/B runs with the JS same-work Worker beside
them), the hot-path changes with their figures, what was tried and dropped, and what closing the
rest would take: [PROFILE.md](PROFILE.md).
`;
}
