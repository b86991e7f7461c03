// End-to-end: connecting from inside the conversation (the design contract's §7). For an upstream
// with `connect_tool: true`, a subject that has not connected gets the gateway's own MCP session:
// one tool, `connect_{upstream}`, whose result is the connect link; the user connects (form, or
// OAuth at oidc-provider); a new session then reaches the real upstream and the gateway's session
// answers 404. Clients: raw OpenAI-style and Anthropic-style requests, the official TypeScript SDK
// client declaring URL-mode elicitation (-32042), and the Python SDK client (its server/discover
// probe falls back to initialize). Without `connect_tool` nothing changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  startGateway, putUpstream, newKey, mcpAnswer, initialize, callTool, openPage, submit, runPyClient,
  startOAuthConnect, finishOAuthConnect, launchChromium, sdkLegacyClient, whoami,
} from './harness.mjs';
import { startStreamable, startLegacySse } from './peers/ts_servers.mjs';
import { startOAuthPeers, stopOAuthPeers, oauthSecrets } from './peers/oauth_mcp_server.mjs';

let gw;
let keyed;
let legacy;
let as;
let mcp;
const TYPED = 'typed-in-conversation-' + randomBytes(8).toString('hex');
const OPENAI = { 'user-agent': 'openai-mcp/1.0.0' };
const list = (id = 2) => ({ jsonrpc: '2.0', id, method: 'tools/list', params: {} });

before(async () => {
  ({ as, mcp } = await startOAuthPeers());
  gw = await startGateway();
  keyed = await startStreamable({ check: (h) => h['x-api-key'] === TYPED, json: true, name: 'keyed-upstream' });
  const header = { url: keyed.url, headers: { 'X-API-KEY': '{{user.api_key}}' }, user_fields: [{ name: 'api_key', label: 'API key', secret: true }] };
  await putUpstream(gw, 'keyed', { ...header, connect_tool: true });
  await putUpstream(gw, 'plain', header);
  await putUpstream(gw, 'tickets', { url: mcp.url, oauth: {}, connect_tool: true });
  legacy = await startLegacySse({ check: (h) => h['x-api-key'] === TYPED, name: 'legacy-upstream' });
  await putUpstream(gw, 'old', { ...header, url: legacy.url, transport: 'sse', connect_tool: true });
});

after(async () => {
  gw?.track(oauthSecrets(as, mcp));
  keyed?.close();
  legacy?.close();
  await stopOAuthPeers(as, mcp);
  await gw?.stop();
});

/** The connect link in a connect tool's answer (text and resource_link agree); tracked as a link. */
function linkIn(result) {
  const text = result.content.find((c) => c.type === 'text').text;
  const link = text.match(/https?:\/\/\S+\/connect\/\S+/)[0];
  gw.trackLink(link);
  return link;
}

