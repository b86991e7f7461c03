// Test harness: starts the built Worker under `wrangler dev` on a free loopback port with
// throw-away state, and talks to its admin API. Everything listens on 127.0.0.1 only. Below
// startGateway: the helpers every test file shares, each taking the gateway it talks to first.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, createWriteStream, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { chromium } from 'playwright-core';
import { sleep } from './peers/http_util.mjs';

export { sleep };

export const ROOT = path.resolve(import.meta.dirname, '../..');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Values shorter than this are not searched for in logs: they would match ordinary text. */
const MIN_TRACKED = 8;

/**
 * Finds tracked values in a wrangler log. `tracked` maps value -> kind: `secret` (must appear
 * nowhere) or `link` (a connect link token: it is part of the URL path by API design, so
 * wrangler's own access-log line for a request to that link may show it; nothing else may).
 * Returns findings that never quote the value itself.
 */
export function scanLog(text, tracked) {
  const accessLine = /^\[wrangler:info\] [A-Z]+ \/connect\/\S+ \d{3} /;
  const found = [];
  for (const [value, kind] of tracked) {
    for (let at = text.indexOf(value); at !== -1; at = text.indexOf(value, at + 1)) {
      const lineStart = text.lastIndexOf('\n', at) + 1;
      const lineEnd = text.indexOf('\n', at + value.length);
      const line = text.slice(lineStart, lineEnd === -1 ? undefined : lineEnd);
      if (kind === 'link' && accessLine.test(line)) continue;
      const lineNo = text.slice(0, at).split('\n').length;
      found.push(`a ${kind} (${value.length} chars, starting ${JSON.stringify(value.slice(0, 4))}) on log line ${lineNo}: ${line.replaceAll(value, '<REDACTED>').slice(0, 200)}`);
    }
  }
  return found;
}

/**
 * Starts `wrangler dev` with the already-built Worker (MAB_SKIP_BUILD=1). Returns the gateway's
 * base URL, its admin token, the values it was given, a stop() and logText() for the captured log.
 *
 * Every secret a test creates is tracked: the admin token and encryption key, every value PUT
 * through admin() (operator and subject secrets, OAuth client secrets), every key and link it
 * answers; tests add what the gateway never sees through admin() (values typed on connect pages,
 * OAuth tokens, connect_url links) with track() and trackLink(). stop() then fails if any of them
 * appears in this gateway's wrangler log. restart() stops wrangler and starts it again on the
 * same ports, with the same vars and the same --persist-to state.
 */
