// End-to-end in a real browser (Debian's headless Chromium, driven by playwright-core): the
// connect pages of API.md §3 as a person uses them, for a header upstream's form and an OAuth
// upstream's confirm, sign-in and callback. Catches what fetch cannot: CSP, cookies, redirects
// and forms as browsers enforce them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startGateway, putUpstream, newLink } from './harness.mjs';
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
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
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
