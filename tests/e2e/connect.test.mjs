// End-to-end: per-user connect links for header upstreams (API.md §3), and where `{{user.X}}`
// comes from (§2, §4). A `connection_required` answer carries a link; the end user opens it,
// types their own API key into a safe, CSRF-protected form, and from then on their gateway key
// reaches the upstream with it; links are single-use and expire; the admin API validates links
// and forgets connections; an upstream 401 to typed values asks the user to connect again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, sleep, whoamiVia, initialize, mcpAnswer, newKey, putUpstream, newLink, openPage, submit } from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';

const GOOD = new Set(['user-key-gina-1', 'user-key-hal-2', 'user-key-gina-3']);
let gw;
let upstream;
const keys = {};

/** `initialize` on the header upstream, raw. */
const mcp = (key) => mcpAnswer(gw, '/mcp/tickets', key, initialize());

before(async () => {
  upstream = await startStreamable({ name: 'tickets', check: (h) => GOOD.has(h['x-api-key']) });
  gw = await startGateway();
  await putUpstream(gw, 'tickets', {
    url: upstream.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your Tickets API key' }],
  });
  await putUpstream(gw, 'plain', { url: upstream.url });
  for (const s of ['gina', 'hal', 'ivy']) keys[s] = (await newKey(gw, s, ['tickets'])).key;
  // Gina also has an operator-set value that no longer works: what she types must win.
  assert.equal((await gw.admin('PUT', '/subjects/gina/secrets/api_key', { value: 'stale-key' })).status, 204);
});

