// End-to-end: the admin API (API.md §4) against its OpenAPI document, docs/openapi.json. The
// gateway serves the document (public, the build's own copy); schemathesis, property-based,
// generates requests for every operation from it (valid ones, and ones that break each schema,
// undeclared methods, OpenAPI links followed as stateful sequences) and checks every answer
// against it: no 5xx, only documented statuses, content types, headers and bodies, invalid data
// refused, 405 with the right `Allow`, deleted objects gone. Bounded in time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGateway, putUpstream, newKey, PYTHON, ROOT } from './harness.mjs';

const SCHEMATHESIS = path.join(path.dirname(PYTHON), 'schemathesis');
const DOCUMENT = readFileSync(path.join(ROOT, 'docs/openapi.json'), 'utf8');

// Every check but three, which send requests without the admin token or with a wrong one, as
// does generating the token as a parameter (turned off below): each counts toward the admin
// API's limit (10 wrong tokens in 5 minutes per client address), after which every request of
// the run is 429 and tests nothing else. The token's 401 is checked below, the limit in
// mcp_surface. And `positive_data_acceptance` expects every schema-valid body to be taken, but
// the schemas are necessary conditions only: the URL policy, the template grammar, the header
// names refused, a link's upstream existing are checked beyond what JSON Schema can say (the
// document describes them), so a valid-looking body may rightly be a 400.
const EXCLUDED = ['ignored_auth', 'object_level_authorization', 'positive_data_acceptance'];
const MAX_SECONDS = 60;

let gw;
let work;

before(async () => {
  gw = await startGateway();
  work = mkdtempSync(path.join(os.tmpdir(), 'mab-openapi-'));
  // What the examples in the document name: an upstream a link can be made for, a subject with a key.
  await putUpstream(gw, 'svc', {
    url: 'http://127.0.0.1:9/mcp',
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'API key' }],
  });
  await newKey(gw, 'alice', ['svc']);
});

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await gw?.stop();
});

test('the gateway serves docs/openapi.json, without the admin token', async () => {
  const r = await fetch(`${gw.base}/admin/v1/openapi.json`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(await r.text(), DOCUMENT, 'the build serves the repository file as it is');
  const post = await fetch(`${gw.base}/admin/v1/openapi.json`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET');
});

test('without the token, an operation answers as the document says', async () => {
  const doc = JSON.parse(DOCUMENT);
  const r = await fetch(`${gw.base}/admin/v1/upstreams`);
  assert.ok(doc.paths['/admin/v1/upstreams'].get.responses['401']);
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), doc.components.headers.WwwAuthenticate.schema.const);
  const body = await r.json();
  assert.deepEqual(body, { error: { code: 'unauthorized', message: body.error.message, data: { reason: 'unauthorized' } } });
});

test('schemathesis finds nothing the gateway answers against the document', { timeout: (MAX_SECONDS + 60) * 1000 }, async (t) => {
  const reports = path.join(work, 'reports');
  const args = [
    'run', `${gw.base}/admin/v1/openapi.json`,
    '--header', `Authorization: Bearer ${gw.adminToken}`,
    '--checks', 'all', '--exclude-checks', EXCLUDED.join(','),
    '--generation-with-security-parameters', 'false',
    '--max-examples', '10', '--max-time', String(MAX_SECONDS),
    // One worker: on CPython 3.11, Hypothesis' strategy descriptions (ast.parse) fail now and
    // then when two threads build them at once ("AST constructor recursion depth mismatch").
    '--workers', '1',
    '--request-timeout', '10',
    '--generation-database', 'none',
    '--report', 'json,har', '--report-dir', reports,
    '--no-color',
  ];
  const started = Date.now();
  const { code, output } = await run(SCHEMATHESIS, args, work);
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const reportText = readFileSync(reportFile(reports, 'json-'), 'utf8');
  const report = JSON.parse(reportText);
  const seed = reportText.match(/"seed": (\d+)/)?.[1]; // past 2^53: read as text
  trackWhatWasSent(gw, JSON.parse(readFileSync(reportFile(reports, 'har-'), 'utf8')));

  const { generated } = report.test_cases;
  t.diagnostic(`schemathesis: ${generated} test cases in ${seconds} s, seed ${seed} (replay: --seed)`);
  const findings = [
    ...report.failures.map((f) => `${f.code} ${f.title}: ${f.operations.join(', ')}`),
    ...report.errors.map((e) => `error: ${JSON.stringify(e).slice(0, 300)}`),
  ];
  for (const f of findings) t.diagnostic(f);
  assert.ok(generated > 100, `only ${generated} test cases`);
  assert.equal(report.operations.tested, report.operations.total, 'every operation tested');
  assert.deepEqual(findings, [], output.slice(-6000));
  assert.equal(code, 0, output.slice(-6000));
});

function run(cmd, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The report schemathesis wrote under `dir` whose name starts with `prefix`. */
function reportFile(dir, prefix) {
  const name = readdirSync(dir).find((f) => f.startsWith(prefix));
  assert.ok(name, `no ${prefix}* report in ${dir}`);
  return path.join(dir, name);
}

/**
 * What schemathesis set and was given must stay out of the log too: every key and link, and the
 * secret values it sent that could not be ordinary log text by chance (generated ones may be
 * `"00000000"`).
 */
function trackWhatWasSent(gw, har) {
  const parse = (text) => { try { return JSON.parse(text); } catch { return null; } };
  const distinctive = (v) => typeof v === 'string' && v.length >= 16 && new Set(v).size >= 8;
  for (const { request, response } of har.log.entries) {
    const sent = parse(request.postData?.text ?? '');
    if (sent && typeof sent === 'object') gw.track([sent.value, sent.oauth?.client_secret].filter(distinctive));
    const got = parse(response.content?.text ?? '');
    if (got && typeof got === 'object') {
      gw.track(got.key);
      if (request.url.endsWith('/admin/v1/links')) gw.trackLink(got.url);
    }
  }
}
