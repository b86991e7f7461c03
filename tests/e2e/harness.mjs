// Test harness: starts the built Worker under `wrangler dev` on a free loopback port with
// throw-away state, and talks to its admin API. Everything listens on 127.0.0.1 only.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, createWriteStream, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `wrangler dev` with the already-built Worker (MAB_SKIP_BUILD=1). Returns the gateway's
 * base URL, its admin token, the values it was given, a stop() and logText() for the captured log.
 */
export async function startGateway(vars = {}) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const state = mkdtempSync(path.join(os.tmpdir(), 'mab-state-'));
  const logFile = path.join(state, 'wrangler.log');
  const adminToken = 'adm_' + randomBytes(24).toString('base64url');
  const encryptionKey = randomBytes(32).toString('base64');
  const allVars = {
    ADMIN_TOKEN: adminToken,
    ENCRYPTION_KEY: encryptionKey,
    ALLOW_PRIVATE_UPSTREAMS: 'true',
    ...vars,
  };
  const args = [
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
    '--persist-to', path.join(state, 'persist'), '--show-interactive-dev-session=false',
  ];
  for (const [k, v] of Object.entries(allVars)) args.push('--var', `${k}:${v}`);
  const child = spawn(path.join(ROOT, 'node_modules/.bin/wrangler'), args, {
    cwd: ROOT,
    env: {
      ...process.env,
      PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH}`,
      MAB_SKIP_BUILD: '1',
      WRANGLER_SEND_METRICS: 'false',
      CLOUDFLARE_CF_FETCH_ENABLED: 'false',
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const log = createWriteStream(logFile);
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.on('exit', (code) => { exited = code; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited !== null) throw new Error(`wrangler dev exited (${exited}):\n${readFileSync(logFile, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`wrangler dev not ready in 120 s:\n${readFileSync(logFile, 'utf8')}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok && (await r.text()) === 'ok') break;
    } catch { /* not up yet */ }
    await sleep(250);
  }
  const admin = async (method, p, body) => {
    const r = await fetch(`${base}/admin/v1${p}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, json, text, headers: r.headers };
  };
  return {
    base,
    adminToken,
    encryptionKey,
    admin,
    logText: () => readFileSync(logFile, 'utf8'),
    async stop() {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      await new Promise((r) => (exited !== null ? r() : child.once('exit', r)));
      rmSync(state, { recursive: true, force: true });
    },
  };
}

/** Reads a Streamable HTTP answer (JSON or SSE) and returns the JSON-RPC messages in it. */
export async function rpcMessages(response) {
  const type = response.headers.get('content-type') || '';
  const text = await response.text();
  if (type.startsWith('text/event-stream')) {
    return text
      .split(/\r?\n\r?\n/)
      .map((ev) => ev.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n'))
      .filter(Boolean)
      .map((d) => JSON.parse(d));
  }
  return text ? [JSON.parse(text)] : [];
}

/** The Python interpreter of the venv scripts/setup.sh made for the Python MCP peers. */
export const PYTHON = path.join(process.env.MAB_CACHE || path.join(os.homedir(), '.cache/mcp-authbridge'), 'venv/bin/python');

/** Starts tests/e2e/peers/py_server.py; resolves once it prints `READY <port>`. */
export function startPyServer({ apiKey, headerName = 'X-API-KEY' }) {
  const logFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'mab-py-')), 'requests.jsonl');
  const child = spawn(PYTHON, [path.join(ROOT, 'tests/e2e/peers/py_server.py'), '--port', '0', '--api-key', apiKey, '--header-name', headerName, '--log', logFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.on('exit', (code) => reject(new Error(`py_server exited (${code})`)));
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/READY (\d+)/);
      if (m) {
        child.removeAllListeners('exit');
        resolve({
          url: `http://127.0.0.1:${m[1]}/mcp`,
          requests: () => readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)),
          close: () => child.kill('SIGINT'),
        });
      }
    });
  });
}

/** Runs tests/e2e/peers/py_client.py against a URL with one key; resolves with its JSON line. */
export function runPyClient(url, key) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [path.join(ROOT, 'tests/e2e/peers/py_client.py'), '--url', url, '--key', key], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1))) : reject(new Error(`py_client exited ${code}: ${err}`))));
  });
}

/** An official SDK client connected to `url` with one gateway key as its only credential. */
export async function sdkClient(url, key) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name: 'e2e', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** Calls the `whoami` tool every test server has; returns its JSON. */
export async function whoami(client) {
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  return JSON.parse(result.content[0].text);
}

/** Connects, calls `whoami` once, disconnects. */
export async function whoamiVia(url, key) {
  const client = await sdkClient(url, key);
  try {
    return await whoami(client);
  } finally {
    await client.close();
  }
}
