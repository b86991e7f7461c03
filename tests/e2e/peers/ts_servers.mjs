// Real MCP servers from the official TypeScript SDK, on loopback, each guarding itself with the
// credentials a real server would want. Every HTTP request they get is recorded (method, url,
// headers) so tests can assert what reached the upstream.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function buildServer(name) {
  const server = new McpServer({ name, version: '1.0.0' });
  server.registerTool('whoami', { description: 'The request headers this server received' }, async (extra) => ({
    content: [{ type: 'text', text: JSON.stringify(extra.requestInfo?.headers ?? {}) }],
  }));
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

export function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

export function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
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
    requests.push({ method: req.method, url: req.url, headers: { ...req.headers } });
    if (!check(req.headers)) return unauthorized(res);
    const raw = req.method === 'POST' ? await readBody(req) : '';
    const body = raw ? JSON.parse(raw) : undefined;
    if (stateless) {
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: json });
      const server = buildServer(name);
      res.on('close', () => { transport.close(); server.close(); });
      await server.connect(transport);
      return transport.handleRequest(req, res, body);
    }
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
  const port = await listen(httpServer);
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    close: () => { httpServer.closeAllConnections(); httpServer.close(); },
  };
}

/** Legacy HTTP+SSE server (2024-11-05): GET /sse opens the stream, POST /messages?sessionId=. */
export async function startLegacySse({ check, name = 'legacy' }) {
  const requests = [];
  const transports = new Map();
  const httpServer = http.createServer(async (req, res) => {
    requests.push({ method: req.method, url: req.url, headers: { ...req.headers } });
    if (!check(req.headers)) return unauthorized(res);
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/sse') {
      const transport = new SSEServerTransport('/messages', res);
      transports.set(transport.sessionId, transport);
      res.on('close', () => transports.delete(transport.sessionId));
      await buildServer(name).connect(transport);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/messages') {
      const transport = transports.get(url.searchParams.get('sessionId'));
      if (!transport) { res.writeHead(404); return res.end('unknown session'); }
      const raw = await readBody(req);
      return transport.handlePostMessage(req, res, JSON.parse(raw));
    }
    res.writeHead(404);
    res.end();
  });
  const port = await listen(httpServer);
  return {
    url: `http://127.0.0.1:${port}/sse`,
    requests,
    close: () => { httpServer.closeAllConnections(); httpServer.close(); },
  };
}

/** A server that accepts connections and never answers: the gateway must time out. */
export async function startHanging() {
  const held = [];
  const httpServer = http.createServer((req, res) => { held.push(res); });
  const port = await listen(httpServer);
  return { url: `http://127.0.0.1:${port}/mcp`, close: () => { httpServer.closeAllConnections(); httpServer.close(); } };
}
