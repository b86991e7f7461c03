// End-to-end: what is built of the gateway as an authorization server for OAuth-only MCP
// clients (the design contract's §6): the upstream setting `sign_in`, RFC 9728 and RFC 8414
// metadata, the 401 challenge that starts a client's flow, and RFC 7591 registration (bounded,
// limited per client address, usable at once). The official TypeScript SDK's own discovery and
// registration functions are the client: they validate what the gateway publishes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  discoverOAuthProtectedResourceMetadata, discoverAuthorizationServerMetadata, registerClient, extractResourceMetadataUrl,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { startGateway, rawMcp, initialize, putUpstream } from './harness.mjs';

let gw;

before(async () => {
  gw = await startGateway();
  await putUpstream(gw, 'selfy', {
    url: 'http://127.0.0.1:9/mcp',
    headers: { 'X-API-KEY': '{{user.api_key}}' },
    user_fields: [{ name: 'api_key', label: 'Your API key' }],
    sign_in: 'self',
  });
  await putUpstream(gw, 'keys-only', { url: 'http://127.0.0.1:9/mcp', headers: { 'X-API-KEY': '{{secret.k}}' } });
});

after(async () => {
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
