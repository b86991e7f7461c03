// A real OAuth 2.1 / OpenID Connect authorization server (npm `oidc-provider`) on loopback, for
// the gateway's client side: RFC 7591 open dynamic registration, PKCE (S256 only, always
// required), RFC 9207 `iss` on the authorization response, RFC 8707 resource indicators (JWT
// access tokens whose `aud` is the MCP server URL), refresh tokens on every code grant, rotated
// on every use, RFC 7009 revocation. Login and consent work without a browser.
//
// HTTP sequence a test makes from the authorization URL the gateway redirects the user to
// (keep a cookie jar across the steps; `completeLogin()` below does exactly this):
//   1. GET  {issuer}/auth?client_id=…&redirect_uri=…&response_type=code&code_challenge=…
//           &code_challenge_method=S256&state=…&resource=…&scope=…
//        → 303 Location: /interaction/{uid}
//          Set-Cookie: _interaction={uid} (Path=/interaction/{uid}),
//                      _interaction_resume={uid} (Path=/auth/{uid})
//   2. GET  {issuer}/interaction/{uid}                      (optional; 200 text/html form)
//   3. POST {issuer}/interaction/{uid}/login   body (form or JSON) login={user id}
//        → 303 Location: {issuer}/auth/{uid}     (login done AND consent granted for the
//                                                  requested scopes + resource)
//      or POST {issuer}/interaction/{uid}/abort  (deny)
//        → 303 Location: {issuer}/auth/{uid}
//   4. GET  {issuer}/auth/{uid}                  (cookie _interaction_resume)
//        → 303 Location: {redirect_uri}?code=…&state=…&iss={issuer url-encoded}
//      or, after abort:
//        → 303 Location: {redirect_uri}?error=access_denied&error_description=…&state=…&iss=…
//   When the jar already holds a logged-in `_session` (same user agent, new client or new
//   scopes), step 1 leads to a consent-only interaction: GET shows a consent form and
//   POST /interaction/{uid}/confirm grants, /abort denies. `/login` also works there.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { generateKeyPair, exportJWK } from 'jose';
import Provider, { errors } from 'oidc-provider';
import { readBody, listen, failed } from './http_util.mjs';

function parseForm(req, raw) {
  if (!raw) return {};
  if ((req.headers['content-type'] || '').includes('application/json')) return JSON.parse(raw);
  return Object.fromEntries(new URLSearchParams(raw));
}

