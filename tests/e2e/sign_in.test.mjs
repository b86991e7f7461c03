// End-to-end: what is built of the gateway as an authorization server for OAuth-only MCP
// clients (the design contract's §6): the upstream setting `sign_in`, RFC 9728 and RFC 8414
// metadata, the 401 challenge that starts a client's flow, and RFC 7591 registration (bounded,
// limited per client address, usable at once). The official TypeScript SDK's own discovery and
// registration functions are the client: they validate what the gateway publishes. Then the
// whole flow: the SDK client with its OAuth provider, and the web connectors (Claude.ai's and
// ChatGPT's redirect URIs) walked by HTTP to their final redirect; the token endpoint's rules;
// consent refusals. (mcp-remote, a real native client, is in mcp_remote.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  discoverOAuthProtectedResourceMetadata, discoverAuthorizationServerMetadata, registerClient, extractResourceMetadataUrl,
  UnauthorizedError,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  startGateway, rawMcp, mcpAnswer, initialize, putUpstream, whoami, callTool, sleep,
  oauthRegister, pkce, authorizeUrl, consent, authorizationCode, tokenRequest, signInByHttp,
} from './harness.mjs';
import { startStreamable } from './peers/ts_servers.mjs';

let gw;
let upstream;
const TYPED = 'person-typed-key-' + randomBytes(8).toString('hex');
// The web connectors' redirect URIs: Claude.ai's, and ChatGPT's (one per connector).
const CLAUDE_REDIRECT = 'https://claude.ai/api/mcp/auth_callback';
const CHATGPT_REDIRECT = `https://chatgpt.com/connector/oauth/${randomBytes(8).toString('hex')}`;

/** An OAuth client provider for the SDK client whose "browser" is the test: it keeps what the
 * SDK hands it, and the authorization URL for the test to walk. */
class TestProvider {
  constructor(redirect) {
    this.redirect = redirect;
  }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return { redirect_uris: [this.redirect], client_name: 'e2e SDK client', token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] };
  }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) {
    this.saved = tokens;
    gw.track([tokens.access_token, tokens.refresh_token]);
  }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

/** A code for `clientId` (registered with `redirect`) by HTTP, the person allowing with their own key. */
const codeFor = (clientId, redirect, upstreamPath = '/mcp/tickets-self') => authorizationCode(gw, { clientId, redirect, resource: gw.base + upstreamPath, fields: { api_key: TYPED } });

const tokenCall = (params) => tokenRequest(gw, params);

before(async () => {
  gw = await startGateway();
  upstream = await startStreamable({ check: (h) => h['x-api-key'] === TYPED, stateless: true, json: true, name: 'self-upstream' });
  await putUpstream(gw, 'tickets-self', {
    url: upstream.url,
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your API key' }],
    sign_in: 'self',
  });
  await putUpstream(gw, 'selfy', {
    url: 'http://127.0.0.1:9/mcp',
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your API key' }],
    sign_in: 'self',
  });
  await putUpstream(gw, 'keys-only', { url: 'http://127.0.0.1:9/mcp', headers: { 'X-API-KEY': '{{secret.k}}' } });
});

after(async () => {
  upstream?.close();
  await gw?.stop();
});

test('sign_in: "self" takes nothing of the operator\'s; the setting is shown', async () => {
  const refused = await gw.admin('PUT', '/upstreams/bad-self', { url: 'http://127.0.0.1:9/mcp', headers: { 'X-Tenant': '{{secret.tenant}}' }, sign_in: 'self' });
  assert.equal(refused.status, 400, refused.text);
  assert.equal(refused.json.error.data.field, 'sign_in');
  const wrong = await gw.admin('PUT', '/upstreams/bad-self', { url: 'http://127.0.0.1:9/mcp', sign_in: 'everyone' });
  assert.equal(wrong.json.error.data.field, 'sign_in');
  assert.equal((await gw.admin('GET', '/upstreams/selfy')).json.sign_in, 'self');
  assert.equal((await gw.admin('GET', '/upstreams/keys-only')).json.sign_in, 'off');
});