export async function startGateway(vars = {}) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const state = mkdtempSync(path.join(os.tmpdir(), 'mab-state-'));
  const logFile = path.join(state, 'wrangler.log');
  const adminToken = 'adm_' + randomBytes(24).toString('base64url');
  const encryptionKey = randomBytes(32).toString('base64');
  const allVars = {
    ADMIN_TOKEN: adminToken,
    ENCRYPTION_KEY: encryptionKey,
    ALLOW_PRIVATE_UPSTREAMS: 'true',
    ...vars,
  };
  const args = () => [
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
    '--persist-to', path.join(state, 'persist'), '--show-interactive-dev-session=false',
    ...Object.entries(allVars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  const base = `http://127.0.0.1:${port}`;

  const tracked = new Map(); // value -> 'secret' | 'link'
  const track = (...values) => {
    for (const v of values.flat()) if (typeof v === 'string' && v.length >= MIN_TRACKED) tracked.set(v, 'secret');
    return values[0];
  };
  const trackLink = (url) => {
    const token = typeof url === 'string' ? url.split('/connect/')[1] : undefined;
    if (token && token.length >= MIN_TRACKED && !tracked.has(token)) tracked.set(token, 'link');
    return url;
  };
  track(allVars.ADMIN_TOKEN, allVars.ENCRYPTION_KEY);

  let child = null;
  let exited = null;
  let logDone = Promise.resolve();
  async function launch() {
    // Appends: after a restart the log holds both runs, and the scan covers both.
    const log = createWriteStream(logFile, { flags: 'a' });
    logDone = new Promise((r) => log.on('close', r));
    exited = null;
    child = spawn(path.join(ROOT, 'node_modules/.bin/wrangler'), args(), {
      cwd: ROOT,
      env: {
        ...process.env,
        PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH}`,
        MAB_SKIP_BUILD: '1',
        WRANGLER_SEND_METRICS: 'false',
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on('exit', (code, signal) => { exited = code ?? signal; });
    // Ends the log once both pipes are drained (they may close after the process exits).
    let open = 2;
    const ended = () => { if (--open === 0) log.end(); };
    child.stdout.on('close', ended);
    child.stderr.on('close', ended);
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (exited !== null) throw new Error(`wrangler dev exited (${exited}):\n${readFileSync(logFile, 'utf8')}`);
      if (Date.now() > deadline) throw new Error(`wrangler dev not ready in 120 s:\n${readFileSync(logFile, 'utf8')}`);
      try {
        const r = await fetch(`${base}/healthz`);
        if (r.ok && (await r.text()) === 'ok') break;
      } catch { /* not up yet */ }
      await sleep(250);
    }
  }
  async function kill(signal) {
    const running = child;
    if (!running) return;
    const gone = new Promise((r) => (exited !== null ? r() : running.once('exit', r)));
    try { process.kill(-running.pid, signal); } catch { /* gone */ }
    await gone;
    // The pipes close once every process holding them is gone; bounded, so stop() never hangs.
    await Promise.race([logDone, new Promise((r) => setTimeout(r, 10_000).unref())]);
    child = null;
  }
  await launch();

  const admin = async (method, p, body) => {
    // What it writes must stay out of logs, even if the write never gets an answer.
    let sent = body;
    try { sent = typeof body === 'string' ? JSON.parse(body) : body; } catch { /* not JSON */ }
    if (sent && typeof sent === 'object') track(sent.value, sent.oauth?.client_secret);
    const r = await fetch(`${base}/admin/v1${p}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    // And what it was given: keys and links.
    if (json && typeof json === 'object') {
      track(json.key);
      if (p === '/links') trackLink(json.url);
    }
    return { status: r.status, json, text, headers: r.headers };
  };
  return {
    base,
    adminToken,
    encryptionKey,
    admin,
    track,
    trackLink,
    logText: () => readFileSync(logFile, 'utf8'),
    /**
     * Stops wrangler (SIGTERM, or e.g. SIGKILL for a crash) and starts it again on the same
     * state; `vars` changes vars for this and later runs (e.g. a rotated ENCRYPTION_KEY).
     */
    async restart({ signal = 'SIGTERM', vars: changed = {} } = {}) {
      await kill(signal);
      Object.assign(allVars, changed);
      track(Object.values(changed).flatMap((v) => String(v).split(',')));
      await launch();
    },
    async stop() {
      await kill('SIGTERM');
      const found = scanLog(readFileSync(logFile, 'utf8'), tracked);
      rmSync(state, { recursive: true, force: true });
      if (found.length) throw new Error(`tracked values appeared in the wrangler log:\n${found.join('\n')}`);
    },
  };
}

/** The JSON `data` of each event in an SSE text. */
export const sseData = (text) => text
  .split(/\r?\n\r?\n/)
  .map((ev) => ev.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n'))
  .filter(Boolean)
  .map((d) => JSON.parse(d));

/** Reads a Streamable HTTP answer (JSON or SSE) and returns the JSON-RPC messages in it. */
export async function rpcMessages(response) {
  const type = response.headers.get('content-type') || '';
  const text = await response.text();
  if (type.startsWith('text/event-stream')) return sseData(text);
  return text ? [JSON.parse(text)] : [];
}

// ---- MCP requests, raw: what a client without an SDK sends.

/** The Accept header a Streamable HTTP client sends. */
export const ACCEPT = 'application/json, text/event-stream';

export const initialize = (id = 1) => ({
  jsonrpc: '2.0', id, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

export const callTool = (id, name, args = {}, meta) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) } });

/**
 * POSTs a JSON-RPC body (an object, or a string sent as it is) to the gateway's `path` with
 * `Authorization: Bearer <key>` (none when `key` is null), the content type and Accept of a
 * Streamable HTTP client; `extraHeaders` add to or replace those; `init` adds fetch options
 * (e.g. a `signal`). Resolves with the fetch Response, unread.
 */
export function rawMcp(gw, path, key, body, extraHeaders = {}, init = {}) {
  return fetch(gw.base + path, {
    method: 'POST',
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      'content-type': 'application/json',
      accept: ACCEPT,
      ...extraHeaders,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

/**
 * rawMcp, read: `{status, headers, text, json}`, where `json` is the JSON answer or the first
 * message of an SSE answer (null for any other or an empty body). A `connect_url` in it is tracked
 * as a link.
 */
export async function mcpAnswer(gw, path, key, body, extraHeaders = {}, init = {}) {
  const r = await rawMcp(gw, path, key, body, extraHeaders, init);
  const text = await r.text();
  const type = r.headers.get('content-type') || '';
  let json = null;
  if (type.startsWith('text/event-stream')) json = sseData(text)[0] ?? null;
  else if (type.includes('json') && text) json = JSON.parse(text);
  gw.trackLink(json?.error?.data?.connect_url);
  return { status: r.status, headers: r.headers, text, json };
}

/** Calls `whoami` on the gateway's `path` with `key` (a key or access token); asserts 200 and returns its JSON. */
export async function whoamiAt(gw, path, key) {
  const r = await mcpAnswer(gw, path, key, callTool(1, 'whoami'));
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.json.result.content[0].text);
}

// ---- Admin API writes that set a test up: each asserts its documented success status.

/** POST /keys: `{id, key, subject, upstreams, expires_at}`. */
export async function newKey(gw, subject, upstreams, extra = {}) {
  const r = await gw.admin('POST', '/keys', { subject, upstreams, ...extra });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

/** PUT /upstreams/{id}: the admin answer. */
export async function putUpstream(gw, id, body) {
  const r = await gw.admin('PUT', `/upstreams/${id}`, body);
  assert.equal(r.status, 200, r.text);
  return r;
}

/** POST /links: `{url, expires_at}`. */
export async function newLink(gw, subject, upstream, extra = {}) {
  const r = await gw.admin('POST', '/links', { subject, upstream, ...extra });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

// ---- Connect pages (API.md §3), as a browser uses them.

/**
 * A browser's cookie jar in miniature: `jar` (a Cookie header value, `a=1; b=2`, or nothing)
 * with the Set-Cookie answers of `headers` applied (a `Max-Age=0` one removes its cookie).
 */
export function withCookies(jar, headers) {
  const cookies = new Map((jar ? jar.split('; ') : []).map((c) => [c.split('=')[0], c]));
  for (const set of headers.getSetCookie()) {
    const pair = set.split(';')[0];
    const name = pair.split('=')[0];
    if (/;\s*Max-Age=0(;|$)/i.test(set)) cookies.delete(name);
    else cookies.set(name, pair);
  }
  return [...cookies.values()].join('; ');
}

/**
 * Signs in to the operator console (API.md §4a) by HTTP, as a browser does: its sign-in page (for
 * the form's CSRF cookie and field), then `token` posted with `headers` added. Returns the
 * answer's `status`, `text` and `headers`, and `cookie`: the browser's cookies after it (with the
 * session when the token was right; the session is tracked, it must stay out of the log).
 */
export async function consoleSignIn(gw, token = gw.adminToken, headers = {}) {
  const form = await openPage(gw.base + '/admin/sign-in');
  const r = await fetch(gw.base + '/admin/sign-in', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: form.cookie, ...headers },
    body: new URLSearchParams({ csrf: form.csrf, token }).toString(),
    redirect: 'manual',
  });
  for (const set of r.headers.getSetCookie()) gw.track(set.split(';')[0].split('=').slice(1).join('='));
  return { status: r.status, text: await r.text(), headers: r.headers, cookie: withCookies(form.cookie, r.headers) };
}

/**
 * Opens a connect page like a browser whose cookies are `jar` (none: a browser that never
 * opened one): returns its status, HTML, CSRF field, the browser's cookies after it, and headers.
 */
export async function openPage(url, jar) {
  const r = await fetch(url, jar ? { headers: { cookie: jar } } : {});
  const html = await r.text();
  const csrf = html.match(/name="csrf" value="([^"]+)"/)?.[1];
  return { status: r.status, html, csrf, cookie: withCookies(jar, r.headers), headers: r.headers };
}

/** Submits a connect page's form; a typed `api_key` is tracked: it must stay out of the log. */
export function submit(gw, url, fields, cookie) {
  gw.track(fields.api_key);
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
  });
}

/**
 * Opens an OAuth upstream's connect link and presses "Continue", like a browser with the cookies
 * `jar`: returns the authorization URL, the cookie that binds the callback to this browser, and
 * the browser's cookies after it (`cookie`, the binding included).
 */
export async function startOAuthConnect(gw, url, jar) {
  const page = await openPage(url, jar);
  assert.equal(page.status, 200, page.html);
  assert.match(page.html, /Continue to sign in/);
  // Browsers apply form-action to the redirect that answers the form: it must allow the AS.
  assert.match(page.headers.get('content-security-policy'), /form-action 'self' https: http:/);
  assert.ok(page.csrf && page.cookie, 'the page has a CSRF field and sets its cookie');
  const go = await submit(gw, url, { csrf: page.csrf }, page.cookie);
  assert.equal(go.status, 303, await go.text());
  const binding = go.headers.get('set-cookie').split(';')[0];
  assert.match(go.headers.get('set-cookie'), /HttpOnly; SameSite=Lax/);
  const authorize = go.headers.get('location');
  gw.track(new URL(authorize).searchParams.get('state'), binding.split('=')[1]);
  return { authorize, binding, cookie: withCookies(page.cookie, go.headers) };
}

/** Comes back to the gateway's callback in the browser that started the flow (its `binding` cookie). */
export const oauthCallback = (callback, binding) => fetch(callback, { redirect: 'manual', headers: { cookie: binding } });

/**
 * The rest of the flow startOAuthConnect began: `user` signs in at the authorization server `as`
 * (or denies), and the browser comes back to the callback. Returns `{status, text, callback}`.
 */
export async function finishOAuthConnect(gw, as, { authorize, binding }, user, { deny = false } = {}) {
  const callback = await as.completeLogin(authorize, { user, deny });
  gw.track(new URL(callback).searchParams.get('code'));
  const done = await oauthCallback(callback, binding);
  return { status: done.status, text: await done.text(), callback };
}

// ---- The gateway as an authorization server (API.md §5a), walked by HTTP as an OAuth client and
// the person's browser would. `gw` needs only `base` and `track` (the bench passes its own).

/** POST /oauth/register with the client's metadata; asserts 201 and returns the registration. */
export async function oauthRegister(gw, metadata) {
  const r = await fetch(gw.base + '/oauth/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata) });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  const reg = JSON.parse(text);
  gw.track(reg.client_secret);
  return reg;
}

/** A PKCE S256 pair. */
export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** The gateway's authorization URL for `params` (response_type and S256 filled in). */
export function authorizeUrl(gw, params) {
  const url = new URL(gw.base + '/oauth/authorize');
  for (const [k, v] of Object.entries({ response_type: 'code', code_challenge_method: 'S256', ...params })) url.searchParams.set(k, v);
  return url;
}

/** Answers an authorization page `page` (openPage's answer) with `fields`, as its browser. */
export function answerAuthorization(gw, page, fields) {
  const session = page.html.match(/name="session" value="([^"]+)"/)[1];
  return submit(gw, gw.base + '/oauth/authorize', { csrf: page.csrf, session, ...fields }, page.cookie);
}

/**
 * Opens the consent page at `url` like a browser, answers it (`decision` allow or deny, with the
 * upstream's `fields`; a typed `api_key` is tracked), and returns the page's `html` and `csp`, and
 * the answer's `status` and `location` (a URL, or null), unfollowed.
 */
export async function consent(gw, url, fields, decision = 'allow') {
  const page = await fetch(url);
  const html = await page.text();
  assert.equal(page.status, 200, html);
  const csrf = html.match(/name="csrf" value="([^"]+)"/)[1];
  const session = html.match(/name="session" value="([^"]+)"/)[1];
  const cookie = page.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  gw.track(fields.api_key);
  const answer = await fetch(gw.base + '/oauth/authorize', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ csrf, session, decision, ...fields }).toString(),
    redirect: 'manual',
  });
  await answer.text();
  const location = answer.headers.get('location');
  return { html, csp: page.headers.get('content-security-policy'), status: answer.status, location: location && new URL(location) };
}

