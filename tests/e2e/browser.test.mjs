// End-to-end in a real browser (Debian's headless Chromium, driven by playwright-core): the
// connect pages of API.md §3 as a person uses them, for a header upstream's form and an OAuth
// upstream's confirm, sign-in and callback. Catches what fetch cannot: CSP, cookies, redirects
// and forms as browsers enforce them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { listen } from './peers/http_util.mjs';
import { startGateway, putUpstream, newLink, launchChromium, oauthRegister, pkce, authorizeUrl, tokenRequest, rawMcp, initialize } from './harness.mjs';
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
    if (req.url.startsWith('/callback')) landed.push(req.url); // not the favicon the browser may ask for
    res.end('you may close this window');
  });
  const port = await listen(cb);
  try {
    const redirect = `http://127.0.0.1:${port}/callback`;
    const reg = await oauthRegister(gw, { redirect_uris: [redirect], client_name: 'Browser client' });
    const { verifier, challenge } = pkce();
    const url = authorizeUrl(gw, { client_id: reg.client_id, redirect_uri: redirect, state: 'b-1', code_challenge: challenge, resource: gw.base + '/mcp/tickets-self' });
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
    const token = (await tokenRequest(gw, { grant_type: 'authorization_code', code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: verifier })).json;
    const r = await rawMcp(gw, '/mcp/tickets-self', token.access_token, initialize());
    assert.equal(r.status, 200, await r.text());
    await page.close();
  } finally {
    cb.close();
  }
});

test('a person allows a web connector (ChatGPT) on the consent page: the browser follows the answer towards chatgpt.com (no CSP block), stopped there, with code, state and iss', async () => {
  const redirect = `https://chatgpt.com/connector/oauth/${pkce().verifier.slice(0, 12)}`;
  const reg = await oauthRegister(gw, { redirect_uris: [redirect], client_name: 'ChatGPT' });
  const { verifier, challenge } = pkce();
  const url = authorizeUrl(gw, { client_id: reg.client_id, redirect_uri: redirect, state: 'c-1', code_challenge: challenge, resource: gw.base + '/mcp/tickets-self' });
  const page = await browser.newPage();
  const blocked = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) blocked.push(m.text()); });
  try {
    await page.goto(url.href);
    assert.match(await page.textContent('main'), /ChatGPT asks to use tickets-self/);
    assert.match(await page.textContent('main'), /sent back to chatgpt\.com/);
    await page.fill('#api_key', 'typed-in-browser');
    // The browser issues the request to the connector only if the CSP let it follow the answer;
    // launchChromium resolves no name, so it goes no further.
    const [sent] = await Promise.all([
      page.waitForRequest((r) => r.url().startsWith(redirect), { timeout: 10_000 }),
      page.click('button[value="allow"]'),
    ]);
    assert.deepEqual(blocked, []);
    const back = new URL(sent.url());
    assert.equal(back.origin + back.pathname, redirect);
    assert.equal(back.searchParams.get('state'), 'c-1');
    assert.equal(back.searchParams.get('iss'), gw.base);
    const code = back.searchParams.get('code');
    gw.track(code);
    assert.ok(sent.redirectedFrom()?.url().startsWith(gw.base + '/oauth/authorize'), 'the 302 that answered the form');
    const token = await tokenRequest(gw, { grant_type: 'authorization_code', code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: verifier });
    assert.equal(token.status, 200, JSON.stringify(token.json));
    const r = await rawMcp(gw, '/mcp/tickets-self', token.json.access_token, initialize());
    assert.equal(r.status, 200, await r.text());
  } finally {
    await page.close();
  }
});