test('metadata: the SDK client discovers the resource and the gateway as its authorization server', async () => {
  const prm = await discoverOAuthProtectedResourceMetadata(gw.base + '/mcp/selfy');
  assert.equal(prm.resource, gw.base + '/mcp/selfy');
  assert.deepEqual(prm.authorization_servers, [gw.base]);
  const asm = await discoverAuthorizationServerMetadata(gw.base);
  assert.equal(asm.issuer, gw.base);
  assert.deepEqual(asm.code_challenge_methods_supported, ['S256']);
  assert.equal(asm.registration_endpoint, gw.base + '/oauth/register');
  assert.ok(asm.token_endpoint_auth_methods_supported.includes('none'));
  assert.equal(asm.client_id_metadata_document_supported, true);
  assert.equal(asm.revocation_endpoint, gw.base + '/oauth/revoke');
  assert.deepEqual(asm.revocation_endpoint_auth_methods_supported, asm.token_endpoint_auth_methods_supported);
  assert.equal(asm.authorization_response_iss_parameter_supported, true);
  assert.equal((await fetch(gw.base + '/.well-known/oauth-protected-resource/mcp/keys-only')).status, 404, 'no sign-in, no metadata');
  assert.equal((await fetch(gw.base + '/.well-known/oauth-protected-resource/mcp/nope')).status, 404);
});

test('the 401 names the metadata on upstreams with sign-in, and says invalid_token for a refused credential', async () => {
  const bare = await rawMcp(gw, '/mcp/selfy', null, initialize());
  assert.equal(bare.status, 401);
  const challenge = bare.headers.get('www-authenticate');
  assert.match(challenge, /^Bearer realm="mcp-authbridge", resource_metadata="/);
  assert.doesNotMatch(challenge, /invalid_token/);
  assert.equal(extractResourceMetadataUrl(bare).href, gw.base + '/.well-known/oauth-protected-resource/mcp/selfy');
  const forged = await rawMcp(gw, '/mcp/selfy', 'mab_' + '0'.repeat(64) + '_' + 'A'.repeat(43), initialize());
  assert.equal(forged.status, 401);
  assert.match(forged.headers.get('www-authenticate'), /error="invalid_token"$/);
  const plain = await rawMcp(gw, '/mcp/keys-only', null, initialize());
  assert.equal(plain.headers.get('www-authenticate'), 'Bearer realm="mcp-authbridge"');
});

test('registration: the SDK client registers and can use the client id at once; bad requests are refused in RFC 7591 form', async () => {
  const asm = await discoverAuthorizationServerMetadata(gw.base);
  const pub = await registerClient(gw.base, {
    metadata: asm,
    clientMetadata: { redirect_uris: ['http://127.0.0.1:33418/oauth/callback'], client_name: 'e2e <b>client</b>', token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] },
  });
  assert.match(pub.client_id, /^mabc_v1\./);
  assert.equal(pub.client_secret, undefined);
  assert.deepEqual(pub.redirect_uris, ['http://127.0.0.1:33418/oauth/callback']);
  const conf = await registerClient(gw.base, {
    metadata: asm,
    clientMetadata: { redirect_uris: ['https://claude.ai/api/mcp/auth_callback'], token_endpoint_auth_method: 'client_secret_post' },
  });
  assert.match(conf.client_secret, /^mabcs_/);
  gw.track(conf.client_secret);
  const post = (body, headers = {}) => fetch(gw.base + '/oauth/register', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const badUri = await post(JSON.stringify({ redirect_uris: ['http://evil.example/cb'] }));
  assert.equal(badUri.status, 400);
  assert.equal((await badUri.json()).error, 'invalid_redirect_uri');
  const notJson = await post('{nope');
  assert.equal(notJson.status, 400);
  assert.equal((await notJson.json()).error, 'invalid_client_metadata');
  const huge = await post(JSON.stringify({ redirect_uris: ['https://a.example/cb'], client_name: 'x'.repeat(20_000) }));
  assert.equal(huge.status, 413);
  await huge.text();
});

test('registration is limited per client address: 30 in five minutes, then 429 with Retry-After', async () => {
  const body = JSON.stringify({ redirect_uris: ['https://a.example/cb'] });
  const post = (ip) => fetch(gw.base + '/oauth/register', { method: 'POST', headers: { 'content-type': 'application/json', 'cf-connecting-ip': ip }, body });
  for (let i = 0; i < 30; i++) {
    const r = await post('203.0.113.7');
    assert.equal(r.status, 201, `registration ${i}`);
    await r.text();
  }
  const limited = await post('203.0.113.7');
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  await limited.text();
  const other = await post('203.0.113.8');
  assert.equal(other.status, 201, 'another client is not affected');
  await other.text();
});

test('the official SDK client signs in with its OAuth provider: discovery, registration, consent with the person\'s own key, code, tokens; then tools/call reaches the upstream with that key', async () => {
  const provider = new TestProvider('http://127.0.0.1:33419/callback');
  const url = new URL(gw.base + '/mcp/tickets-self');
  const first = new Client({ name: 'e2e-oauth', version: '1.0.0' });
  await assert.rejects(first.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })), UnauthorizedError);
  assert.ok(provider.info.client_id.startsWith('mabc_'), 'registered by DCR');
  const authorize = provider.authorizationUrl;
  assert.equal(authorize.searchParams.get('resource'), url.href);
  const { html, status, location } = await consent(gw, authorize, { api_key: TYPED });
  assert.match(html, /e2e SDK client/);
  assert.match(html, /127\.0\.0\.1/);
  assert.equal(status, 302);
  assert.equal(location.origin + location.pathname, 'http://127.0.0.1:33419/callback');
  assert.equal(location.searchParams.get('iss'), gw.base);
  assert.equal(location.searchParams.get('state'), authorize.searchParams.get('state'));
  const code = location.searchParams.get('code');
  gw.track(code);
  const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  await transport.finishAuth(code);
  assert.match(provider.saved.access_token, /^maba_/);
  const client = new Client({ name: 'e2e-oauth', version: '1.0.0' });
  await client.connect(transport);
  const seen = await whoami(client);
  assert.equal(seen['x-api-key'], TYPED, 'the person\'s own key at the upstream');
  assert.equal(seen.authorization, undefined, 'the client\'s token never goes upstream');
  await client.close();
});

