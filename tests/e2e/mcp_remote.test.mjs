// End-to-end with mcp-remote (node_modules/mcp-remote, a real OAuth client of the gateway as an
// authorization server, API.md §5a): the official SDK client speaks stdio to mcp-remote's proxy,
// which finds the gateway's metadata, registers, and opens the authorization URL in "the
// browser" — a script named by BROWSER that writes the URL to a file (what the `open` package's
// bundled xdg-open runs outside a desktop). Headless Chromium then walks the consent page with the
// person's own API key and lands on mcp-remote's loopback callback; mcp-remote redeems the code,
// and tools/list and tools/call go through to an SDK upstream that checks that key. A second run
// on the same config dir signs in with the stored tokens, and refreshes a refused one, with no
// browser at all (the second test continues from the first's config dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ROOT, startGateway, putUpstream, freePort, sleep, whoami, launchChromium } from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';

const PROXY = path.join(ROOT, 'node_modules/mcp-remote/dist/proxy.js');
const TYPED = 'remote-typed-key-' + randomBytes(8).toString('hex');

let gw;
let upstream;
let browser;
let home; // mcp-remote's config dir and HOME, its fake browser and what that browser was asked to open
let callbackPort;

before(async () => {
  gw = await startGateway();
  gw.track(TYPED);
  upstream = await startStreamable({ check: (h) => h['x-api-key'] === TYPED, name: 'remote-upstream' });
  await putUpstream(gw, 'tickets', {
    url: upstream.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'API key', secret: true }],
    sign_in: 'self',
  });
  home = mkdtempSync(path.join(os.tmpdir(), 'mab-mcp-remote-'));
  // The browser: `open` runs its own xdg-open, which (no desktop in this environment) runs
  // $BROWSER with the URL; the same script as `xdg-open` first on PATH covers a system xdg-open.
  const bin = path.join(home, 'bin');
  mkdirSync(bin);
  const script = `#!/bin/sh\nprintf '%s\\n' "$1" >> '${path.join(home, 'opened.txt')}'\n`;
  for (const name of ['browser', 'xdg-open']) writeFileSync(path.join(bin, name), script, { mode: 0o755 });
  callbackPort = await freePort();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  upstream?.close();
  if (home) rmSync(home, { recursive: true, force: true });
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

/** The URLs mcp-remote asked its browser to open, so far. */
const opened = () => {
  const file = path.join(home, 'opened.txt');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
};

/**
 * Starts mcp-remote's proxy for `url` under an SDK client over stdio, with its config dir, HOME and
 * browser in `home`, and begins connecting. mcp-remote answers on stdio only once it is connected
 * to the gateway (signed in), so `connected` settles after any sign-in. `stderr()` is its log.
 */
function startRemote(url) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [PROXY, url, String(callbackPort), '--host', '127.0.0.1', '--auth-timeout', '60', '--transport', 'http-only'],
    // Only what is named here (and the SDK's short default list: HOME, PATH, …) reaches it: no
    // DISPLAY or desktop, so the browser is the script.
    env: {
      HOME: home,
      MCP_REMOTE_CONFIG_DIR: path.join(home, 'config'),
      BROWSER: path.join(home, 'bin/browser'),
      PATH: `${path.join(home, 'bin')}:${process.env.PATH}`,
    },
    stderr: 'pipe',
    cwd: home,
  });
  let log = '';
  transport.stderr.on('data', (d) => { log += d; });
  const client = new Client({ name: 'e2e-mcp-remote', version: '1.0.0' });
  const connected = client.connect(transport, { timeout: 60_000 })
    .catch((e) => { throw new Error(`${e.message}; mcp-remote's log:\n${log}`); });
  connected.catch(() => {}); // awaited by the test; never an unhandled rejection meanwhile
  return { client, connected, stderr: () => log };
}

/** Waits until the browser was asked to open URL number `n` (1-based), or fails with mcp-remote's log. */
async function nthOpened(n, remote, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (opened().length < n) {
    if (Date.now() > deadline) throw new Error(`mcp-remote opened no browser in ${ms} ms; its log:\n${remote.stderr()}`);
    await sleep(50);
  }
  return new URL(opened()[n - 1]);
}

