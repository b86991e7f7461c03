// MCP servers that fail on purpose, for tests/e2e/faults.test.mjs. Where the official SDK can
// produce the situation, the SDK server does the talking and the fault is injected underneath it
// (its connection destroyed in the middle of an answer); where it cannot — a malformed stream, a
// legacy `endpoint` event on another origin, a bare 5xx — a raw node:http answer stands in, set
// with `setFault()`. Every request is recorded (method, url, headers) like ts_servers.mjs does.
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { sleep, readBody, recorded, served } from './http_util.mjs';
import { registerWhoami, serveStateless, legacySessions } from './ts_servers.mjs';

/**
 * The SDK server: `whoami` (the headers it got) and `drop_after`, which sends `steps` progress
 * notifications and then has `drop()` destroy the connection instead of answering.
 */
function buildServer(name, drop) {
  const server = new McpServer({ name, version: '1.0.0' });
  registerWhoami(server);
  server.registerTool(
    'drop_after',
    { description: 'Reports progress, then the connection breaks', inputSchema: { steps: z.number().int().min(1).max(10) } },
    async ({ steps }, extra) => {
      for (let i = 1; i <= steps; i++) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: extra._meta?.progressToken ?? 0, progress: i, total: steps } });
        await sleep(50);
      }
      await sleep(300); // the notifications are on their way before the connection goes
      drop();
      return new Promise(() => {}); // never answers: there is no connection left to answer on
    },
  );
  return server;
}

/**
 * A raw answer in place of the SDK's: `{status = 200, headers, body, hold, keepAlive}`; `body` is
 * a string or Buffer written as it is; `hold` keeps the response open afterwards (a stream that
 * stalls), sending an SSE comment every `keepAlive` ms if that is set.
 */
function rawAnswer(res, fault) {
  res.writeHead(fault.status ?? 200, fault.headers ?? {});
  if (fault.body !== undefined) res.write(fault.body);
  if (!fault.hold) return res.end();
  if (fault.keepAlive) {
    // An SSE comment now and then, as real servers send to keep idle streams alive.
    const timer = setInterval(() => res.write(': keep-alive\n\n'), fault.keepAlive);
    res.on('close', () => clearInterval(timer));
  }
}

/** What these servers say to credentials their `check` refuses. */
function unauthorized(res) {
  res.writeHead(401, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'unauthorized' }));
}

/** Streamable HTTP (stateless, SSE answers), guarded by `check(headers)`. */
export async function startFaultyStreamable({ check = () => true, name = 'faulty' } = {}) {
  const requests = [];
  let fault = null;
  const httpServer = http.createServer(async (req, res) => {
    requests.push(recorded(req));
    const raw = req.method === 'POST' ? await readBody(req) : '';
    // A failing server fails for everyone, before it looks at credentials.
    if (fault) return rawAnswer(res, fault);
    if (!check(req.headers)) return unauthorized(res);
    return serveStateless(buildServer(name, () => res.socket?.destroy()), req, res, raw ? JSON.parse(raw) : undefined);
  });
  return {
    ...(await served(httpServer, '/mcp')),
    requests,
    /** A raw answer for every request from now on (see rawAnswer); null: the SDK answers again. */
    setFault: (f) => { fault = f; },
  };
}

/**
 * Legacy HTTP+SSE (2024-11-05): GET /sse opens the stream, POST /messages?sessionId=. A fault
 * replaces the GET's answer (e.g. an `endpoint` event on another origin); `dropStreams()`
 * destroys the connections of every open stream, after whatever they already sent.
 */
export async function startFaultyLegacy({ check = () => true, name = 'faulty-legacy' } = {}) {
  const requests = [];
  const sessions = legacySessions();
  const streams = new Set();
  let fault = null;
  const httpServer = http.createServer(async (req, res) => {
    requests.push(recorded(req));
    const url = new URL(req.url, 'http://127.0.0.1');
    const stream = req.method === 'GET' && url.pathname === '/sse';
    if (stream) {
      streams.add(res);
      res.on('close', () => streams.delete(res));
      if (fault) return rawAnswer(res, fault);
    }
    if (!check(req.headers)) return unauthorized(res);
    if (stream) return sessions.open(res, buildServer(name, () => res.socket?.destroy()));
    if (req.method === 'POST' && url.pathname === '/messages') return sessions.post(req, res, url);
    res.writeHead(404);
    res.end();
  });
  return {
    ...(await served(httpServer, '/sse')),
    requests,
    setFault: (f) => { fault = f; },
    openStreams: () => streams.size,
    dropStreams: () => { for (const res of streams) res.socket?.destroy(); },
  };
}
