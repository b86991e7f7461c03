// End-to-end in a real browser (Debian's headless Chromium, driven by playwright-core): the
// connect pages of API.md §3 as a person uses them, for a header upstream's form and an OAuth
// upstream's confirm, sign-in and callback; and the authorization pages of §5a (sign-in `link`
// and `self`, for a header upstream and for one with its own OAuth chained inside the flow), up
// to the client's loopback redirect. Catches what fetch cannot: CSP, cookies, redirects and
// forms as browsers enforce them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { served } from './peers/http_util.mjs';
import {
  startGateway, putUpstream, newLink, launchChromium, oauthRegister, pkce, authorizeUrl, tokenRequest, rawMcp, initialize,
  redeemRedirect, whoamiAt, watchedPage, assertCleanWalk,
} from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';
import { startOAuthPeers, stopOAuthPeers, oauthSecrets } from './peers/oauth_mcp_server.mjs';

let gw;
let as;
let mcp;
let plain;
let keyed;
let browser;
// The API key dora types on the consent page (sign-in `link`): the upstream accepts only it.
const DORA_KEY = 'dora-typed-' + randomBytes(8).toString('hex');

before(async () => {
  ({ as, mcp } = await startOAuthPeers({ accessTokenTtl: 60 }));
  plain = await startStreamable({ name: 'tickets', check: (h) => h['x-api-key'] === 'typed-in-browser' });
  keyed = await startStreamable({ name: 'keyed', check: (h) => h['x-api-key'] === DORA_KEY, stateless: true, json: true });
  gw = await startGateway();
  await putUpstream(gw, 'oauthy', { url: mcp.url, oauth: {} });
  await putUpstream(gw, 'tickets', {
    url: plain.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your Tickets API key' }],
  });
  await putUpstream(gw, 'keyed-link', {
    url: keyed.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'API key', secret: true }],
    sign_in: 'link',
  });
  await putUpstream(gw, 'oauthy-self', { url: mcp.url, oauth: {}, sign_in: 'self' });
  browser = await launchChromium();
});

