// End-to-end in a real browser (Debian's headless Chromium, driven by playwright-core): the
// operator console of API.md §4a as an operator uses it — sign in by pasting ADMIN_TOKEN, the
// deployment's settings, an upstream created with a bad template and fixed, a subject looked up
// with a key minted (and used on /mcp), a connect link minted (and used), a connection
// forgotten, a key and a grant revoked — then its refusals by HTTP: CSRF, forged, expired and
// other-token session cookies, and the wrong-token limit it shares with the admin API.
// Screenshots go to tests/e2e/artifacts/console/ (git-ignored).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import {
  ROOT, startGateway, putUpstream, launchChromium, watchedPage, assertCleanWalk, whoamiAt, mcpAnswer, callTool,
  signInByHttp, consoleSignIn, sleep,
} from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';

const ARTIFACTS = path.join(ROOT, 'tests/e2e/artifacts/console');
const STATIC_KEY = 'static-upstream-key-' + randomBytes(6).toString('hex');
const TYPED_KEY = 'typed-on-link-' + randomBytes(6).toString('hex');

let gw;
let upstream;
let browser;
let operator; // the operator's browser context: its cookies are the console session
const walks = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  upstream = await startStreamable({ name: 'tickets', check: () => true, stateless: true, json: true });
  gw = await startGateway();
  gw.track(STATIC_KEY, TYPED_KEY);
  await putUpstream(gw, 'typed', {
    url: upstream.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your API key' }],
  });
  await putUpstream(gw, 'selfy', {
    url: upstream.url,
    headers: { 'X-API-KEY': '{{user.api_key}}', 'X-Subject': '{{subject}}' },
    user_fields: [{ name: 'api_key', label: 'Your API key' }],
    sign_in: 'self',
  });
  browser = await launchChromium();
  operator = await browser.newContext({ viewport: { width: 1200, height: 800 } });
});

after(async () => {
  await browser?.close();
  upstream?.close();
  await gw?.stop(); // last: it fails the file if a tracked value is in the wrangler log
});

/** A page of the operator's context, watched for CSP refusals; checked at the end of its test. */
async function consolePage() {
  const walk = await watchedPage(operator, gw);
  walks.push(walk);
  return walk.page;
}

/** Full-page screenshot into the artefact folder. */
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

/** The operator's session cookie (`mab_console` on http; `__Host-mab_console` on https). */
async function sessionCookie() {
  return (await operator.cookies(gw.base)).find((c) => c.name === 'mab_console');
}

/** Seals `plaintext` as the gateway does (core/seal.rs): `v1.<kid>.<b64url(nonce ‖ ct ‖ tag)>`. */
function sealLikeTheGateway(plaintext, context) {
  const key = Buffer.from(gw.encryptionKey, 'base64');
  const kid = createHash('sha256').update('mcp-authbridge key id\0').update(key).digest('hex').slice(0, 8);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(context));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return `v1.${kid}.${Buffer.concat([nonce, ct]).toString('base64url')}`;
}

/** A console session cookie value made outside the gateway: `expiresAt`, bound to `token`. */
function madeSession(expiresAt, token) {
  const binding = createHash('sha256').update('mcp-authbridge console session\0').update(token).digest('hex').slice(0, 16);
  return sealLikeTheGateway(`${expiresAt}.${binding}.${randomBytes(32).toString('base64url')}`, 'console-session');
}

/** GET a console page with `cookie`, unfollowed. */
const getWith = (p, cookie) => fetch(gw.base + p, { headers: cookie ? { cookie } : {}, redirect: 'manual' });

/** POST a console form with `cookie`, unfollowed. */
const postWith = (p, cookie, fields, headers = {}) => fetch(gw.base + p, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}), ...headers },
  body: new URLSearchParams(fields).toString(),
  redirect: 'manual',
});