/**
 * An authorization code for a registered client, as a person allowing it gets one: PKCE pair,
 * authorization URL for `resource`, consent with `fields`. Asserts the 302 back to exactly
 * `redirect` with `code`, the `state` sent and `iss` = the gateway's origin. Returns
 * `{code, verifier, location, page}` (`page`: what consent() saw of the consent page).
 */
export async function authorizationCode(gw, { clientId, redirect, resource, fields, state = 'st-' + randomBytes(6).toString('hex') }) {
  const { verifier, challenge } = pkce();
  const url = authorizeUrl(gw, { client_id: clientId, redirect_uri: redirect, state, code_challenge: challenge, resource });
  const page = await consent(gw, url, fields);
  const { status, location } = page;
  assert.equal(status, 302);
  assert.equal(location.origin + location.pathname, redirect, 'back to the registered redirect URI');
  const code = location.searchParams.get('code');
  gw.track(code);
  assert.ok(code, `a code: ${location}`);
  assert.equal(location.searchParams.get('state'), state);
  assert.equal(location.searchParams.get('iss'), gw.base);
  return { code, verifier, location, page };
}

/** POST /oauth/token with form `params`; returns `{status, json, headers}`, tokens tracked. */
export async function tokenRequest(gw, params) {
  const r = await fetch(gw.base + '/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params).toString() });
  const json = await r.json();
  gw.track([json.access_token, json.refresh_token]);
  return { status: r.status, json, headers: r.headers };
}

/**
 * The redirect back to the client at `location`, checked (exactly `redirect`, `iss` = the
 * gateway's origin, the `state` sent, a code) and its code redeemed with `clientId` and the PKCE
 * `verifier`: asserts 200 and returns the token answer. The code and tokens are tracked.
 */
export async function redeemRedirect(gw, location, { clientId, redirect, state, verifier }) {
  const back = new URL(location);
  assert.equal(back.origin + back.pathname, redirect);
  assert.equal(back.searchParams.get('iss'), gw.base);
  assert.equal(back.searchParams.get('state'), state);
  const code = back.searchParams.get('code');
  assert.match(code ?? '', /^mabx_/, `a code: ${location}`);
  gw.track(code);
  const tokens = await tokenRequest(gw, { grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: redirect, code_verifier: verifier });
  assert.equal(tokens.status, 200, JSON.stringify(tokens.json));
  return tokens.json;
}

/**
 * The whole flow of an OAuth-only client by HTTP, for `resource` (an MCP URL of the gateway):
 * registration with `redirect` (and `client_name`), authorization code (authorizationCode's
 * checks), the code redeemed. Returns `{reg, tokens, page}`.
 */
export async function signInByHttp(gw, { redirect, clientName, resource, fields }) {
  const reg = await oauthRegister(gw, { redirect_uris: [redirect], ...(clientName ? { client_name: clientName } : {}) });
  const { code, verifier, page } = await authorizationCode(gw, { clientId: reg.client_id, redirect, resource, fields });
  const t = await tokenRequest(gw, { grant_type: 'authorization_code', code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: verifier });
  assert.equal(t.status, 200, JSON.stringify(t.json));
  return { reg, tokens: t.json, page };
}

/**
 * Debian's headless Chromium (scripts/setup.sh installs it), driven by playwright-core. It resolves
 * no host name at all (tests use 127.0.0.1 only), so a page sent to a real site (a connector's
 * https redirect) stops there with ERR_NAME_NOT_RESOLVED and nothing leaves the machine.
 */
export const launchChromium = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});