test('OpenAI-style client on an unconnected subject: server/discover answered at 2026-07-28, initialize → the gateway\'s session with connect_keyed; the user connects (Chromium, the form); a new session lists and calls the real tools; the old session answers 404', async () => {
  const { key } = await newKey(gw, 'olga', ['keyed']);
  const probe = await mcpAnswer(gw, '/mcp/keyed', key, { jsonrpc: '2.0', id: 0, method: 'server/discover', params: {} }, { ...OPENAI, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'server/discover' });
  assert.equal(probe.status, 200, probe.text);
  assert.deepEqual(probe.json.result.supportedVersions, ['2026-07-28']);
  assert.equal(probe.json.result._meta['io.modelcontextprotocol/serverInfo'].name, 'mcp-authbridge');
  const init = await mcpAnswer(gw, '/mcp/keyed', key, initialize(1), OPENAI);
  assert.equal(init.status, 200, init.text);
  assert.equal(init.json.result.serverInfo.name, 'mcp-authbridge');
  const session = init.headers.get('mcp-session-id');
  assert.match(session, /^mabs_n[0-9a-f]{32}$/);
  const inSession = { ...OPENAI, 'mcp-session-id': session, 'mcp-protocol-version': init.json.result.protocolVersion };
  assert.equal((await mcpAnswer(gw, '/mcp/keyed', key, { jsonrpc: '2.0', method: 'notifications/initialized' }, inSession)).status, 202);
  const tools = await mcpAnswer(gw, '/mcp/keyed', key, list(), inSession);
  assert.deepEqual(tools.json.result.tools.map((t) => t.name), ['connect_keyed']);
  assert.match(tools.json.result.tools[0].description, /has not connected/);
  const called = await mcpAnswer(gw, '/mcp/keyed', key, callTool(3, 'connect_keyed'), inSession);
  assert.equal(called.status, 200, called.text);
  assert.equal(called.json.result.isError, false);
  const link = linkIn(called.json.result);
  const resourceLink = called.json.result.content.find((c) => c.type === 'resource_link');
  assert.equal(resourceLink?.uri, link);
  const again = await mcpAnswer(gw, '/mcp/keyed', key, callTool(4, 'connect_keyed'), inSession);
  assert.equal(linkIn(again.json.result), link, 'the live link is handed out again');
  // Other methods: MCP answers, never a transport error.
  assert.deepEqual((await mcpAnswer(gw, '/mcp/keyed', key, { jsonrpc: '2.0', id: 5, method: 'resources/list' }, inSession)).json.result, { resources: [] });
  assert.equal((await mcpAnswer(gw, '/mcp/keyed', key, { jsonrpc: '2.0', id: 6, method: 'completion/complete' }, inSession)).json.error.code, -32601);

  // The user opens the link in a real browser and types their key.
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(link);
    assert.match(await page.textContent('body'), /account of olga/);
    gw.track(TYPED);
    await page.fill('input[name="api_key"]', TYPED);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    const done = await page.textContent('body');
    assert.match(done, /connected for olga, with the API key you entered/);
  } finally {
    await browser.close();
  }

  const ended = await mcpAnswer(gw, '/mcp/keyed', key, list(7), inSession);
  assert.equal(ended.status, 404, 'the gateway\'s own session has ended: the client starts over');
  const real = await mcpAnswer(gw, '/mcp/keyed', key, initialize(8), OPENAI);
  assert.equal(real.status, 200, real.text);
  assert.equal(real.json.result.serverInfo.name, 'keyed-upstream');
  const realSession = { ...OPENAI, 'mcp-session-id': real.headers.get('mcp-session-id'), 'mcp-protocol-version': real.json.result.protocolVersion };
  assert.doesNotMatch(realSession['mcp-session-id'], /^mabs_/);
  await mcpAnswer(gw, '/mcp/keyed', key, { jsonrpc: '2.0', method: 'notifications/initialized' }, realSession);
  const realTools = await mcpAnswer(gw, '/mcp/keyed', key, list(9), realSession);
  assert.ok(realTools.json.result.tools.some((t) => t.name === 'whoami'));
  const seen = await mcpAnswer(gw, '/mcp/keyed', key, callTool(10, 'whoami'), realSession);
  assert.equal(JSON.parse(seen.json.result.content[0].text)['x-api-key'], TYPED);
});

test('Anthropic-style client, OAuth upstream: the connect tool\'s link leads to oidc-provider; after it, a new session reaches the upstream with the user\'s token', async () => {
  const { key } = await newKey(gw, 'arne', ['tickets']);
  const init = await mcpAnswer(gw, '/mcp/tickets', key, initialize(1));
  assert.equal(init.status, 200, init.text);
  const inSession = { 'mcp-session-id': init.headers.get('mcp-session-id'), 'mcp-protocol-version': init.json.result.protocolVersion };
  assert.deepEqual((await mcpAnswer(gw, '/mcp/tickets', key, list(), inSession)).json.result.tools.map((t) => t.name), ['connect_tickets']);
  // Calling an upstream tool before connecting: an error result the model reads, with the link.
  const early = await mcpAnswer(gw, '/mcp/tickets', key, callTool(3, 'whoami'), inSession);
  assert.equal(early.json.result.isError, true);
  const link = linkIn(early.json.result);
  const flow = await startOAuthConnect(gw, link);
  const done = await finishOAuthConnect(gw, as, flow, 'arne-at-idp');
  assert.equal(done.status, 200, done.text);
  assert.match(done.text, /connected for arne, with the account you signed in to at 127\.0\.0\.1/);
  const fresh = await mcpAnswer(gw, '/mcp/tickets', key, initialize(4));
  assert.notEqual(fresh.json.result.serverInfo.name, 'mcp-authbridge');
  const seen = await mcpAnswer(gw, '/mcp/tickets', key, callTool(5, 'whoami'), { 'mcp-session-id': fresh.headers.get('mcp-session-id') ?? '', 'mcp-protocol-version': fresh.json.result.protocolVersion });
  assert.equal(JSON.parse(seen.json.result.content[0].text).sub, 'arne-at-idp');
});

