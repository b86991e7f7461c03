// The benchmark's upstream: real MCP servers from the official TypeScript SDK on one loopback
// port, each demanding `X-API-KEY`. Runs as its own process so the load generator and the
// servers do not share an event loop. Prints `{"port": N}` on stdout once listening.
//   POST /json    Streamable HTTP, stateless, JSON answers   (tools/call echo, tools/list)
//   POST /stream  Streamable HTTP, stateless, SSE answers    (tools/call ticks: 20 events)
//   GET  /legacy/sse + POST /legacy/messages                  legacy HTTP+SSE (2024-11-05)
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';

const API_KEY = process.argv[2];
const TOOLS = 12; // a realistic tools/list: a dozen tools with schemas
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

function buildServer() {
  const server = new McpServer({ name: 'bench-upstream', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Answers with its input', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool(
    'ticks',
    { description: 'Sends `count` progress events `gap_ms` apart, each stamped with its send time', inputSchema: { count: z.number().int().min(1).max(100), gap_ms: z.number().int().min(0).max(100) } },
    async ({ count, gap_ms }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= count; i++) {
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken: token, progress: i, total: count, message: String(now()) },
        });
        if (gap_ms) await sleep(gap_ms);
      }
      return { content: [{ type: 'text', text: 'done' }] };
    },
  );
  for (let i = 0; i < TOOLS - 2; i++) {
    server.registerTool(
      `lookup_${i}`,
      {
        description: `Looks up record kind ${i} by id, with optional filters and paging`,
        inputSchema: { id: z.string(), limit: z.number().int().optional(), cursor: z.string().optional() },
      },
      async ({ id }) => ({ content: [{ type: 'text', text: id }] }),
    );
  }
  return server;
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

const legacy = new Map();
const httpServer = http.createServer(async (req, res) => {
  if (req.headers['x-api-key'] !== API_KEY) {
    res.writeHead(401, { 'content-type': 'application/json' });
    return res.end('{"error":"unauthorized"}');
  }
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'POST' && (url.pathname === '/json' || url.pathname === '/stream')) {
    const body = JSON.parse(await readBody(req));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: url.pathname === '/json' });
    const server = buildServer();
    res.on('close', () => { transport.close(); server.close(); });
    await server.connect(transport);
    return transport.handleRequest(req, res, body);
  }
  if (req.method === 'GET' && url.pathname === '/legacy/sse') {
    const transport = new SSEServerTransport('/legacy/messages', res);
    legacy.set(transport.sessionId, transport);
    res.on('close', () => legacy.delete(transport.sessionId));
    await buildServer().connect(transport);
    return;
  }
  if (req.method === 'POST' && url.pathname === '/legacy/messages') {
    const transport = legacy.get(url.searchParams.get('sessionId'));
    if (!transport) { res.writeHead(404); return res.end('unknown session'); }
    return transport.handlePostMessage(req, res, JSON.parse(await readBody(req)));
  }
  res.writeHead(404);
  res.end();
});
httpServer.keepAliveTimeout = 60_000;
httpServer.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: httpServer.address().port }) + '\n');
});
process.on('disconnect', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