/**
 * A web connector (`name`, registered with its https `redirect`) signs in by HTTP: registration,
 * authorize, consent with the person's own key, the 302 to its redirect with code, state and iss
 * (not followed: the redirect is the connector's, not ours), the code redeemed; then tools/list and
 * tools/call with the access token reach the upstream with that key.
 */
async function connectorSignsIn(name, redirect) {
  const resource = gw.base + '/mcp/tickets-self';
  const { tokens, page } = await signInByHttp(gw, { redirect, clientName: name, resource, fields: { api_key: TYPED } });
  const text = page.html.replace(/<[^>]+>/g, '');
  assert.match(text, new RegExp(`${name} asks to use tickets-self`));
  assert.ok(text.includes(`you are sent back to ${new URL(redirect).host}`), 'names the host it sends the person back to');
  assert.ok(page.csp.includes(`form-action 'self' ${new URL(redirect).origin};`), `a browser may follow the answer to the connector: ${page.csp}`);
  assert.match(tokens.access_token, /^maba_/);
  assert.equal(tokens.token_type, 'Bearer');
  assert.equal(tokens.scope, 'mcp');
  const list = await mcpAnswer(gw, '/mcp/tickets-self', tokens.access_token, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
  assert.equal(list.status, 200, list.text);
  assert.ok(list.json.result.tools.some((t) => t.name === 'whoami'), list.text);
  const call = await mcpAnswer(gw, '/mcp/tickets-self', tokens.access_token, callTool(2, 'whoami'));
  assert.equal(call.status, 200, call.text);
  const seen = JSON.parse(call.json.result.content[0].text);
  assert.equal(seen['x-api-key'], TYPED, 'the person\'s own key at the upstream');
  assert.equal(seen.authorization, undefined, 'the connector\'s token never goes upstream');
}

test('Claude.ai: registered with its redirect, walked to the final redirect (code, state, iss), the code redeemed, tools/list and tools/call with the token', () => connectorSignsIn('Claude', CLAUDE_REDIRECT));

test('ChatGPT: registered with a connector redirect (chatgpt.com/connector/oauth/…), walked to the final redirect (code, state, iss), the code redeemed, tools/list and tools/call with the token', () => connectorSignsIn('ChatGPT', CHATGPT_REDIRECT));

test('token endpoint rules: a reused code revokes its grant, wrong verifier or redirect URI refused, refresh rotation with one retry, reuse revokes, a token for A refused on B', async () => {
  const redirect = CLAUDE_REDIRECT;
  const reg = await oauthRegister(gw, { redirect_uris: [redirect], client_name: 'Claude' });
  // Wrong verifier, then wrong redirect URI: refused (and each code is spent? no: refused codes stay unredeemed).
  const a = await codeFor(reg.client_id, redirect);
  const wrongVerifier = await tokenCall({ grant_type: 'authorization_code', code: a.code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: pkce().verifier });
  assert.equal(wrongVerifier.status, 400);
  assert.equal(wrongVerifier.json.error, 'invalid_grant');
  const wrongRedirect = await tokenCall({ grant_type: 'authorization_code', code: a.code, client_id: reg.client_id, redirect_uri: redirect + '/x', code_verifier: a.verifier });
  assert.equal(wrongRedirect.json.error, 'invalid_grant');
  const issued = await tokenCall({ grant_type: 'authorization_code', code: a.code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: a.verifier });
  assert.equal(issued.status, 200, JSON.stringify(issued.json));
  assert.equal(issued.json.token_type, 'Bearer');
  assert.equal(issued.json.expires_in, 3600);
  assert.match(issued.headers.get('cache-control'), /no-store/);
  const call = (token, path = '/mcp/tickets-self') => rawMcp(gw, path, token, callTool(1, 'whoami'));
  assert.equal((await call(issued.json.access_token)).status, 200);
  assert.equal((await call(issued.json.access_token, '/mcp/selfy')).status, 401, 'a token for A is refused on B');
  // The code again: refused, and what it issued is revoked.
  const replay = await tokenCall({ grant_type: 'authorization_code', code: a.code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: a.verifier });
  assert.equal(replay.json.error, 'invalid_grant');
  const revoked = await call(issued.json.access_token);
  assert.equal(revoked.status, 401);
  assert.match(revoked.headers.get('www-authenticate'), /error="invalid_token"/);

  // Refresh: rotation, one retry of the previous token, then any reuse revokes the grant.
  const b = await codeFor(reg.client_id, redirect);
  const t1 = (await tokenCall({ grant_type: 'authorization_code', code: b.code, client_id: reg.client_id, redirect_uri: redirect, code_verifier: b.verifier })).json;
  const t2 = await tokenCall({ grant_type: 'refresh_token', refresh_token: t1.refresh_token, client_id: reg.client_id });
  assert.equal(t2.status, 200);
  assert.notEqual(t2.json.refresh_token, t1.refresh_token);
  assert.equal((await call(t1.access_token)).status, 401, 'the replaced access token is dead');
  assert.equal((await call(t2.json.access_token)).status, 200);
  const retry = await tokenCall({ grant_type: 'refresh_token', refresh_token: t1.refresh_token, client_id: reg.client_id });
  assert.equal(retry.status, 200, 'the previous token works once more (a client that lost the answer)');
  const reuse = await tokenCall({ grant_type: 'refresh_token', refresh_token: t1.refresh_token, client_id: reg.client_id });
  assert.equal(reuse.json.error, 'invalid_grant');
  assert.equal((await call(retry.json.access_token)).status, 401, 'a reuse revokes the grant');
  const other = await tokenCall({ grant_type: 'refresh_token', refresh_token: retry.json.refresh_token, client_id: reg.client_id });
  assert.equal(other.json.error, 'invalid_grant');
  // An unknown client, or another client's code.
  assert.equal((await tokenCall({ grant_type: 'refresh_token', refresh_token: t1.refresh_token, client_id: 'nobody' })).status, 401);
});

test('consent: denial goes back with access_denied; a hostile client name is shown escaped; a request for an upstream without sign-in goes back with invalid_target', async () => {
  const reg = await oauthRegister(gw, { redirect_uris: ['http://127.0.0.1:4000/cb'], client_name: '<img src=x onerror=alert(1)>' });
  const url = authorizeUrl(gw, { client_id: reg.client_id, redirect_uri: 'http://127.0.0.1:4111/cb', state: 's2', code_challenge: pkce().challenge, resource: gw.base + '/mcp/tickets-self' });
  const denied = await consent(gw, url, {}, 'deny');
  assert.ok(!denied.html.includes('<img src=x'), 'escaped');
  assert.match(denied.html, /&lt;img src=x onerror=alert\(1\)&gt;/);
  assert.equal(denied.status, 302);
  assert.equal(denied.location.searchParams.get('error'), 'access_denied');
  assert.equal(denied.location.searchParams.get('state'), 's2');
  url.searchParams.set('resource', gw.base + '/mcp/keys-only');
  const off = await fetch(url, { redirect: 'manual' });
  assert.equal(off.status, 302);
  assert.equal(new URL(off.headers.get('location')).searchParams.get('error'), 'invalid_target');
  url.searchParams.set('redirect_uri', 'https://evil.example/cb');
  const evil = await fetch(url, { redirect: 'manual' });
  assert.equal(evil.status, 400, 'an unregistered redirect URI gets a page, never a redirect');
  assert.equal(evil.headers.get('location'), null);
  await evil.text();
});

// ---- Ending grants: RFC 7009 revocation by the client, and the operator's admin API.

const REDIRECT = CLAUDE_REDIRECT;

/** Registers a client (RFC 7591) with `extra` metadata; its secret, if any, is tracked. */
const registered = (extra = {}) => oauthRegister(gw, { redirect_uris: [REDIRECT], ...extra });

/** A code for `clientId`, redeemed: `{access_token, refresh_token, …}`. */
async function tokensFor(clientId, upstreamPath, auth = {}) {
  const { code, verifier } = await codeFor(clientId, REDIRECT, upstreamPath);
  const issued = await tokenCall({ grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: REDIRECT, code_verifier: verifier, ...auth });
  assert.equal(issued.status, 200, JSON.stringify(issued.json));
  return issued.json;
}

/** POST /oauth/revoke with form `params` and `headers`: `{status, text}`. */
const revokeCall = async (params, headers = {}) => {
  const r = await fetch(gw.base + '/oauth/revoke', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params).toString() });
  return { status: r.status, text: await r.text() };
};