// In-memory adapter (oidc-provider's own one prints a warning at start-up). One store per model.
function memoryAdapterFactory() {
  const stores = new Map(); // model name -> Map(id -> {payload, exp})
  const grants = new Map(); // grantId -> Set of [name, id]
  class MemoryAdapter {
    constructor(name) {
      this.name = name;
      if (!stores.has(name)) stores.set(name, new Map());
      this.store = stores.get(name);
    }
    async upsert(id, payload, expiresIn) {
      this.store.set(id, { payload: structuredClone(payload), exp: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
      if (payload.grantId) {
        if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
        grants.get(payload.grantId).add(`${this.name}\u0000${id}`);
      }
    }
    async find(id) {
      const e = this.store.get(id);
      if (!e) return undefined;
      if (e.exp !== undefined && e.exp < Date.now()) {
        this.store.delete(id);
        return undefined;
      }
      return structuredClone(e.payload);
    }
    async findByUserCode(userCode) {
      for (const [id, e] of this.store) if (e.payload.userCode === userCode) return this.find(id);
      return undefined;
    }
    async findByUid(uid) {
      for (const [id, e] of this.store) if (e.payload.uid === uid) return this.find(id);
      return undefined;
    }
    async consume(id) {
      const e = this.store.get(id);
      if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id) {
      this.store.delete(id);
    }
    async revokeByGrantId(grantId) {
      const keys = grants.get(grantId) ?? new Set();
      for (const key of [...keys]) {
        const [name, id] = key.split('\u0000');
        if (name !== this.name) continue;
        this.store.delete(id);
        keys.delete(key);
      }
    }
  }
  return { MemoryAdapter, stores };
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * opts:
 *   resource        the MCP server URL (string or array) accepted as RFC 8707 resource; may be
 *                   set later with setResource(); while unset, any absolute URL is accepted
 *   scopes          resource scopes granted for it (default ['tickets:read'])
 *   accessTokenTtl  seconds (default 5)
 *   refreshTokenTtl seconds (default 3600)
 *   accessTokenAlg  'RS256' (default) or 'ES256'
 *   defaultResource true: a request without `resource` gets the configured resource anyway
 *                   (a JWT for it). Otherwise oidc-provider's own behaviour: without `resource`
 *                   and without `openid` the authorization ends in error=access_denied ("no
 *                   scope was granted"); with `openid` it issues an opaque, audience-less token
 *                   (plus an id_token) that the MCP server rejects.
 *   strictGrantTypes true: RFC 7591 default grant_types ['authorization_code'] for clients that
 *                   do not ask for 'refresh_token' (then no refresh tokens for them); default
 *                   false: such clients get ['authorization_code', 'refresh_token']
 *   log             true: print oidc-provider errors to stderr
 */
export async function startAuthServer(opts = {}) {
  const scopes = opts.scopes ?? ['tickets:read'];
  const accessTokenTtl = opts.accessTokenTtl ?? 5;
  const refreshTokenTtl = opts.refreshTokenTtl ?? 3600;
  const alg = opts.accessTokenAlg ?? 'RS256';
  let resources = opts.resource === undefined ? null : [].concat(opts.resource);

  const state = {
    down: false,
    downMode: '503',
    downPaths: new Set(['/token']),
    token_requests: 0,
    token_requests_while_down: 0,
    refresh_grants: 0,
    authorization_code_grants: 0,
    registrations: 0,
    revocations: 0,
    // presentations of a refresh token already consumed by rotation (a reuse; oidc-provider then
    // answers invalid_grant and revokes the whole grant)
    refresh_token_reuse: 0,
    // presentations of a refresh token presented before, whatever the outcome (a retry of a
    // request that failed without rotating, e.g. while down, is not counted: those never
    // reach the provider)
    refresh_token_presented_twice: 0,
    presentedRefreshTokens: new Map(), // value -> {count, consumed}
    revoked: [], // {token, token_type_hint, client_id, status}
    tokenResponses: [], // {grant_type, status, error}
    errors: [],
  };

  const [rsa, ec] = await Promise.all([
    generateKeyPair('RS256', { extractable: true }),
    generateKeyPair('ES256', { extractable: true }),
  ]);
  const keys = [
    { ...(await exportJWK(rsa.privateKey)), kid: 'rs256-1', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(ec.privateKey)), kid: 'es256-1', alg: 'ES256', use: 'sig' },
  ];

  let provider; // created once the port (hence the issuer) is known
  const held = new Set(); // sockets of requests a 'hang' outage never answers
  const httpServer = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      state.errors.push(String(err?.stack || err));
      if (opts.log) console.error('[oauth_server]', err);
      if (res.headersSent) res.end();
      else failed(res, err);
    });
  });
  const port = await listen(httpServer);
  const issuer = `http://127.0.0.1:${port}`;

  const { MemoryAdapter, stores } = memoryAdapterFactory();
  provider = new Provider(issuer, {
    adapter: MemoryAdapter,
    jwks: { keys },
    responseTypes: ['code'],
    clients: [],
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub }),
    }),
    clientDefaults: {
      grant_types: opts.strictGrantTypes ? ['authorization_code'] : ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    pkce: { required: () => true }, // and oidc-provider 9 only knows S256
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      registration: { enabled: true, initialAccessToken: false },
      revocation: {
        enabled: true,
        // oidc-provider's default policy, restated (silences its start-up notice): a client may
        // revoke only its own tokens.
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId !== client.clientId) {
            if (client.clientAuthMethod === 'none') return false;
            throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          }
          return true;
        },
      },
      introspection: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => {
          if (oneOf) return oneOf;
          if (opts.defaultResource && resources?.length) return resources[0];
          return undefined;
        },
        // A refresh (or code) grant without `resource` keeps the resource it was granted for.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (resources && !resources.includes(resourceIndicator)) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            scope: scopes.join(' '),
            audience: resourceIndicator,
            accessTokenTTL: accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.kind === 'AuthorizationCode',
    rotateRefreshToken: true,
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: refreshTokenTtl,
      Interaction: 600,
      Session: 3600,
      Grant: 86400,
      ClientCredentials: 600,
    },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  });

  // Counting and outages, inside the provider's Koa app (runs around every route).
  provider.use(async (ctx, next) => {
    const path = ctx.path;
    if (path === '/token') state.token_requests += 1;
    if (state.down && state.downMode === '503' && state.downPaths.has(path)) {
      if (path === '/token') state.token_requests_while_down += 1;
      ctx.status = 503;
      ctx.set('retry-after', '1');
      ctx.body = { error: 'temporarily_unavailable', error_description: 'authorization server is down (test control)' };
      return;
    }
    await next();
    const params = ctx.oidc?.params;
    if (path === '/token' && params) {
      const gt = params.grant_type;
      const entry = {
        grant_type: gt,
        status: ctx.status,
        error: ctx.body?.error,
        error_description: ctx.body?.error_description,
        // oidc-provider's reason, never sent to the client (its body says "grant request is
        // invalid"): e.g. "refresh token already used", "authorization code already consumed"
        detail: ctx.state.grantErrorDetail,
      };
      state.tokenResponses.push(entry);
      if (gt === 'refresh_token') {
        state.refresh_grants += 1;
        const rt = params.refresh_token;
        if (rt) {
          entry.refresh_token = rt;
          const seen = state.presentedRefreshTokens.get(rt) ?? { count: 0, consumed: false };
          seen.count += 1;
          if (seen.count > 1) state.refresh_token_presented_twice += 1;
          if (seen.consumed) {
            state.refresh_token_reuse += 1;
            entry.reuse = true;
          }
          // Rotation happened in this request (even if it then failed, e.g. invalid_target).
          if (ctx.oidc.entities?.RotatedRefreshToken) seen.consumed = true;
          state.presentedRefreshTokens.set(rt, seen);
          if (ctx.status === 200) entry.new_refresh_token = ctx.body?.refresh_token;
        }
      } else if (gt === 'authorization_code') {
        state.authorization_code_grants += 1;
      }
    } else if (path === '/token/revocation' && params) {
      state.revocations += 1;
      state.revoked.push({
        token: params.token,
        token_type_hint: params.token_type_hint,
        client_id: ctx.oidc.client?.clientId,
        status: ctx.status,
        error: ctx.body?.error,
      });
    } else if (path === '/reg' && ctx.method === 'POST' && ctx.status === 201) {
      state.registrations += 1;
    }
  });
  provider.on('grant.error', (ctx, err) => {
    ctx.state.grantErrorDetail = err.error_detail ?? err.error_description;
  });
  provider.on('server_error', (_ctx, err) => {
    state.errors.push(String(err?.stack || err));
    if (opts.log) console.error('[oauth_server] server_error', err);
  });
  if (opts.log) {
    provider.on('grant.error', (_ctx, err) => console.error('[oauth_server] grant.error', err.error, err.error_description, err.error_detail ?? '', err.cause ?? ''));
    provider.on('authorization.error', (_ctx, err) => console.error('[oauth_server] authorization.error', err.error, err.error_description));
  }

  const callback = provider.callback();

  async function interactionPage(req, res, uid) {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params } = details;
    const title = prompt.name === 'login' ? 'Sign in' : 'Authorize';
    const body = prompt.name === 'login'
      ? `<form method="post" action="/interaction/${esc(uid)}/login">
  <label>User <input name="login" value="alice"></label>
  <button type="submit">Sign in and allow</button>
</form>`
      : `<form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit">Allow</button></form>`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><html><head><title>${title}</title></head><body>