test('sign-in: a wrong token is refused with a clear error; the right one opens a 12 h HttpOnly, SameSite=Strict session; the overview shows the settings that matter', async () => {
  const page = await consolePage();
  await page.goto(gw.base + '/admin/');
  assert.equal(new URL(page.url()).pathname, '/admin/sign-in', 'no session: to the sign-in page');
  await page.fill('#token', 'adm_wrong-' + randomBytes(8).toString('hex'));
  const [wrong] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('button[type=submit]')]);
  assert.equal(wrong.status(), 401);
  assert.match(await page.textContent('#token-error'), /not this deployment's admin token/);
  await shot(page, '01-sign-in-wrong-token');
  assert.equal(await sessionCookie(), undefined, 'no session for a wrong token');

  await page.fill('#token', gw.adminToken);
  await Promise.all([page.waitForURL(gw.base + '/admin/'), page.click('button[type=submit]')]);
  assert.equal(await page.textContent('h1'), 'Overview');
  const cookie = await sessionCookie();
  gw.track(cookie.value);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/');
  const hours = (cookie.expires * 1000 - Date.now()) / 3_600_000;
  assert.ok(hours > 11.9 && hours <= 12, `expires in ${hours} h`);
  assert.doesNotMatch(cookie.value, new RegExp(gw.adminToken), 'the token is not in the cookie');

  const settings = await page.textContent('#settings');
  assert.match(settings, /ENCRYPTION_KEY is set/);
  assert.match(settings, /Private upstreams allowed\s*yes \(ALLOW_PRIVATE_UPSTREAMS\)/);
  assert.match(settings, new RegExp(`not set: links use the request's origin, ${gw.base}`));
  assert.match(await page.textContent('#upstreams'), /typed.*selfy|selfy.*typed/s);
  assert.doesNotMatch(await page.content(), new RegExp(gw.adminToken), 'the token is on no page');
  await shot(page, '02-overview');
  await page.close();
});

test('upstreams: a bad template shows its error next to the field with what was typed kept; fixed, it is saved and listed', async () => {
  const page = await consolePage();
  await page.goto(gw.base + '/admin/new-upstream');
  await page.fill('#id', 'tickets');
  await page.fill('#url', upstream.url);
  await page.fill('#headers', 'X-API-KEY: {{secret.tickets_key');
  const [bad] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('form[action="/admin/upstreams"] button')]);
  assert.equal(bad.status(), 400);
  // The error is the one the admin API gives, right after the field it concerns.
  const api = await gw.admin('PUT', '/upstreams/tickets', { url: upstream.url, headers: { 'X-API-KEY': '{{secret.tickets_key' } });
  assert.equal(api.status, 400);
  const shown = await page.textContent('#headers + #headers-error');
  assert.equal(api.json.error.data.field, 'headers.X-API-KEY');
  assert.equal(shown, api.json.error.message, 'the admin API\'s own words');
  assert.match(shown, /^headers\.X-API-KEY: /);
  assert.equal(await page.getAttribute('#headers', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#headers'), 'X-API-KEY: {{secret.tickets_key', 'what was typed is kept');
  assert.equal(await page.inputValue('#url'), upstream.url);
  assert.equal(await page.inputValue('#id'), 'tickets');
  assert.equal((await gw.admin('GET', '/upstreams/tickets')).status, 404, 'nothing stored');
  await shot(page, '03-upstream-template-error');

  await page.fill('#headers', `X-API-KEY: ${STATIC_KEY}`);
  await Promise.all([page.waitForURL(/\/admin\/upstreams\/tickets\?done=saved$/), page.click('form[action="/admin/upstreams"] button')]);
  assert.match(await page.textContent('.notice'), /Upstream saved/);
  assert.equal(await page.inputValue('#headers'), `X-API-KEY: ${STATIC_KEY}\n`);
  const stored = await gw.admin('GET', '/upstreams/tickets');
  assert.deepEqual(stored.json.headers, { 'X-API-KEY': STATIC_KEY });

  // An edit that breaks a field is refused the same way, and the stored upstream stays.
  await page.fill('#url', 'ftp://nowhere.example/');
  await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('form[action="/admin/upstreams/tickets"] button')]);
  assert.match(await page.textContent('#url + #url-error'), /.+/);
  assert.equal((await gw.admin('GET', '/upstreams/tickets')).json.url, upstream.url);
  await page.goto(gw.base + '/admin/');
  assert.match(await page.textContent('#upstreams'), /tickets/);
  await page.close();
});