after(async () => {
  // The typed value, codes and tokens the gateway held must not be in its log.
  gw?.track('typed-in-browser', DORA_KEY, oauthSecrets(as, mcp));
  await browser?.close();
  plain?.close();
  keyed?.close();
  await stopOAuthPeers(as, mcp);
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

/**
 * An OAuth-only native client (mcp-remote, say), registered as `name`: its own loopback redirect,
 * a server on 127.0.0.1 that records the callbacks it gets (`landed`). `request(resource)` makes
 * an authorization request for a gateway MCP path (`{url, state, verifier}`); `redeem(location,
 * request)` checks the redirect back and redeems its code (redeemRedirect).
 */
async function loopbackClient(name) {
  const landed = [];
  const server = await served(http.createServer((req, res) => {
    if (req.url.startsWith('/callback')) landed.push(req.url); // not the favicon the browser may ask for
    res.end('you may close this window');
  }), '/callback');
  let reg;
  try {
    reg = await oauthRegister(gw, { redirect_uris: [server.url], client_name: name });
  } catch (err) {
    server.close();
    throw err;
  }
  return {
    redirect: server.url,
    reg,
    landed,
    close: server.close,
    request(resource, state = 'st-' + randomBytes(4).toString('hex')) {
      const { verifier, challenge } = pkce();
      const url = authorizeUrl(gw, { client_id: reg.client_id, redirect_uri: server.url, state, code_challenge: challenge, resource: gw.base + resource });
      return { url, state, verifier };
    },
    redeem: (location, { state, verifier }) => redeemRedirect(gw, location, { clientId: reg.client_id, redirect: server.url, state, verifier }),
  };
}

test('a person fills in the form for a header upstream', async () => {
  const walk = await watchedPage(browser, gw);
  const { page } = walk;
  await page.goto((await newLink(gw, 'gus', 'tickets')).url);
  assert.match(await page.textContent('main'), /connects the account of gus/);
  await page.getByLabel('Your Tickets API key').fill('typed-in-browser');
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.waitForSelector('h1');
  assert.equal(await page.textContent('h1'), 'Connected');
  await page.close();
  assertCleanWalk(walk);
  assert.equal((await gw.admin('GET', '/connections?subject=gus')).json.items[0].status, 'connected');
});

test('a person connects an OAuth upstream: confirm, sign in at the server, back to the gateway', async () => {
  const walk = await watchedPage(browser, gw);
  const { page } = walk;
  await page.goto((await newLink(gw, 'hana', 'oauthy')).url);
  await page.getByRole('button', { name: 'Continue to sign in' }).click();
  await page.waitForURL((u) => u.href.startsWith(as.issuer), { timeout: 10_000 });
  await page.fill('input[name="login"]', 'hana');
  await page.getByRole('button', { name: 'Sign in and allow' }).click();
  await page.waitForURL((u) => u.href.startsWith(gw.base + '/oauth/callback'), { timeout: 10_000 });
  assert.equal(await page.textContent('h1'), 'Connected', await page.content());
  await page.close();
  assertCleanWalk(walk);
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
  const client = await loopbackClient('Browser client');
  const walk = await watchedPage(browser, gw);
  const { page } = walk;
  try {
    const request = client.request('/mcp/tickets-self', 'b-1');
    await page.goto(request.url.href);
    assert.match(await page.textContent('main'), /Browser client asks to use tickets-self/);
    await page.fill('#api_key', 'typed-in-browser');
    await Promise.all([page.waitForURL((u) => u.href.startsWith(client.redirect), { timeout: 10_000 }), page.click('button[value="allow"]')]);
    const token = await client.redeem(page.url(), request);
    assert.equal(client.landed.length, 1);
    const r = await rawMcp(gw, '/mcp/tickets-self', token.access_token, initialize());
    assert.equal(r.status, 200, await r.text());
    assertCleanWalk(walk);
  } finally {
    await page.close();
    client.close();
  }
});

test('a person allows a web connector (ChatGPT) on the consent page: the browser follows the answer towards chatgpt.com (no CSP block), stopped there, with code, state and iss', async () => {
  const redirect = `https://chatgpt.com/connector/oauth/${pkce().verifier.slice(0, 12)}`;
  const reg = await oauthRegister(gw, { redirect_uris: [redirect], client_name: 'ChatGPT' });
  const { verifier, challenge } = pkce();
  const url = authorizeUrl(gw, { client_id: reg.client_id, redirect_uri: redirect, state: 'c-1', code_challenge: challenge, resource: gw.base + '/mcp/tickets-self' });
  const { page, blocked } = await watchedPage(browser, gw);
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

test('sign-in "link" for a header upstream in a browser: the person pastes the connect link, consent names its subject, the typed key is stored, the browser lands on the client\'s loopback redirect, and the token reaches the upstream with that key', { timeout: 90_000 }, async () => {
  const client = await loopbackClient('Link browser client');
  const walk = await watchedPage(browser, gw);
  const { page } = walk;
  try {
    const link = gw.trackLink((await newLink(gw, 'dora', 'keyed-link')).url);
    const request = client.request('/mcp/keyed-link');
    await page.goto(request.url.href);
    const first = await page.textContent('main');
    assert.match(first, /Link browser client asks to use keyed-link/);
    assert.match(first, /Paste the connect link/);
    assert.equal(await page.getByLabel('API key', { exact: true }).count(), 0, 'the account comes first, from the link');

    await page.getByLabel('Connect link').fill(link);
    await page.getByRole('button', { name: 'Continue', exact: true }).click();
    await page.getByText('This connects the account of').waitFor({ timeout: 15_000 });
    assert.match(await page.textContent('main'), /This connects the account of dora\./);

    gw.track(DORA_KEY);
    await page.getByLabel('API key', { exact: true }).fill(DORA_KEY);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(client.redirect), { timeout: 15_000 }),
      page.getByRole('button', { name: 'Allow', exact: true }).click(),
    ]);
    assert.match(await page.textContent('body'), /you may close this window/);
    assert.equal(client.landed.length, 1, 'the loopback redirect was hit once');
    const tokens = await client.redeem(page.url(), request);
    const seen = await whoamiAt(gw, '/mcp/keyed-link', tokens.access_token);
    assert.equal(seen['x-api-key'], DORA_KEY, 'the upstream got the key typed in the browser');
    assert.equal(seen.authorization, undefined, 'the client\'s token never goes upstream');
    const conns = await gw.admin('GET', '/connections?subject=dora');
    assert.equal(conns.json.items.find((c) => c.upstream === 'keyed-link')?.status, 'connected');
    assertCleanWalk(walk);
    // The link page and the consent page that names dora, each answered by a redirect to the
    // client at most: its origin, and no other, is a form target.
    assert.equal(walk.pages.length, 2, JSON.stringify(walk.pages));
    for (const p of walk.pages) assert.match(p.csp, new RegExp(`form-action 'self' ${new URL(client.redirect).origin};`));
  } finally {
    await page.close();
    client.close();
  }
});

test('sign-in "self" for an upstream with its own OAuth in a browser: consent, "Allow and sign in", the upstream\'s login form, the gateway\'s callback, the client\'s loopback redirect; no CSP block on the way, and the token reaches the upstream as the person who signed in', { timeout: 90_000 }, async () => {
  const client = await loopbackClient('Self browser client');
  const walk = await watchedPage(browser, gw);
  const { page } = walk;
  try {
    const request = client.request('/mcp/oauthy-self');
    await page.goto(request.url.href);
    const text = await page.textContent('main');
    assert.match(text, /Self browser client asks to use oauthy-self/);
    assert.match(text, /a new account of its own/);
    assert.match(text, /you sign in at the service itself/);

    // Allow: the gateway answers the form with a redirect to the upstream's authorization server,
    // which the consent page's form-action must let the browser follow.
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(as.issuer + '/interaction/'), { timeout: 15_000 }),
      page.getByRole('button', { name: 'Allow and sign in' }).click(),
    ]);
    const login = page.url();
    await page.fill('input[name="login"]', 'ines-at-idp');
    await Promise.all([
      // Back at the client, or at the server's own consent page if it shows one.
      page.waitForURL((u) => u.href.startsWith(client.redirect) || (u.href.startsWith(as.issuer + '/interaction/') && u.href !== login), { timeout: 15_000 }),
      page.getByRole('button', { name: 'Sign in and allow' }).click(),
    ]);
    if (!page.url().startsWith(client.redirect)) {
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(client.redirect), { timeout: 15_000 }),
        page.getByRole('button', { name: 'Allow', exact: true }).click(),
      ]);
    }

    // The way the browser went: the server's authorization endpoint, then the gateway's callback
    // (the code the server gave the gateway, and the gateway's state there: both tracked).
    const hops = walk.navigations.map((n) => n.split(' ')[1]);
    const toServer = hops.findIndex((u) => u.startsWith(as.issuer + '/auth?'));
    const callback = hops.findIndex((u) => u.startsWith(gw.base + '/oauth/callback'));
    assert.ok(toServer > 0 && callback > toServer && callback < hops.length - 1, walk.navigations.join('\n'));
    gw.track(new URL(hops[toServer]).searchParams.get('state'), new URL(hops[callback]).searchParams.get('code'));
    assert.ok(hops.at(-1).startsWith(client.redirect));

    assert.equal(client.landed.length, 1, 'the loopback redirect was hit once');
    const tokens = await client.redeem(page.url(), request);
    const seen = await whoamiAt(gw, '/mcp/oauthy-self', tokens.access_token);
    assert.equal(seen.sub, 'ines-at-idp', 'the upstream sees the person who signed in there');
    assertCleanWalk(walk);
    // The one gateway page shown: consent, answered by the redirect to the server (private http here).
    assert.equal(walk.pages.length, 1, JSON.stringify(walk.pages));
    assert.match(walk.pages[0].csp, /form-action 'self' https: http:;/);
  } finally {
    await page.close();
    client.close();
  }
});