/**
 * A new page of `target` (a browser: in a fresh context with its own cookies; or a browser
 * context, sharing its cookies), watched: `blocked` collects what Chromium's
 * CSP refused (it says so on the console), `failed` the navigations that failed, `navigations`
 * every main-frame request (each hop of a redirect chain), `pages` each gateway document shown
 * (url, status, CSP header). Cookies the gateway sets are tracked: they must stay out of its log.
 */
export async function watchedPage(target, gw) {
  const page = await target.newPage();
  const watched = { page, blocked: [], failed: [], navigations: [], pages: [] };
  const mainFrame = (r) => r.isNavigationRequest() && r.frame() === page.mainFrame();
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) watched.blocked.push(`${page.url()}: ${m.text()}`); });
  page.on('request', (r) => { if (mainFrame(r)) watched.navigations.push(`${r.method()} ${r.url()}`); });
  page.on('requestfailed', (r) => { if (mainFrame(r)) watched.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`); });
  page.on('response', (r) => {
    if (!r.url().startsWith(gw.base)) return;
    if (mainFrame(r.request()) && r.status() < 300) watched.pages.push({ url: r.url(), status: r.status(), csp: r.headers()['content-security-policy'] });
    r.headersArray().then((all) => {
      for (const h of all) if (h.name.toLowerCase() === 'set-cookie') gw.track(h.value.split(';')[0].split('=').slice(1).join('='));
    }).catch(() => { /* the page closed first */ });
  });
  return watched;
}

/** No CSP refusal, no failed navigation, and every gateway page shown had its CSP. */
export function assertCleanWalk({ blocked, failed, pages }) {
  assert.deepEqual(blocked, [], 'Chromium blocked something under the CSP');
  assert.deepEqual(failed, [], 'a navigation failed');
  assert.ok(pages.length > 0);
  for (const p of pages) assert.match(p.csp ?? '', /form-action /, `${p.url} (${p.status}) has its CSP`);
}

/** The Python interpreter of the venv scripts/setup.sh made for the Python MCP peers. */
export const PYTHON = path.join(process.env.MAB_CACHE || path.join(os.homedir(), '.cache/mcp-authbridge'), 'venv/bin/python');

/** Starts tests/e2e/peers/py_server.py; resolves once it prints `READY <port>`. */
export function startPyServer({ apiKey, headerName = 'X-API-KEY' }) {
  const logFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'mab-py-')), 'requests.jsonl');
  const child = spawn(PYTHON, [path.join(ROOT, 'tests/e2e/peers/py_server.py'), '--port', '0', '--api-key', apiKey, '--header-name', headerName, '--log', logFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.on('exit', (code) => reject(new Error(`py_server exited (${code})`)));
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/READY (\d+)/);
      if (m) {
        child.removeAllListeners('exit');
        resolve({
          url: `http://127.0.0.1:${m[1]}/mcp`,
          requests: () => readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)),
          close: () => child.kill('SIGINT'),
        });
      }
    });
  });
}

