// End-to-end: the connect step inside the gateway's own authorization (the design contract's §6):
// sign-in `link` (the person pastes a connect link the operator minted; the grant and the
// connection are the link's subject's) and an upstream with its own OAuth (oidc-provider)
// chained inside the flow: consent, the upstream's sign-in page, the gateway's callback, then
// back to the MCP client with a code that works on /mcp. Also: clients named by a Client ID
// Metadata Document, and the JSON refusal a program gets for a client id the gateway does not know.
import { test, before, after } from 'node:test';
import http from 'node:http';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startGateway, putUpstream, newLink, openPage, withCookies, oauthCallback,
  oauthRegister, pkce, authorizeUrl, answerAuthorization, redeemRedirect, whoamiAt,
} from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';
import { served } from './peers/http_util.mjs';
import { startOAuthPeers, stopOAuthPeers, oauthSecrets } from './peers/oauth_mcp_server.mjs';

let gw;
let keyed;
let as;
let mcp;
const ALICE_KEY = 'alice-typed-key-' + randomBytes(8).toString('hex');
const REDIRECT = 'http://127.0.0.1:47123/callback';

before(async () => {
  ({ as, mcp } = await startOAuthPeers());
  gw = await startGateway();
  keyed = await startStreamable({ check: (h) => h['x-api-key'] === ALICE_KEY, stateless: true, json: true, name: 'keyed' });
  const header = { url: keyed.url, headers: { 'X-API-KEY': '{{user.api_key}}' }, user_fields: [{ name: 'api_key', label: 'Your API key', secret: true }] };
  await putUpstream(gw, 'keyed-link', { ...header, sign_in: 'link' });
  await putUpstream(gw, 'other-link', { ...header, sign_in: 'link' });
  await putUpstream(gw, 'tickets-self', { url: mcp.url, oauth: {}, sign_in: 'self' });
  await putUpstream(gw, 'tickets-link', { url: mcp.url, oauth: {}, sign_in: 'link' });
});

after(async () => {
  gw?.track(oauthSecrets(as, mcp));
  keyed?.close();
  await stopOAuthPeers(as, mcp);
  await gw?.stop();
});

/** A registered public client with the test's redirect URI. */
const registered = (name) => oauthRegister(gw, { redirect_uris: [REDIRECT], client_name: name });

/** An authorization request of `client` for `resource`: its URL, PKCE verifier and state. */
function authorizationRequest(client, resource) {
  const { verifier, challenge } = pkce();
  const state = 'st-' + randomBytes(4).toString('hex');
  const url = authorizeUrl(gw, { client_id: client.client_id, redirect_uri: REDIRECT, state, code_challenge: challenge, resource: gw.base + resource });
  return { url, verifier, state };
}

/** The code in the redirect back to the client at `location`, checked and redeemed: the token answer. */
const redeemAt = (location, client, request) => redeemRedirect(gw, location, { clientId: client.client_id, redirect: REDIRECT, state: request.state, verifier: request.verifier });