after(async () => {
  upstream?.close();
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

test('connection_required carries a connect link; the page is a safe, plain form', async () => {
  const r = await mcp(keys.hal);
  assert.equal(r.status, 403);
  const url = r.json.error.data.connect_url;
  assert.equal(r.json.error.data.reason, 'connection_required');
  assert.match(url, new RegExp(`^${gw.base}/connect/mabl_[0-9a-f]{64}_[A-Za-z0-9_-]{43}$`));
  const page = await openPage(url);
  assert.equal(page.status, 200);
  assert.match(page.html, /<label for="api_key">Your Tickets API key<\/label>/);
  assert.match(page.html, /type="password"/);
  assert.ok(!page.html.includes('<script'));
  assert.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(page.headers.get('cache-control'), 'no-store');
  assert.match(page.headers.get('set-cookie'), /HttpOnly; SameSite=Strict/);
  assert.ok(page.csrf && page.cookie);

  // Hal connects with his own key; his next request reaches the upstream with it.
  const done = await submit(gw, url, { csrf: page.csrf, api_key: 'user-key-hal-2' }, page.cookie);
  assert.equal(done.status, 200);
  assert.match(await done.text(), /Your account for tickets is connected/);
  assert.equal((await whoamiVia(gw.base + '/mcp/tickets', keys.hal))['x-api-key'], 'user-key-hal-2');
});

test('CSRF: a submit without the cookie or with a wrong token is refused, and the link survives', async () => {
  const { url } = await newLink(gw, 'ivy', 'tickets');
  const page = await openPage(url);
  const noCookie = await submit(gw, url, { csrf: page.csrf, api_key: 'x' });
  assert.equal(noCookie.status, 403);
  await noCookie.text();
  const wrong = await submit(gw, url, { csrf: 'forged', api_key: 'x' }, page.cookie);
  assert.equal(wrong.status, 403);
  await wrong.text();
  assert.equal((await openPage(url)).status, 200, 'the link is still usable');
});

test('values typed on the page beat operator-set ones; bad input re-asks without echoing secrets', async () => {
  assert.equal((await mcp(keys.gina)).status, 403, 'the operator-set value is stale');
  const { url, expires_at } = await newLink(gw, 'gina', 'tickets', { expires_in: 600 });
  assert.match(expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const page = await openPage(url);
  const bad = await submit(gw, url, { csrf: page.csrf, api_key: 'has\nnewline' }, page.cookie);
  assert.equal(bad.status, 400);
  const badHtml = await bad.text();
  assert.match(badHtml, /printable ASCII/);
  assert.ok(!badHtml.includes('newline'), 'the typed secret is not echoed');
  const ok = await submit(gw, url, { csrf: page.csrf, api_key: 'user-key-gina-1' }, page.cookie);
  assert.equal(ok.status, 200);
  await ok.text();
  assert.equal((await whoamiVia(gw.base + '/mcp/tickets', keys.gina))['x-api-key'], 'user-key-gina-1');
  const conns = await gw.admin('GET', '/connections?subject=gina');
  assert.deepEqual(conns.json.items.map((c) => [c.id, c.status]), [['tickets', 'connected']]);
  assert.ok(!conns.text.includes('user-key-gina-1'));

  // Used up: a second visit or submit is 410.
  assert.equal((await openPage(url)).status, 410);
  const again = await submit(gw, url, { csrf: page.csrf, api_key: 'user-key-gina-3' }, page.cookie);
  assert.equal(again.status, 410);
  await again.text();
});

test('a link completes once, even when submitted twice at the same moment', async () => {
  const { url } = await newLink(gw, 'ivy', 'tickets');
  const page = await openPage(url);
  const answers = await Promise.all([0, 1, 2].map(() => submit(gw, url, { csrf: page.csrf, api_key: 'user-key-gina-3' }, page.cookie)));
  const statuses = answers.map((a) => a.status).sort();
  await Promise.all(answers.map((a) => a.text()));
  assert.deepEqual(statuses, [200, 410, 410]);
});

test('expired, unknown and malformed links', async () => {
  const { url } = await newLink(gw, 'ivy', 'tickets', { expires_in: 1 });
  await sleep(1200);
  assert.equal((await openPage(url)).status, 410);
  const forged = url.slice(0, -4) + 'AAAA';
  assert.equal((await openPage(forged)).status, 404);
  assert.equal((await openPage(gw.base + '/connect/not-a-link')).status, 404);
  assert.equal((await openPage(gw.base + '/connect/mabl_' + 'f'.repeat(64) + '_' + 'A'.repeat(43))).status, 404);
});

test('admin: links are validated, connections can be forgotten', async () => {
  for (const [body, field] of [
    [{ upstream: 'tickets' }, 'subject'],
    [{ subject: 'ivy' }, 'upstream'],
    [{ subject: 'ivy', upstream: 'nope' }, 'upstream'],
    [{ subject: 'ivy', upstream: 'plain' }, 'upstream'],
    [{ subject: 'ivy', upstream: 'tickets', expires_in: 0 }, 'expires_in'],
  ]) {
    const r = await gw.admin('POST', '/links', body);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.data.field, field);
  }
  // Hal connected in the first test: forget it, and his next request asks him to connect again.
  assert.equal((await gw.admin('DELETE', '/subjects/hal/connections/tickets')).status, 204);
  assert.deepEqual((await gw.admin('GET', '/connections?subject=hal')).json.items, []);
  const r = await mcp(keys.hal);
  assert.equal(r.status, 403);
  assert.match(r.json.error.data.connect_url, /\/connect\/mabl_/);
  assert.equal((await gw.admin('DELETE', '/subjects/hal/connections/tickets')).status, 404);
});

test('an upstream 401 to typed values asks the user to reconnect, and the reconnect sticks', async () => {
  // Ivy completed a link with a key the upstream accepts; the upstream then revokes it.
  GOOD.delete('user-key-gina-3');
  const refused = await mcp(keys.ivy);
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error.data.reason, 'connection_required');
  assert.equal((await gw.admin('GET', '/connections?subject=ivy')).json.items[0].status, 'connection_required');
  const page = await openPage(refused.json.error.data.connect_url);
  GOOD.add('user-key-ivy-4');
  const done = await submit(gw, refused.json.error.data.connect_url, { csrf: page.csrf, api_key: 'user-key-ivy-4' }, page.cookie);
  assert.equal(done.status, 200);
  await done.text();
  assert.equal((await mcp(keys.ivy)).status, 200);
  assert.equal((await gw.admin('GET', '/connections?subject=ivy')).json.items[0].status, 'connected');
});
