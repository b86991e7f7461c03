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
  for (const s of ['gina', 'hal', 'ivy', 'kit', 'lou']) keys[s] = (await newKey(gw, s, ['tickets'])).key;
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
  assert.equal((await openPage(url, page.cookie)).status, 200, 'the link is still usable (in the browser that opened it)');
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
  // Hal connected in the first test: forget it (200, nothing to revoke for typed values), and
  // his next request asks him to connect again.
  const forgotten = await gw.admin('DELETE', '/subjects/hal/connections/tickets');
  assert.equal(forgotten.status, 200, forgotten.text);
  assert.deepEqual(forgotten.json, { revoked: false });
  const after = (await gw.admin('GET', '/connections?subject=hal')).json.items;
  assert.deepEqual(after.map((c) => [c.id, c.status, c.missing, c.updated_at]), [['tickets', 'connection_required', ['api_key'], null]]);
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

test('25 retries of an unconnected request hand out one link: the first still opens and completes after the 25th', async () => {
  const links = [];
  for (let i = 0; i < 25; i++) {
    const r = await mcp(keys.kit);
    assert.equal(r.status, 403);
    assert.equal(r.json.error.data.reason, 'connection_required');
    links.push(r.json.error.data.connect_url);
  }
  assert.equal(new Set(links).size, 1, 'the live link is handed out again, not a new one each time');
  // The user opens the link from the first answer (while the client keeps retrying).
  const page = await openPage(links[0]);
  assert.equal(page.status, 200, page.html);
  assert.match(page.html, /expires at/);
  assert.equal((await mcp(keys.kit)).json.error.data.connect_url, links[0]);
  GOOD.add('user-key-kit-5');
  const done = await submit(gw, links[0], { csrf: page.csrf, api_key: 'user-key-kit-5' }, page.cookie);
  assert.equal(done.status, 200);
  await done.text();
  assert.equal((await whoamiVia(gw.base + '/mcp/tickets', keys.kit))['x-api-key'], 'user-key-kit-5');
  // connection_required links are short-lived: 1 hour.
  assert.equal((await openPage(links[0])).status, 410, 'used up');
  GOOD.delete('user-key-kit-5');
  const again = await mcp(keys.kit);
  assert.notEqual(again.json.error.data.connect_url, links[0], 'a used link is not handed out again');
  const left = Date.parse((await openPage(again.json.error.data.connect_url)).html.match(/expires at (\S+) \(UTC\)/)[1]) - Date.now();
  assert.ok(left > 55 * 60_000 && left <= 60 * 60_000, `expires in ${left} ms`);
});

test('a link opened first in one browser refuses another browser, with a page that says what to do', async () => {
  const { url } = await newLink(gw, 'lou', 'tickets');
  const first = await openPage(url);
  assert.equal(first.status, 200);
  assert.match(first.cookie, /mab_browser=/);
  // Another browser (no cookies, or its own) gets a 4xx page naming the next step.
  for (const jar of [undefined, 'mab_browser=' + 'A'.repeat(43)]) {
    const other = await openPage(url, jar);
    assert.equal(other.status, 403, other.html);
    assert.match(other.html, /first opened in another browser/);
    assert.match(other.html, /Open it there|ask whoever sent it for a new link/);
    assert.ok(!other.html.includes('<form'), 'no form for the other browser');
  }
  // Its submit is refused too, even with a valid CSRF pair of its own; nothing is stored.
  const intruder = await openPage(url, 'mab_csrf=' + 'B'.repeat(43));
  const stolen = await submit(gw, url, { csrf: 'B'.repeat(43), api_key: 'user-key-gina-1' }, 'mab_csrf=' + 'B'.repeat(43));
  assert.equal(intruder.status, 403);
  assert.equal(stolen.status, 403);
  await stolen.text();
  assert.equal((await mcp(keys.lou)).status, 403, 'nothing was connected');
  // The first browser still can.
  GOOD.add('user-key-lou-6');
  const again = await openPage(url, first.cookie);
  assert.equal(again.status, 200);
  const done = await submit(gw, url, { csrf: again.csrf, api_key: 'user-key-lou-6' }, again.cookie);
  assert.equal(done.status, 200);
  await done.text();
  assert.equal((await mcp(keys.lou)).status, 200);
});

test('the connections list says what a request would meet: connected where admin-set secrets work, connection_required with missing otherwise', async () => {
  GOOD.add('user-key-max-7');
  const max = (await newKey(gw, 'max', ['tickets', 'plain'])).key;
  const ned = (await newKey(gw, 'ned', ['tickets', 'plain'])).key;
  assert.equal((await gw.admin('PUT', '/subjects/max/secrets/api_key', { value: 'user-key-max-7' })).status, 204);
  // Requests: max's admin-set secret works, ned has nothing for tickets.
  assert.equal((await mcp(max)).status, 200);
  assert.equal((await mcp(ned)).status, 403);
  const view = async (subject) => (await gw.admin('GET', `/connections?subject=${subject}`)).json.items.map((c) => [c.upstream, c.status, c.missing]);
  assert.deepEqual(await view('max'), [['plain', 'connected', undefined], ['tickets', 'connected', undefined]]);
  assert.deepEqual(await view('ned'), [['plain', 'connected', undefined], ['tickets', 'connection_required', ['api_key']]]);
  assert.deepEqual(await view('nobody-at-all'), [], 'a subject without keys or connections');
});