test('sign-in "link": the person pastes the connect link, consent names its subject, the form connects that subject, and the client\'s token reaches the upstream with the typed key', async () => {
  const client = await registered('Link client');
  const request = authorizationRequest(client, '/mcp/keyed-link');
  const first = await openPage(request.url);
  assert.equal(first.status, 200, first.html);
  assert.match(first.html, /name="link"/);
  assert.doesNotMatch(first.html, /name="api_key"/, 'the account comes first, from the link');

  // Not a link, and a link for another upstream: the same step again, saying why.
  const junk = await answerAuthorization(gw, first, { decision: 'allow', link: 'https://example.test/connect/nope' });
  assert.equal(junk.status, 400);
  assert.match(await junk.text(), /not valid/);
  const wrong = await newLink(gw, 'alice', 'other-link');
  gw.trackLink(wrong.url);
  const elsewhere = await answerAuthorization(gw, first, { decision: 'allow', link: wrong.url });
  assert.equal(elsewhere.status, 400);
  assert.match(await elsewhere.text(), /for another service/);

  const link = await newLink(gw, 'alice', 'keyed-link');
  gw.trackLink(link.url);
  const pasted = await answerAuthorization(gw, first, { decision: 'allow', link: ` ${link.url}\n` });
  const consentHtml = await pasted.text();
  assert.equal(pasted.status, 200, consentHtml);
  assert.match(consentHtml, /the account of <strong>alice<\/strong>/);
  assert.match(consentHtml, /name="api_key"/);
  const consent = { html: consentHtml, csrf: first.csrf, cookie: withCookies(first.cookie, pasted.headers) };
  gw.track(ALICE_KEY);
  const allowed = await answerAuthorization(gw, consent, { decision: 'allow', api_key: ALICE_KEY });
  assert.equal(allowed.status, 302, await allowed.text());
  const tokens = await redeemAt(allowed.headers.get('location'), client, request);
  const seen = await whoamiAt(gw, '/mcp/keyed-link', tokens.access_token);
  assert.equal(seen['x-api-key'], ALICE_KEY);
  assert.equal(seen.authorization, undefined, 'the client\'s token never goes upstream');

  // The connection is alice's, and the link is used up.
  const conns = await gw.admin('GET', '/connections?subject=alice');
  assert.equal(conns.json.items.find((c) => c.upstream === 'keyed-link')?.status, 'connected');
  assert.equal((await openPage(link.url)).status, 410);
  const again = await answerAuthorization(gw, first, { decision: 'allow', link: link.url });
  assert.equal(again.status, 400, 'a used link does not sign in again');
  await again.text();
});

/** Consent for an OAuth upstream, allowed: returns the browser's way to the upstream's sign-in. */
async function allowOAuth(request, fields = {}) {
  let page = await openPage(request.url);
  assert.equal(page.status, 200, page.html);
  if (fields.link) {
    const pasted = await answerAuthorization(gw, page, { decision: 'allow', link: fields.link });
    page = { html: await pasted.text(), csrf: page.csrf, cookie: withCookies(page.cookie, pasted.headers), headers: pasted.headers };
    assert.equal(pasted.status, 200, page.html);
  }
  assert.match(page.html, /Allow and sign in/);
  assert.doesNotMatch(page.html, /name="api_key"/);
  // Browsers apply form-action to the redirect that answers the form: it must allow the AS.
  assert.match(page.headers.get('content-security-policy'), /form-action 'self' https: http:/);
  const go = await answerAuthorization(gw, page, { decision: 'allow' });
  assert.equal(go.status, 303, await go.text());
  const binding = go.headers.get('set-cookie').split(';')[0];
  const authorize = go.headers.get('location');
  assert.ok(authorize.startsWith(as.issuer), 'to the upstream\'s authorization server');
  gw.track(new URL(authorize).searchParams.get('state'), binding.split('=')[1]);
  return { authorize, binding, html: page.html };
}

test('sign-in "self" with an OAuth upstream: consent, the upstream\'s sign-in, the gateway\'s callback, back to the client with a code whose token reaches the upstream as that person', async () => {
  const client = await registered('Self client');
  const request = authorizationRequest(client, '/mcp/tickets-self');
  const { authorize, binding, html } = await allowOAuth(request);
  assert.match(html, /a new account of its own/);
  const callback = await as.completeLogin(authorize, { user: 'zoe' });
  gw.track(new URL(callback).searchParams.get('code'));
  const back = await oauthCallback(callback, binding);
  assert.equal(back.status, 302, await back.text());
  const tokens = await redeemAt(back.headers.get('location'), client, request);
  const seen = await whoamiAt(gw, '/mcp/tickets-self', tokens.access_token);
  assert.equal(seen.sub, 'zoe', 'the upstream sees the person who signed in there');
  // The same callback again: the authorization is spent.
  const replay = await oauthCallback(callback, binding);
  assert.equal(replay.status, 400);
  await replay.text();
});