/** Runs tests/e2e/peers/py_client.py against a URL with one key; resolves with its JSON line. */
export function runPyClient(url, key, tool = 'whoami') {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [path.join(ROOT, 'tests/e2e/peers/py_client.py'), '--url', url, '--key', key, '--call', tool], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1))) : reject(new Error(`py_client exited ${code}: ${err}`))));
  });
}

/** An official SDK client connected to `url` with one gateway key as its only credential. */
export async function sdkClient(url, key) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name: 'e2e', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** The same over the legacy HTTP+SSE transport (`url` is the gateway's /sse/{upstream}). */
export async function sdkLegacyClient(url, key) {
  const auth = { Authorization: `Bearer ${key}` };
  const transport = new SSEClientTransport(new URL(url), {
    requestInit: { headers: auth },
    eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...init?.headers, ...auth } }) },
  });
  const client = new Client({ name: 'e2e-legacy', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** Calls the `whoami` tool every test server has; returns its JSON. */
export async function whoami(client) {
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  return JSON.parse(result.content[0].text);
}

async function whoamiOnce(client) {
  try {
    return await whoami(client);
  } finally {
    await client.close();
  }
}

/** Connects, calls `whoami` once, disconnects. */
export const whoamiVia = async (url, key) => whoamiOnce(await sdkClient(url, key));

/** The same over the legacy HTTP+SSE transport. */
export const legacyWhoamiVia = async (url, key) => whoamiOnce(await sdkLegacyClient(url, key));

