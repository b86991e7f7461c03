// End-to-end: configuration (API.md §5) as a deployment has it (no .dev.vars defaults): secrets
// refused without ENCRYPTION_KEY, private upstreams refused without ALLOW_PRIVATE_UPSTREAMS, the
// loud development key when DEV_MODE is on, and the admin API disabled without ADMIN_TOKEN; the
// operator console's overview (API.md §4a) says which of these a deployment has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, consoleSignIn } from './harness.mjs';

test('deployed without ENCRYPTION_KEY: secrets are refused, with the fix in the message', async () => {
  const gw = await startGateway({ DEV_MODE: 'false', ENCRYPTION_KEY: '', ALLOW_PRIVATE_UPSTREAMS: 'false' });
  try {
    for (const path of ['/secrets/tenant', '/subjects/alice/secrets/api_key']) {
      const r = await gw.admin('PUT', path, { value: 'v' });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.error.code, 'encryption_key_missing');
      assert.match(r.json.error.message, /wrangler secret put ENCRYPTION_KEY/);
    }
    // Keys are hashes, not sealed: they work without ENCRYPTION_KEY.
    assert.equal((await gw.admin('POST', '/keys', { subject: 'alice', upstreams: ['*'] })).status, 201);
    // The console seals its sessions: it cannot sign anyone in, and says why.
    const signIn = await consoleSignIn(gw);
    assert.equal(signIn.status, 503);
    assert.match(signIn.text, /wrangler secret put ENCRYPTION_KEY/);
    assert.doesNotMatch(signIn.cookie, /mab_console=/);
  } finally {
    await gw.stop();
  }
});

test('REQUEST_LOGS=off: proxied requests write no log line', async () => {
  const gw = await startGateway({ REQUEST_LOGS: 'off' });
  try {
    const r = await fetch(`${gw.base}/mcp/nothing`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    assert.equal(r.status, 401);
    await new Promise((done) => setTimeout(done, 500));
    assert.doesNotMatch(gw.logText(), /\{"request":/);
  } finally {
    await gw.stop();
  }
});

test('deployed: upstreams must be public https', async () => {
  const gw = await startGateway({ DEV_MODE: 'false', ALLOW_PRIVATE_UPSTREAMS: 'false' });
  try {
    for (const url of [
      'http://mcp.example.com/mcp',
      'https://127.0.0.1/mcp',
      'https://2130706433/mcp',
      'https://0x7f.0.0.1/mcp',
      'https://[::1]/mcp',
      'https://[::ffff:10.0.0.1]/mcp',
      'https://192.168.1.10/mcp',
      'https://localhost/mcp',
      'https://169.254.169.254/latest',
    ]) {
      const r = await gw.admin('PUT', '/upstreams/x', { url });
      assert.equal(r.status, 400, `${url}: ${r.text}`);
      assert.equal(r.json.error.data.field, 'url');
    }
    const ok = await gw.admin('PUT', '/upstreams/x', { url: 'https://mcp.example.com/mcp' });
    assert.equal(ok.status, 200, ok.text);
    const { cookie } = await consoleSignIn(gw);
    const settings = await (await fetch(gw.base + '/admin/', { headers: { cookie } })).text();
    assert.match(settings, /Private upstreams allowed<\/th><td>no: upstreams must be public https/);
    assert.match(settings, /<code>ENCRYPTION_KEY<\/code> is set/);
    assert.doesNotMatch(settings, /class="warn"/, 'nothing to warn about');
  } finally {
    await gw.stop();
  }
});

test('development without ENCRYPTION_KEY uses the development key and says so', async () => {
  const gw = await startGateway({ DEV_MODE: 'true', ENCRYPTION_KEY: '' });
  try {
    assert.equal((await gw.admin('PUT', '/secrets/tenant', { value: 'dev-value-123' })).status, 204);
    await new Promise((r) => setTimeout(r, 300));
    assert.match(gw.logText(), /ENCRYPTION_KEY is not set; DEV_MODE seals secrets with the PUBLIC development key/);
    assert.ok(!gw.logText().includes('dev-value-123'));
    const { cookie } = await consoleSignIn(gw);
    const settings = await (await fetch(gw.base + '/admin/', { headers: { cookie } })).text();
    assert.match(settings, /the public development key \(DEV_MODE/);
  } finally {
    await gw.stop();
  }
});

test('admin API without ADMIN_TOKEN is disabled, not open', async () => {
  const gw = await startGateway({ ADMIN_TOKEN: '' });
  try {
    const r = await fetch(gw.base + '/admin/v1/upstreams', { headers: { authorization: 'Bearer ' } });
    assert.equal(r.status, 503);
    assert.equal((await r.json()).error.code, 'admin_disabled');
    const signIn = await consoleSignIn(gw, 'anything');
    assert.equal(signIn.status, 503, 'nor is the console');
    assert.match(signIn.text, /ADMIN_TOKEN is not set/);
  } finally {
    await gw.stop();
  }
});
