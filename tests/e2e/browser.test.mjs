// End-to-end in a real browser (Debian's headless Chromium, driven by playwright-core): the
// connect pages of API.md §3 as a person uses them, for a header upstream's form and an OAuth
// upstream's confirm, sign-in and callback. Catches what fetch cannot: CSP, cookies, redirects
// and forms as browsers enforce them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { listen } from './peers/http_util.mjs';
import { startGateway, putUpstream, newLink, launchChromium } from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';
import { startOAuthPeers, stopOAuthPeers, oauthSecrets } from './peers/oauth_mcp_server.mjs';

let gw;
let as;
let mcp;
let plain;
let browser;

before(async () => {
  ({ as, mcp } = await startOAuthPeers({ accessTokenTtl: 60 }));
  plain = await startStreamable({ name: 'tickets', check: (h) => h['x-api-key'] === 'typed-in-browser' });
  gw = await startGateway();
  await putUpstream(gw, 'oauthy', { url: mcp.url, oauth: {} });
  await putUpstream(gw, 'tickets', {
    url: plain.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your Tickets API key' }],
  });
  browser = await launchChromium();
});

after(async () => {
  // The typed value, codes and tokens the gateway held must not be in its log.
  gw?.track('typed-in-browser', oauthSecrets(as, mcp));
  await browser?.close();
  plain?.close();
  await stopOAuthPeers(as, mcp);
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

test('a person fills in the form for a header upstream', async () => {
  const page = await browser.newPage();
  await page.goto((await newLink(gw, 'gus', 'tickets')).url);
  assert.match(await page.textContent('main'), /connects the account of gus/);
  await page.getByLabel('Your Tickets API key').fill('typed-in-browser');
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.waitForSelector('h1');
  assert.equal(await page.textContent('h1'), 'Connected');
  await page.close();
  assert.equal((await gw.admin('GET', '/connections?subject=gus')).json.items[0].status, 'connected');
});

test('a person connects an OAuth upstream: confirm, sign in at the server, back to the gateway', async () => {
  const page = await browser.newPage();
  const blocked = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) blocked.push(m.text()); });
  await page.goto((await newLink(gw, 'hana', 'oauthy')).url);
  await page.getByRole('button', { name: 'Continue to sign in' }).click();
  await page.waitForURL((u) => u.href.startsWith(as.issuer), { timeout: 10_000 });
  await page.fill('input[name="login"]', 'hana');
  await page.getByRole('button', { name: 'Sign in and allow' }).click();
  await page.waitForURL((u) => u.href.startsWith(gw.base + '/oauth/callback'), { timeout: 10_000 });
  assert.equal(await page.textContent('h1'), 'Connected', await page.content());
  assert.deepEqual(blocked, []);
  await page.close();
  const conns = await gw.admin('GET', '/connections?subject=hana');
  assert.equal(conns.json.items[0].status, 'connected');
});

test('a person allows an OAuth-only client on the consent page: the browser lands on the client\'s loopback redirect with the code', async () => {
  await putUpstream(gw, 'tickets-self', {
    url: plain.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your Tickets API key' }],
    sign_in: 'self',
  });
  // The client's own loopback redirect (a native client such as mcp-remote).
  const landed = [];
  const cb = http.createServer((req, res) => {
    landed.push(req.url);
    res.end('you may close this window');
  });
  const port = await listen(cb);
  try {
    const redirect = `http://127.0.0.1:${port}/callback`;
    const reg = await (await fetch(gw.base + '/oauth/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [redirect], client_name: 'Browser client' }) })).json();
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const url = new URL(gw.base + '/oauth/authorize');
    const params = { response_type: 'code', client_id: reg.client_id, redirect_uri: redirect, state: 'b-1', code_challenge: challenge, code_challenge_method: 'S256', resource: gw.base + '/mcp/tickets-self' };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const page = await browser.newPage();
    await page.goto(url.href);
    assert.match(await page.textContent('main'), /Browser client asks to use tickets-self/);
    await page.fill('#api_key', 'typed-in-browser');
    await Promise.all([page.waitForURL((u) => u.href.startsWith(redirect), { timeout: 10_000 }), page.click('button[value="allow"]')]);
    const back = new URL(page.url());
    assert.equal(back.searchParams.get('state'), 'b-1');
    assert.equal(back.searchParams.get('iss'), gw.base);
    const code = back.searchParams.get('code');
    gw.track(code);
    assert.equal(landed.length, 1);
    const token = await (await fetch(gw.base + '/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: verifier }).toString() })).json();
    gw.track([token.access_token, token.refresh_token]);
    const r = await fetch(gw.base + '/mcp/tickets-self', { method: 'POST', headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'b', version: '1' } } }) });
    assert.equal(r.status, 200, await r.text());
    await page.close();
  } finally {
    cb.close();
  }
});