test('revocation (RFC 7009): a refresh or access token ends its grant for its own client; another client\'s, an unknown or a malformed token: 200 and nothing changes; wrong client authentication: 401', async () => {
  const a = await registered({ client_name: 'Revoker A' });
  const b = await registered({ client_name: 'Revoker B' });
  const call = (token) => rawMcp(gw, '/mcp/tickets-self', token, callTool(1, 'whoami'));
  const refresh = (token, clientId) => tokenCall({ grant_type: 'refresh_token', refresh_token: token, client_id: clientId });
  const t = await tokensFor(a.client_id, '/mcp/tickets-self');

  // Another client's request: answered like an unknown token, and A's grant lives on.
  for (const token of [t.refresh_token, t.access_token]) {
    const other = await revokeCall({ token, client_id: b.client_id });
    assert.equal(other.status, 200);
    assert.equal(other.text, '');
  }
  assert.equal((await call(t.access_token)).status, 200, 'another client cannot end the grant');
  const unknown = await revokeCall({ token: 'mabr_' + '0'.repeat(64) + '_' + randomBytes(32).toString('base64url'), client_id: a.client_id });
  assert.equal(unknown.status, 200);
  assert.equal(unknown.text, '');
  assert.equal((await revokeCall({ token: 'not-a-token', token_type_hint: 'whatever', client_id: a.client_id })).status, 200);
  const missing = await revokeCall({ client_id: a.client_id });
  assert.equal(missing.status, 400);
  assert.equal(JSON.parse(missing.text).error, 'invalid_request');
  const nobody = await revokeCall({ token: t.refresh_token, client_id: 'nobody' });
  assert.equal(nobody.status, 401);
  assert.equal(JSON.parse(nobody.text).error, 'invalid_client');
  assert.equal((await call(t.access_token)).status, 200, 'refused requests changed nothing');

  // The client revokes its refresh token: the grant ends, its access token at once.
  const ended = await revokeCall({ token: t.refresh_token, token_type_hint: 'refresh_token', client_id: a.client_id });
  assert.equal(ended.status, 200);
  assert.equal(ended.text, '');
  const refused = await call(t.access_token);
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get('www-authenticate'), /error="invalid_token"/);
  await refused.text();
  assert.equal((await refresh(t.refresh_token, a.client_id)).json.error, 'invalid_grant');
  assert.equal((await revokeCall({ token: t.refresh_token, client_id: a.client_id })).status, 200, 'again: still 200');

  // A confidential client (HTTP Basic) revokes its access token: the whole grant ends too.
  const c = await registered({ client_name: 'Revoker C', token_endpoint_auth_method: 'client_secret_basic' });
  const basic = (secret) => ({ authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(secret)}`).toString('base64') });
  const { code, verifier } = await codeFor(c.client_id, REDIRECT);
  const issued = await fetch(gw.base + '/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic(c.client_secret) }, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }).toString() });
  const tc = await issued.json();
  assert.equal(issued.status, 200, JSON.stringify(tc));
  gw.track([tc.access_token, tc.refresh_token]);
  assert.equal((await revokeCall({ token: tc.access_token }, basic('wrong-secret'))).status, 401, 'a wrong secret');
  assert.equal((await revokeCall({ token: tc.access_token, client_id: c.client_id })).status, 401, 'a confidential client without its secret');
  assert.equal((await call(tc.access_token)).status, 200);
  assert.equal((await revokeCall({ token: tc.access_token, token_type_hint: 'access_token' }, basic(c.client_secret))).status, 200);
  assert.equal((await call(tc.access_token)).status, 401, 'the access token is refused at once');
  const afterAccess = await fetch(gw.base + '/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic(c.client_secret) }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tc.refresh_token }).toString() });
  assert.equal((await afterAccess.json()).error, 'invalid_grant', 'and so is its refresh token: the grant ended');

  const get = await fetch(gw.base + '/oauth/revoke');
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  await get.text();
});

test('admin grants: listed per subject with client name and id, upstream and times; DELETE ends one at once, then 404; unknown ids 404', async () => {
  await putUpstream(gw, 'grants-self', {
    url: upstream.url,
    headers: { 'X-API-KEY': '{{user.api_key}}', 'X-Subject': '{{subject}}' },
    user_fields: [{ name: 'api_key', label: 'Your API key' }],
    sign_in: 'self',
  });
  const reg = await registered({ client_name: 'Grants app' });
  const t1 = await tokensFor(reg.client_id, '/mcp/grants-self');
  const seen = await mcpAnswer(gw, '/mcp/grants-self', t1.access_token, callTool(1, 'whoami'));
  assert.equal(seen.status, 200, seen.text);
  const subject = JSON.parse(seen.json.result.content[0].text)['x-subject'];
  assert.match(subject, /^oauth-[0-9a-f]{32}$/, 'sign-in "self": a subject of its own');

  const list = async () => {
    const r = await gw.admin('GET', `/grants?subject=${subject}`);
    assert.equal(r.status, 200, r.text);
    return r.json.items;
  };
  const [grant] = await list();
  assert.deepEqual(Object.keys(grant).sort(), ['access_expires_at', 'client_id', 'client_name', 'created_at', 'id', 'last_used', 'upstream']);
  assert.match(grant.id, /^[0-9a-f]{64}-[0-9a-f]{16}$/, 'the id routes to the subject\'s store');
  assert.equal(grant.client_name, 'Grants app');
  assert.equal(grant.client_id, reg.client_id);
  assert.equal(grant.upstream, 'grants-self');
  assert.match(grant.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(grant.last_used, grant.created_at, 'redeemed: last used when created');
  assert.ok(Date.parse(grant.access_expires_at) - Date.parse(grant.created_at) >= 3_599_000);

  // A refresh is a use: last_used moves (times are whole seconds).
  await sleep(1100);
  const t2 = await tokenCall({ grant_type: 'refresh_token', refresh_token: t1.refresh_token, client_id: reg.client_id });
  assert.equal(t2.status, 200);
  const [refreshed] = await list();
  assert.equal(refreshed.id, grant.id);
  assert.ok(Date.parse(refreshed.last_used) > Date.parse(grant.created_at), 'last_used set by the rotation');

  const call = (token) => rawMcp(gw, '/mcp/grants-self', token, callTool(1, 'whoami'));
  assert.equal((await call(t2.json.access_token)).status, 200);
  const deleted = await gw.admin('DELETE', `/grants/${grant.id}`);
  assert.equal(deleted.status, 204, deleted.text);
  const refused = await call(t2.json.access_token);
  assert.equal(refused.status, 401, 'its access token is refused at once');
  assert.match(refused.headers.get('www-authenticate'), /error="invalid_token"/);
  await refused.text();
  assert.equal((await tokenCall({ grant_type: 'refresh_token', refresh_token: t2.json.refresh_token, client_id: reg.client_id })).json.error, 'invalid_grant');
  assert.deepEqual(await list(), []);

  assert.equal((await gw.admin('DELETE', `/grants/${grant.id}`)).status, 404, 'deleted already');
  assert.equal((await gw.admin('DELETE', '/grants/nope')).status, 404);
  assert.equal((await gw.admin('DELETE', `/grants/${'0'.repeat(64)}-0123456789abcdef`)).status, 404);
  assert.equal((await gw.admin('DELETE', `/grants/${grant.id.split('-')[0]}-${'0'.repeat(16)}`)).status, 404, 'the right store, no such grant');
  assert.equal((await gw.admin('GET', '/grants')).status, 400, 'subject is required');
  const put = await gw.admin('PUT', `/grants/${grant.id}`, {});
  assert.equal(put.status, 405);
  assert.equal(put.headers.get('allow'), 'DELETE');
  assert.equal((await gw.admin('POST', '/grants', {})).headers.get('allow'), 'GET');
});