test('subject: mint a key (it works on /mcp, then shows its last use), see what a connection is missing, mint a connect link (it connects), disconnect, revoke the key', async () => {
  const page = await consolePage();
  await page.goto(gw.base + '/admin/');
  await page.fill('header input[name=subject]', 'alice@example.com');
  await Promise.all([page.waitForURL(/\/admin\/subjects\?subject=alice%40example\.com$/), page.click('header button:text("Look up")')]);
  assert.equal(await page.textContent('h1'), 'Subject alice@example.com');
  assert.match(await page.textContent('#keys'), /No keys/);

  // A bad key form keeps what was typed, with the error next to the field.
  await page.fill('#upstreams', 'Not An Id');
  await page.fill('#label', 'laptop');
  await page.click('form[action="/admin/keys"] button');
  assert.match(await page.textContent('#upstreams + #upstreams-error'), /.+/);
  assert.equal(await page.inputValue('#label'), 'laptop');

  await page.fill('#upstreams', '*');
  await page.click('form[action="/admin/keys"] button');
  assert.equal(await page.textContent('h1'), 'Key minted');
  const key = gw.track(await page.textContent('#secret'));
  assert.match(key, /^mab_/);
  const seen = await whoamiAt(gw, '/mcp/tickets', key);
  assert.equal(seen['x-api-key'], STATIC_KEY, 'the minted key reaches the upstream');

  // A use is written after the answer (at most once a minute): the page shows it once it is.
  let keyRow;
  for (let i = 0; i < 20; i++) {
    await page.goto(gw.base + '/admin/subjects?subject=alice%40example.com');
    keyRow = await page.textContent('#keys tr:nth-child(2)');
    if (!/—Revoke$/.test(keyRow)) break;
    await sleep(250);
  }
  assert.match(keyRow, /laptop/);
  assert.match(keyRow, /\*/);
  assert.match(keyRow, /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s*Revoke$/, `last used is shown: ${keyRow}`);
  const typedRow = () => page.textContent('#connections tr:has(td:text-is("typed"))');
  assert.match(await typedRow(), /connection_required\s*api_key/, 'what is missing');

  await page.selectOption('#link-upstream', 'typed');
  await page.click('form[action="/admin/links"] button');
  assert.equal(await page.textContent('h1'), 'Connect link minted');
  const link = gw.trackLink(await page.textContent('#secret'));
  assert.ok(link.startsWith(gw.base + '/connect/'), link);
  await shot(page, '04-link-minted');
  // The person it is for opens it in their own browser and connects.
  const person = await browser.newPage();
  await person.goto(link);
  await person.getByLabel('Your API key').fill(TYPED_KEY);
  await person.getByRole('button', { name: 'Connect' }).click();
  assert.equal(await person.textContent('h1'), 'Connected');
  await person.close();

  await page.goto(gw.base + '/admin/subjects?subject=alice%40example.com');
  assert.match(await typedRow(), /connected/);
  assert.doesNotMatch(await typedRow(), /connection_required/);
  await shot(page, '05-subject');
  await page.screenshot({ path: path.join(ARTIFACTS, 'readme.png') });

  await Promise.all([page.waitForURL(/done=disconnected$/), page.click('#connections tr:has(td:text-is("typed")) button:text("Disconnect")')]);
  assert.match(await page.textContent('.notice'), /Connection forgotten/);
  assert.match(await typedRow(), /connection_required/);

  await Promise.all([page.waitForURL(/done=key-revoked$/), page.click('#keys button:text("Revoke")')]);
  assert.match(await page.textContent('.notice'), /Key revoked/);
  assert.match(await page.textContent('#keys'), /No keys/);
  const refused = await mcpAnswer(gw, '/mcp/tickets', key, callTool(1, 'whoami'));
  assert.equal(refused.status, 401, 'a revoked key fails on its next request');
  await page.close();
});

test('grants: a grant made by sign-in shows with its client and last use, and is revoked from the page', async () => {
  const { tokens } = await signInByHttp(gw, {
    redirect: 'http://127.0.0.1:9/callback',
    clientName: 'Console test app',
    resource: gw.base + '/mcp/selfy',
    fields: { api_key: TYPED_KEY },
  });
  const subject = (await whoamiAt(gw, '/mcp/selfy', tokens.access_token))['x-subject'];
  const page = await consolePage();
  await page.goto(`${gw.base}/admin/subjects?subject=${subject}`);
  const row = await page.textContent('#grants tr:nth-child(2)');
  assert.match(row, /Console test app/);
  assert.match(row, /selfy/);
  await shot(page, '06-grant');
  await Promise.all([page.waitForURL(/done=grant-revoked$/), page.click('#grants button:text("Revoke")')]);
  assert.match(await page.textContent('#grants'), /No grants/);
  const refused = await mcpAnswer(gw, '/mcp/selfy', tokens.access_token, callTool(1, 'whoami'));
  assert.equal(refused.status, 401, 'its access token is refused at once');
  await page.close();
});

test('every console page shown had the CSP and Chromium refused nothing under it', () => {
  for (const walk of walks) {
    assertCleanWalk(walk);
    for (const p of walk.pages.filter((p) => p.url.startsWith(gw.base + '/admin/'))) {
      assert.equal(p.csp, "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", p.url);
    }
  }
});

