// Real MCP servers from the official TypeScript SDK, on loopback, each guarding itself with the
// credentials a real server would want. Every HTTP request they get is recorded (method, url,
// headers) so tests can assert what reached the upstream. The SDK plumbing they share with the
// other peers (fault_servers.mjs, oauth_mcp_server.mjs) is exported from here.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';
import { sleep, readBody, recorded, served } from './http_util.mjs';

/** The `whoami` tool every test server has: the request headers this server received. */
export function registerWhoami(server) {
  server.registerTool('whoami', { description: 'The request headers this server received' }, async (extra) => ({
    content: [{ type: 'text', text: JSON.stringify(extra.requestInfo?.headers ?? {}) }],
  }));
}

function buildServer(name) {
  const server = new McpServer({ name, version: '1.0.0' });
  registerWhoami(server);
  server.registerTool(
    'slow_progress',
    { description: 'Reports progress, then answers', inputSchema: { steps: z.number().int().min(1).max(10) } },
    async ({ steps }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= steps; i++) {
        if (token !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps } });
        }
        await sleep(300);
      }
      return { content: [{ type: 'text', text: 'done' }] };
    },
  );
  return server;
}

/**
 * Answers one request with a fresh SDK `server` on a stateless Streamable HTTP transport (no
 * sessions; `json`: JSON answers instead of SSE); both are closed when the response is.
 */
export async function serveStateless(server, req, res, body, { json = false } = {}) {
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: json });
  res.on('close', () => { transport.close(); server.close(); });
  await server.connect(transport);
  return transport.handleRequest(req, res, body);
}

/**
 * The legacy HTTP+SSE (2024-11-05) sessions of one server: `open(res, server)` answers
 * GET /sse with a stream whose `endpoint` is /messages?sessionId=; `post(req, res, url)` answers
 * POST /messages?sessionId= (404 for a session that is not open).
 */
export function legacySessions() {
  const transports = new Map();
  return {
    async open(res, server) {
      const transport = new SSEServerTransport('/messages', res);
      transports.set(transport.sessionId, transport);
      res.on('close', () => transports.delete(transport.sessionId));
      await server.connect(transport);
    },
    async post(req, res, url) {
      const transport = transports.get(url.searchParams.get('sessionId'));
      if (!transport) { res.writeHead(404); return res.end('unknown session'); }
      return transport.handlePostMessage(req, res, JSON.parse(await readBody(req)));
    },
  };
}

function unauthorized(res) {
  // What a real protected server says; the gateway must not relay these headers.
  res.writeHead(401, {
    'content-type': 'application/json',
    'www-authenticate': 'Bearer realm="upstream", error="invalid_token"',
    'set-cookie': 'upstream_session=leak; Path=/',
  });
  res.end(JSON.stringify({ error: 'unauthorized' }));
}

/**
 * Streamable HTTP server. `check(headers)` decides 401s. `stateless` makes a fresh server per
 * request (no sessions); `json` answers with JSON instead of SSE.
 */
export async function startStreamable({ check, stateless = false, json = false, name = 'upstream' }) {
  const requests = [];
  const sessions = new Map();
  const httpServer = http.createServer(async (req, res) => {
    requests.push(recorded(req));
    if (!check(req.headers)) return unauthorized(res);
    const raw = req.method === 'POST' ? await readBody(req) : '';
    const body = raw ? JSON.parse(raw) : undefined;
    if (stateless) return serveStateless(buildServer(name), req, res, body, { json });
    const sid = req.headers['mcp-session-id'];
    let transport = sid ? sessions.get(sid) : undefined;
    if (sid && !transport) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
    }
    if (!transport) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: json,
        onsessioninitialized: (id) => sessions.set(id, transport),
        onsessionclosed: (id) => sessions.delete(id),
      });
      await buildServer(name).connect(transport);
    }
    return transport.handleRequest(req, res, body);
  });
  return { ...(await served(httpServer, '/mcp')), requests };
}

/** Legacy HTTP+SSE server (2024-11-05): GET /sse opens the stream, POST /messages?sessionId=. */
export async function startLegacySse({ check, name = 'legacy' }) {
  const requests = [];
  const sessions = legacySessions();
  const httpServer = http.createServer(async (req, res) => {
    requests.push(recorded(req));
    if (!check(req.headers)) return unauthorized(res);
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/sse') return sessions.open(res, buildServer(name));
    if (req.method === 'POST' && url.pathname === '/messages') return sessions.post(req, res, url);
    res.writeHead(404);
    res.end();
  });
  return { ...(await served(httpServer, '/sse')), requests };
}

/** A server that accepts connections and never answers: the gateway must time out. */
export async function startHanging() {
  const held = [];
  const httpServer = http.createServer((req, res) => { held.push(res); });
  return served(httpServer, '/mcp');
}
