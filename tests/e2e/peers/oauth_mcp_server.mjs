// A real MCP server (official TypeScript SDK, Streamable HTTP, stateless) protected by OAuth:
// it accepts only JWT access tokens from the given authorization server whose `aud` is its own
// /mcp URL (RFC 8707), and advertises that AS through RFC 9728 Protected Resource Metadata.
// Every HTTP request is recorded (method, url, headers) like ts_servers.mjs does. Also the pair
// OAuth tests start: this server and the authorization server of oauth_server.mjs, set up for each
// other (startOAuthPeers).
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { readBody, recorded, served, failed } from './http_util.mjs';
import { serveStateless } from './ts_servers.mjs';
import { startAuthServer } from './oauth_server.mjs';

function buildServer(claims) {
  const server = new McpServer({ name: 'oauth-protected', version: '1.0.0' });
  server.registerTool('whoami', { description: 'The verified access token: sub, scope, aud, exp' }, async () => ({
    content: [{
      type: 'text',
      text: JSON.stringify({ sub: claims.sub, scope: claims.scope, aud: claims.aud, exp: claims.exp, client_id: claims.client_id }),
    }],
  }));
  return server;
}

/**
 * issuer: the AS issuer (checked against `iss`); jwksUri: its JWKS (default `${issuer}/jwks`).
 * scopes: PRM scopes_supported (default ['tickets:read']); requiredScope: if set, a token
 * without it gets 403 insufficient_scope.
 */
export async function startProtectedMcp({ issuer, jwksUri, scopes = ['tickets:read'], requiredScope } = {}) {
  const requests = [];
  const rejections = []; // {status, reason}
  let unauthorizedCount = 0;
  // Server-side revocation: tokens issued (iat, seconds) before this are refused.
  let notBefore = 0;
  const jwks = createRemoteJWKSet(new URL(jwksUri ?? `${issuer}/jwks`), { cooldownDuration: 0 });

  let base; // http://127.0.0.1:PORT
  let mcpUrl;
  let prmUrl;

  const prm = () => ({
    resource: mcpUrl,
    authorization_servers: [issuer],
    scopes_supported: scopes,
    bearer_methods_supported: ['header'],
    resource_name: 'oauth-protected test MCP server',
  });

  function deny(res, status, reason, error) {
    if (status === 401) unauthorizedCount += 1;
    rejections.push({ status, reason });
    const parts = [`resource_metadata="${prmUrl}"`];
    if (error) parts.push(`error="${error}"`, `error_description="${reason.replace(/["\\]/g, '')}"`);
    if (status === 403 && requiredScope) parts.push(`scope="${requiredScope}"`);
    res.writeHead(status, {
      'content-type': 'application/json',
      'www-authenticate': `Bearer ${parts.join(', ')}`,
    });
    res.end(JSON.stringify({ error: error ?? 'unauthorized', error_description: reason }));
  }

  const httpServer = http.createServer(async (req, res) => {
    try {
      requests.push(recorded(req));
      const url = new URL(req.url, base);
      if (req.method === 'GET' && (url.pathname === '/.well-known/oauth-protected-resource/mcp'
        || url.pathname === '/.well-known/oauth-protected-resource')) {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        return res.end(JSON.stringify(prm()));
      }
      if (url.pathname !== '/mcp') {
        res.writeHead(404, { 'content-type': 'text/plain' });
        return res.end('not found');
      }
      const auth = req.headers.authorization;
      const m = typeof auth === 'string' ? auth.match(/^Bearer\s+(\S+)\s*$/i) : null;
      if (!m) return deny(res, 401, 'no bearer token');
      let claims;
      try {
        ({ payload: claims } = await jwtVerify(m[1], jwks, { issuer, audience: mcpUrl, algorithms: ['RS256', 'ES256'] }));
      } catch (err) {
        return deny(res, 401, `${err.code ?? 'ERR'}: ${err.message}`, 'invalid_token');
      }
      if ((claims.iat ?? 0) < notBefore) return deny(res, 401, 'token revoked by the resource server', 'invalid_token');
      if (requiredScope && !String(claims.scope ?? '').split(' ').includes(requiredScope)) {
        return deny(res, 403, `scope ${requiredScope} required`, 'insufficient_scope');
      }
      const raw = req.method === 'POST' ? await readBody(req) : '';
      const body = raw ? JSON.parse(raw) : undefined;
      return await serveStateless(buildServer(claims), req, res, body);
    } catch (err) {
      failed(res, err);
    }
  });
  const peer = await served(httpServer, '/mcp');
  base = peer.origin;
  mcpUrl = peer.url;
  prmUrl = `${base}/.well-known/oauth-protected-resource/mcp`;

  return {
    url: mcpUrl,
    prmUrl,
    requests,
    rejections,
    unauthorized: () => unauthorizedCount,
    /** Refuse every token issued before `seconds` (epoch seconds), as a server that revoked them. */
    refuseTokensIssuedBefore: (seconds) => { notBefore = seconds; },
    close: peer.close,
  };
}

/**
 * The pair an OAuth test needs: a real authorization server (`asOptions` as startAuthServer
 * takes them) and a protected MCP server that trusts it, the server set as the AS's resource.
 */
export async function startOAuthPeers(asOptions = {}) {
  const as = await startAuthServer(asOptions);
  try {
    const mcp = await startProtectedMcp({ issuer: as.issuer, jwksUri: as.jwksUri });
    as.setResource(mcp.url);
    return { as, mcp };
  } catch (err) {
    await as.stop();
    throw err;
  }
}

/** Stops the pair (either may be unset: a `before` that failed). */
export async function stopOAuthPeers(as, mcp) {
  mcp?.close();
  await as?.stop();
}

/**
 * What the pair handed out and the gateway held (codes, tokens and client secrets the AS issued,
 * the access tokens the MCP server was sent): each must stay out of the gateway's log. Either
 * peer may be unset (a `before` that failed).
 */
export function oauthSecrets(as, mcp) {
  return [
    ...(as?.issuedSecrets() ?? []),
    ...(mcp?.requests ?? []).map((r) => r.headers.authorization?.replace(/^Bearer /, '')),
  ];
}