test('sign-in "link" with an OAuth upstream: the grant is the link\'s subject\'s; denying at the upstream sends the client access_denied', async () => {
  const client = await registered('Link OAuth client');
  const link = await newLink(gw, 'bob', 'tickets-link');
  gw.trackLink(link.url);
  const request = authorizationRequest(client, '/mcp/tickets-link');
  const flow = await allowOAuth(request, { link: link.url });
  assert.match(flow.html, /the account of <strong>bob<\/strong>/);
  const callback = await as.completeLogin(flow.authorize, { user: 'bob-at-idp' });
  gw.track(new URL(callback).searchParams.get('code'));
  const back = await oauthCallback(callback, flow.binding);
  assert.equal(back.status, 302, await back.text());
  const tokens = await redeemAt(back.headers.get('location'), client, request);
  assert.equal((await whoamiAt(gw, '/mcp/tickets-link', tokens.access_token)).sub, 'bob-at-idp');
  const conns = await gw.admin('GET', '/connections?subject=bob');
  assert.equal(conns.json.items.find((c) => c.upstream === 'tickets-link')?.status, 'connected');

  // A person who denies at the upstream: the client hears access_denied, with its state.
  const denying = authorizationRequest(client, '/mcp/tickets-self');
  const started = await allowOAuth(denying);
  const deniedCallback = await as.completeLogin(started.authorize, { deny: true });
  const denied = await oauthCallback(deniedCallback, started.binding);
  assert.equal(denied.status, 302, await denied.text());
  const location = new URL(denied.headers.get('location'));
  assert.equal(location.searchParams.get('error'), 'access_denied');
  assert.equal(location.searchParams.get('state'), denying.state);
  assert.equal(location.searchParams.get('iss'), gw.base);
  assert.equal(location.searchParams.get('code'), null);
});

test('a client named by its Client ID Metadata Document: fetched, must name itself, shown on consent; its code redeems with the URL as client_id; a program presenting an unknown client id gets invalid_client as JSON', async () => {
  const documents = new Map();
  const docs = await served(http.createServer((req, res) => {
    const doc = documents.get(req.url);
    res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc ?? {}));
  }), '/');
  try {
    const clientId = docs.origin + '/client.json';
    documents.set('/client.json', { client_id: clientId, client_name: 'Document client', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
    documents.set('/impostor.json', { client_id: docs.origin + '/client.json', client_name: 'Impostor', redirect_uris: [REDIRECT] });
    const link = await newLink(gw, 'carol', 'keyed-link');
    gw.trackLink(link.url);
    const request = authorizationRequest({ client_id: clientId }, '/mcp/keyed-link');
    const first = await openPage(request.url);
    assert.equal(first.status, 200, first.html);
    assert.match(first.html, /Document client/);
    const pasted = await answerAuthorization(gw, first, { decision: 'allow', link: link.url });
    const consent = { html: await pasted.text(), csrf: first.csrf, cookie: withCookies(first.cookie, pasted.headers) };
    const allowed = await answerAuthorization(gw, consent, { decision: 'allow', api_key: ALICE_KEY });
    assert.equal(allowed.status, 302);
    const tokens = await redeemAt(allowed.headers.get('location'), { client_id: clientId }, request);
    assert.equal((await whoamiAt(gw, '/mcp/keyed-link', tokens.access_token))['x-api-key'], ALICE_KEY);

    // A document that names another URL as its client_id, or none at all: not a client.
    for (const path of ['/impostor.json', '/missing.json']) {
      const page = await openPage(authorizationRequest({ client_id: docs.origin + path }, '/mcp/keyed-link').url);
      assert.equal(page.status, 400, path);
      assert.match(page.html, /not registered/);
    }
    // A program (Accept: JSON) with a client id the gateway does not know gets invalid_client as
    // JSON, and registers again (mcp-remote does); a browser gets the page.
    const stale = authorizationRequest({ client_id: 'mabc_v1.gone.stale' }, '/mcp/keyed-link').url;
    const program = await fetch(stale, { headers: { accept: 'application/json' }, redirect: 'manual' });
    assert.equal(program.status, 400);
    assert.equal((await program.json()).error, 'invalid_client');
    const person = await fetch(stale, { headers: { accept: 'text/html,*/*' }, redirect: 'manual' });
    assert.equal(person.status, 400);
    assert.match(await person.text(), /not registered/);
  } finally {
    docs.close();
  }
});