<h1>${title}</h1>
<p>Client <code>${esc(params.client_id)}</code> asks for <code>${esc(params.scope ?? '')}</code>
on <code>${esc([].concat(params.resource ?? []).join(' '))}</code>.</p>
${body}
<form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit">Deny</button></form>
</body></html>`);
  }

  async function grantFor(details, accountId) {
    const { params, grantId } = details;
    let grant = grantId ? await provider.Grant.find(grantId) : undefined;
    if (!grant) grant = new provider.Grant({ accountId, clientId: params.client_id });
    const requested = (params.scope ?? '').split(' ').filter(Boolean);
    const oidcScopes = requested.filter((s) => s === 'openid' || s === 'offline_access');
    if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
    for (const r of [].concat(params.resource ?? [])) {
      const rs = requested.filter((s) => scopes.includes(s));
      if (rs.length) grant.addResourceScope(r, rs.join(' '));
      else grant.addResourceScope(r, '');
    }
    // A request without `resource` that is bound to the default one (opts.defaultResource).
    if (!params.resource && opts.defaultResource && resources?.length) {
      grant.addResourceScope(resources[0], requested.filter((s) => scopes.includes(s)).join(' '));
    }
    return grant.save();
  }

  async function handle(req, res) {
    const url = new URL(req.url, issuer);
    if (state.down && state.downPaths.has(url.pathname) && (state.downMode === 'slow' || state.downMode === 'hang')) {
      if (state.downMode === 'hang') {
        if (url.pathname === '/token') {
          state.token_requests += 1;
          state.token_requests_while_down += 1;
        }
        // Never answered: dropped when the server comes back (setDown(false)) or stops.
        held.add(req.socket);
        return;
      }
      await new Promise((r) => setTimeout(r, state.slowMs));
    }
    if (state.down && state.downMode === 'answer' && state.downPaths.has(url.pathname)) {
      if (url.pathname === '/token') {
        state.token_requests += 1;
        state.token_requests_while_down += 1;
      }
      res.writeHead(state.answer.status, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(state.answer.body));
    }
    if (state.down && state.downMode === 'reset' && state.downPaths.has(url.pathname)) {
      if (url.pathname === '/token') {
        state.token_requests += 1;
        state.token_requests_while_down += 1;
      }
      req.socket.destroy();
      return;
    }
    // RFC 8414 metadata: the same JSON as OpenID discovery.
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      req.url = '/.well-known/openid-configuration' + url.search;
      return callback(req, res);
    }
    const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/);
    if (!m) return callback(req, res);
    const [, uid, action] = m;
    if (!action && req.method === 'GET') return interactionPage(req, res, uid);
    if (!action || req.method !== 'POST') {
      res.writeHead(405);
      return res.end();
    }
    const form = parseForm(req, await readBody(req));
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction uid mismatch');
    if (action === 'abort' || form.deny) {
      return provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'End-User denied the authorization request',
      }, { mergeWithLastSubmission: false });
    }
    let accountId;
    const result = {};
    if (action === 'login' || details.prompt.name === 'login') {
      accountId = String(form.login || form.user || 'alice');
      result.login = { accountId };
    } else {
      accountId = details.session?.accountId;
    }
    result.consent = { grantId: await grantFor(details, accountId) };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  }

  /**
   * Walks the interaction with fetch and a fresh cookie jar (no browser). Returns the final
   * Location (the gateway's redirect_uri with code/state/iss or error) without following it.
   */
  async function completeLogin(authorizationUrl, { user = 'alice', deny = false, maxHops = 10 } = {}) {
    const jar = new Map();
    const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const remember = (resp) => {
      for (const sc of resp.headers.getSetCookie()) {
        const [pair, ...attrs] = sc.split(';');
        const i = pair.indexOf('=');
        const name = pair.slice(0, i).trim();
        const value = pair.slice(i + 1).trim();
        const expired = attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now())
          || attrs.some((a) => /^\s*max-age=0\b/i.test(a));
        if (!value || expired) jar.delete(name);
        else jar.set(name, value);
      }
    };
    const step = async (u, init = {}) => {
      const resp = await fetch(u, { redirect: 'manual', ...init, headers: { ...(init.headers || {}), cookie: cookieHeader() } });
      remember(resp);
      return resp;
    };
    let next = String(authorizationUrl);
    for (let hop = 0; hop < maxHops; hop++) {
      const target = new URL(next, issuer);
      if (target.origin !== new URL(issuer).origin) return target.href; // left the AS: done
      const im = target.pathname.match(/^\/interaction\/([^/]+)$/);
      let resp;
      if (im) {
        const page = await step(target.href);
        if (page.status !== 200) throw new Error(`interaction page ${page.status}: ${await page.text()}`);
        await page.text();
        const action = deny ? 'abort' : 'login'; // /login also grants a consent-only prompt
        resp = await step(new URL(`/interaction/${im[1]}/${action}`, issuer).href, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ login: user }).toString(),
        });
      } else {
        resp = await step(target.href);
      }
      const loc = resp.headers.get('location');
      if (!(resp.status >= 300 && resp.status < 400) || !loc) {
        throw new Error(`unexpected ${resp.status} at ${target.pathname}: ${(await resp.text()).slice(0, 500)}`);
      }
      await resp.arrayBuffer().catch(() => {});
      next = new URL(loc, target).href;
    }
    throw new Error('too many redirects in completeLogin');
  }

  return {
    issuer,
    url: issuer,
    jwksUri: `${issuer}/jwks`,
    metadataUrl: `${issuer}/.well-known/oauth-authorization-server`,
    provider,
    stores, // adapter contents, by model name (RefreshToken, Grant, Client, ...)
    setResource(r) { resources = r === undefined || r === null ? null : [].concat(r); },
    /** down: true → token endpoint answers 503; mode 'reset' destroys the socket instead. */
    /** mode: '503' (answers 503), 'reset' (drops the connection), 'slow' (answers after `ms`),
     *  'hang' (never answers until the server is up again), 'answer' (answers `status` with the
     *  JSON `body`, e.g. an OAuth error under a name of its own). */
    setDown(down, { mode = '503', paths = ['/token'], ms = 1000, status = 400, body = {} } = {}) {
      state.down = !!down;
      state.downMode = mode;
      state.downPaths = new Set(paths);
      state.slowMs = ms;
      state.answer = { status, body };
      if (!down) {
        for (const socket of held) socket.destroy();
        held.clear();
      }
    },
    counts() {
      return {
        token_requests: state.token_requests,
        token_requests_while_down: state.token_requests_while_down,
        refresh_grants: state.refresh_grants,
        authorization_code_grants: state.authorization_code_grants,
        registrations: state.registrations,
        revocations: state.revocations,
        refresh_token_reuse: state.refresh_token_reuse,
        refresh_token_presented_twice: state.refresh_token_presented_twice,
      };
    },
    tokenResponses: () => state.tokenResponses.slice(),
    /** Gives a registered client a new secret: the old one is refused from now on. */
    rotateClientSecret(clientId) {
      const entry = stores.get('Client').get(clientId);
      const secret = randomBytes(32).toString('base64url');
      entry.payload = { ...entry.payload, client_secret: secret };
      return secret;
    },
    revoked: () => state.revoked.slice(),
    /** Is this refresh token still usable (exists, not consumed by rotation, grant not revoked)? */
    async isRefreshTokenActive(value) {
      const rt = await provider.RefreshToken.find(value);
      if (!rt || rt.consumed || rt.isExpired) return false;
      const grant = await provider.Grant.find(rt.grantId);
      return !!grant;
    },
    errors: () => state.errors.slice(),
    /** Every secret it handed out that it still knows: codes, opaque tokens, client secrets. */
    issuedSecrets() {
      const out = [];
      for (const model of ['AuthorizationCode', 'RefreshToken', 'AccessToken']) out.push(...(stores.get(model)?.keys() ?? []));
      for (const e of state.tokenResponses) out.push(e.refresh_token, e.new_refresh_token);
      for (const [, e] of stores.get('Client') ?? []) out.push(e.payload.client_secret);
      return out.filter(Boolean);
    },
    completeLogin,
    stop() {
      httpServer.closeAllConnections();
      return new Promise((resolve) => httpServer.close(() => resolve()));
    },
  };
}