/** mcp-remote's stored tokens (`<config>/mcp-remote-v1/<hash>_tokens.json`), tracked. */
function storedTokens() {
  const dir = path.join(home, 'config/mcp-remote-v1');
  const file = readdirSync(dir).find((f) => f.endsWith('_tokens.json'));
  assert.ok(file, `mcp-remote stored tokens: ${readdirSync(dir).join(', ')}`);
  const tokens = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
  gw.track([tokens.access_token, tokens.refresh_token]);
  return { file: path.join(dir, file), tokens };
}

/** Closes the client, which ends mcp-remote (stdin closed, then SIGTERM, then SIGKILL). */
const closeRemote = (remote) => remote.client.close().catch(() => {});

test('mcp-remote signs in through the gateway: registration, consent in Chromium with the person\'s own key, its loopback callback, tokens; then tools/list and tools/call reach the upstream with that key', { timeout: 120_000 }, async () => {
  const mcpUrl = gw.base + '/mcp/tickets';
  const remote = startRemote(mcpUrl);
  try {
    const authorize = await nthOpened(1, remote);
    assert.equal(authorize.origin + authorize.pathname, gw.base + '/oauth/authorize');
    const q = authorize.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.match(q.get('client_id'), /^mabc_/, 'registered by DCR');
    assert.equal(q.get('redirect_uri'), `http://127.0.0.1:${callbackPort}/oauth/callback`);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.equal(q.get('resource'), mcpUrl);
    assert.ok(q.get('state'));
    assert.equal(q.get('scope'), 'mcp', 'the scope the resource metadata lists');

    const page = await browser.newPage();
    try {
      const callback = `http://127.0.0.1:${callbackPort}/oauth/callback`;
      await page.goto(authorize.href);
      assert.match(await page.textContent('main'), /MCP CLI Proxy asks to use tickets/);
      assert.match(await page.textContent('main'), /127\.0\.0\.1/, 'names the host it sends the person back to');
      assert.equal(await page.getAttribute('#api_key', 'type'), 'password', 'a secret field');
      await page.fill('#api_key', TYPED);
      const [landed] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(callback), { timeout: 15_000 }),
        page.click('button[value="allow"]'),
      ]);
      const back = new URL(landed.url());
      gw.track(back.searchParams.get('code'));
      assert.equal(back.searchParams.get('state'), q.get('state'));
      assert.equal(back.searchParams.get('iss'), gw.base);
      assert.equal(landed.status(), 200);
      assert.match(await landed.text(), /Authorization successful/, 'mcp-remote took the code');
    } finally {
      await page.close().catch(() => {});
    }

    await remote.connected;
    const { tokens } = storedTokens();
    assert.match(tokens.access_token, /^maba_/);
    assert.ok(tokens.refresh_token);

    const { tools } = await remote.client.listTools();
    assert.ok(tools.some((t) => t.name === 'whoami'), JSON.stringify(tools.map((t) => t.name)));
    const seen = await whoami(remote.client);
    assert.equal(seen['x-api-key'], TYPED, 'the person\'s own key at the upstream');
    assert.equal(seen.authorization, undefined, 'the client\'s token never goes upstream');
    assert.ok(upstream.requests.length > 0);
    assert.ok(upstream.requests.every((r) => r.headers['x-api-key'] === TYPED && !r.headers.authorization));
    assert.equal(opened().length, 1, 'one browser sign-in');
  } finally {
    await closeRemote(remote);
  }
});

test('a later mcp-remote run on the same config dir uses the stored tokens, and refreshes a refused access token, without a browser', { timeout: 60_000 }, async () => {
  const again = startRemote(gw.base + '/mcp/tickets');
  try {
    await again.connected;
    assert.equal((await whoami(again.client))['x-api-key'], TYPED);
  } finally {
    await closeRemote(again);
  }

  // The stored access token no longer works (as after a revocation); the refresh token does.
  const { file, tokens } = storedTokens();
  writeFileSync(file, JSON.stringify({ ...tokens, access_token: gw.track('maba_' + randomBytes(40).toString('base64url')) }));
  const refreshed = startRemote(gw.base + '/mcp/tickets');
  try {
    await refreshed.connected;
    assert.equal((await whoami(refreshed.client))['x-api-key'], TYPED);
    const now = storedTokens().tokens;
    assert.notEqual(now.refresh_token, tokens.refresh_token, 'the refresh token was rotated');
    assert.match(now.access_token, /^maba_/);
  } finally {
    await closeRemote(refreshed);
  }
  assert.equal(opened().length, 1, 'no browser since the first sign-in');
});