test('CSRF: a console POST without the token, or with a wrong one or another session\'s, is refused and changes nothing', async () => {
  const cookie = `mab_console=${(await sessionCookie()).value}`;
  const page = await (await getWith('/admin/subjects?subject=carol', cookie)).text();
  const csrf = page.match(/name="csrf" value="([^"]+)"/)[1];
  const other = `mab_console=${madeSession(Date.now() + 3_600_000, gw.adminToken)}`;
  const otherCsrf = (await (await getWith('/admin/', other)).text()).match(/name="csrf" value="([^"]+)"/)[1];
  for (const fields of [{}, { csrf: 'x'.repeat(43) }, { csrf: otherCsrf }]) {
    const r = await postWith('/admin/keys', cookie, { ...fields, subject: 'carol', upstreams: '*' });
    assert.equal(r.status, 403, JSON.stringify(fields));
    assert.match(await r.text(), /could not be verified/);
  }
  assert.deepEqual((await gw.admin('GET', '/keys?subject=carol')).json.items, [], 'no key minted');
  const ok = await postWith('/admin/keys', cookie, { csrf, subject: 'carol', upstreams: '*' });
  assert.equal(ok.status, 200, 'the page\'s own token works');
  gw.track((await ok.text()).match(/<code id="secret">([^<]+)</)[1]);
  // The sign-in form is checked too (double-submit), before its token is: a page of another
  // site cannot spend the operator's wrong-token allowance.
  const signIn = await postWith('/admin/sign-in', null, { token: gw.adminToken });
  assert.equal(signIn.status, 403);
  assert.equal(signIn.headers.get('set-cookie'), null);
});

test('session cookies: forged, expired, or signed in with another ADMIN_TOKEN are refused; sign-out ends the session', async () => {
  const live = madeSession(Date.now() + 3_600_000, gw.adminToken);
  const r = await getWith('/admin/', `mab_console=${live}`);
  assert.equal(r.status, 200, 'a cookie sealed as the gateway seals is accepted (the cases below are refused for their reason)');
  await r.text();
  const refused = {
    forged: 'v1.00000000.' + randomBytes(80).toString('base64url'),
    tampered: live.slice(0, -2) + (live.endsWith('AA') ? 'BB' : 'AA'),
    expired: madeSession(Date.now() - 1000, gw.adminToken),
    'another ADMIN_TOKEN': madeSession(Date.now() + 3_600_000, 'adm_rotated-away'),
    'another context': sealLikeTheGateway(`${Date.now() + 3_600_000}.x.y`, 'authorize-session'),
  };
  for (const [why, value] of Object.entries(refused)) {
    const get = await getWith('/admin/', `mab_console=${value}`);
    assert.equal(get.status, 303, why);
    assert.equal(get.headers.get('location'), '/admin/sign-in', why);
    const post = await postWith('/admin/keys', `mab_console=${value}`, { subject: 'dave', upstreams: '*' });
    assert.equal(post.status, 403, why);
    assert.match(await post.text(), /session has ended or is not valid/, why);
  }

  const page = await consolePage();
  await page.goto(gw.base + '/admin/');
  await Promise.all([page.waitForURL(gw.base + '/admin/sign-in'), page.click('header button:text("Sign out")')]);
  assert.equal(await sessionCookie(), undefined, 'the cookie is cleared');
  await page.goto(gw.base + '/admin/');
  assert.equal(new URL(page.url()).pathname, '/admin/sign-in');
  await page.close();
  for (const walk of walks) assertCleanWalk(walk);
});

test('sign-in shares the admin API\'s wrong-token limit: 10 wrong tokens by either way, then 429 for both, even with the right token', async () => {
  const ip = '203.0.113.' + (1 + randomBytes(1)[0] % 250);
  const signIn = (token) => consoleSignIn(gw, token, { 'cf-connecting-ip': ip });
  for (let i = 0; i < 5; i++) {
    assert.equal((await signIn(`guess-${i}`)).status, 401);
    const api = await fetch(gw.base + '/admin/v1/upstreams', { headers: { authorization: `Bearer api-guess-${i}`, 'cf-connecting-ip': ip } });
    assert.equal(api.status, 401);
    await api.text();
  }
  const blocked = await signIn(gw.adminToken);
  assert.equal(blocked.status, 429);
  assert.match(blocked.text, /Too many wrong tokens from this address: try again in \d+ seconds/);
  assert.doesNotMatch(blocked.cookie, /mab_console=/, 'no session');
  const after = Number(blocked.headers.get('retry-after'));
  assert.ok(after >= 1 && after <= 300, `Retry-After ${after}`);
  const api = await fetch(gw.base + '/admin/v1/upstreams', { headers: { authorization: `Bearer ${gw.adminToken}`, 'cf-connecting-ip': ip } });
  assert.equal(api.status, 429);
  await api.text();
});