test('the official TS SDK client that declares URL-mode elicitation gets -32042 with the link for a tool call; the Python SDK client (server/discover probe first) sees the connect tool and its link', async () => {
  const { key } = await newKey(gw, 'ute', ['keyed']);
  const transport = new StreamableHTTPClientTransport(new URL(gw.base + '/mcp/keyed'), { requestInit: { headers: { Authorization: `Bearer ${key}` } } });
  const client = new Client({ name: 'e2e-eliciting', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
  await client.connect(transport);
  try {
    assert.match(transport.sessionId, /^mabs_u/);
    await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), (err) => {
      assert.equal(err.code, -32042);
      const [elicitation] = err.elicitations ?? err.data.elicitations;
      assert.equal(elicitation.mode, 'url');
      assert.match(elicitation.url, /\/connect\/mabl_/);
      gw.trackLink(elicitation.url);
      return true;
    });
  } finally {
    await client.close();
  }
  const { key: pyKey } = await newKey(gw, 'pia', ['keyed']);
  const py = await runPyClient(gw.base + '/mcp/keyed', pyKey, 'connect_keyed');
  assert.equal(py.protocol_version, '2026-07-28', 'the Python SDK speaks 2026-07-28 with the gateway\'s session');
  assert.deepEqual(py.tools, ['connect_keyed']);
  gw.trackLink(py.text.match(/https?:\/\/\S+\/connect\/\S+/)[0]);
  assert.match(py.text, /connect their keyed account/);
});

test('2026-07-28: a tool call from a client that declared URL-mode elicitation in its _meta gets an input_required result carrying the link (never -32042)', async () => {
  const { key } = await newKey(gw, 'mona', ['keyed']);
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } };
  const modern = (method, name) => ({ 'mcp-protocol-version': '2026-07-28', 'mcp-method': method, ...(name ? { 'mcp-name': name } : {}) });
  const tools = await mcpAnswer(gw, '/mcp/keyed', key, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: meta } }, modern('tools/list'));
  assert.equal(tools.json.result.resultType, 'complete');
  assert.deepEqual(tools.json.result.tools.map((t) => t.name), ['connect_keyed']);
  const call = await mcpAnswer(gw, '/mcp/keyed', key, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {}, _meta: meta } }, modern('tools/call', 'whoami'));
  assert.equal(call.status, 200, call.text);
  assert.equal(call.json.error, undefined);
  assert.equal(call.json.result.resultType, 'input_required');
  const request = call.json.result.inputRequests.connect;
  assert.equal(request.method, 'elicitation/create');
  assert.equal(request.params.mode, 'url');
  assert.match(request.params.url, /\/connect\/mabl_/);
  gw.trackLink(request.params.url);
});

test('the legacy HTTP+SSE route: the gateway\'s own session answers on its event stream (the official SDK\'s SSE client); after connecting, a new session reaches the legacy upstream', async () => {
  const { key } = await newKey(gw, 'lena', ['old']);
  const first = await sdkLegacyClient(gw.base + '/sse/old', key);
  let link;
  try {
    assert.equal(first.getServerVersion().name, 'mcp-authbridge');
    assert.deepEqual((await first.listTools()).tools.map((t) => t.name), ['connect_old']);
    link = linkIn(await first.callTool({ name: 'connect_old', arguments: {} }));
  } finally {
    await first.close();
  }
  const page = await openPage(link);
  assert.equal(page.status, 200, page.html);
  gw.track(TYPED);
  const done = await submit(gw, link, { csrf: page.csrf, api_key: TYPED }, page.cookie);
  assert.equal(done.status, 200, await done.text());
  const real = await sdkLegacyClient(gw.base + '/sse/old', key);
  try {
    assert.equal(real.getServerVersion().name, 'legacy-upstream');
    assert.equal((await whoami(real))['x-api-key'], TYPED);
  } finally {
    await real.close();
  }
});

test('without connect_tool nothing changes: 403 connection_required with the link in the error', async () => {
  const { key } = await newKey(gw, 'nils', ['plain']);
  const r = await mcpAnswer(gw, '/mcp/plain', key, initialize(1), OPENAI);
  assert.equal(r.status, 403);
  assert.equal(r.json.error.data.reason, 'connection_required');
  assert.match(r.json.error.data.connect_url, /\/connect\/mabl_/);
});
