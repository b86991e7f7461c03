// The fair floor for a gateway that stores credentials, written the way a JavaScript developer
// would: SHA-256 of the client's key, one Durable Object call (RPC, SQLite) that returns that
// key's upstream headers, then the fetch with the client's Authorization swapped for them.
// Keys look like ours: `jsk_<Durable Object id>_<32 random bytes, base64url>`; only the hash is
// stored. Benchmark baseline only (bench/run.mjs); `/seed` is guarded by SEED_TOKEN.
import { DurableObject } from 'cloudflare:workers';

export class Subjects extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS keys (hash TEXT PRIMARY KEY, headers TEXT NOT NULL)');
  }

  credentials(hash) {
    const rows = this.ctx.storage.sql.exec('SELECT headers FROM keys WHERE hash = ?', hash).toArray();
    return rows.length ? JSON.parse(rows[0].headers) : null;
  }

  add(hash, headers) {
    this.ctx.storage.sql.exec('INSERT OR REPLACE INTO keys (hash, headers) VALUES (?, ?)', hash, JSON.stringify(headers));
  }
}

async function sha256hex(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

const unauthorized = () => new Response('{"error":"invalid key"}', { status: 401, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/healthz') return new Response('ok');
    if (url.pathname === '/seed' && request.method === 'POST') {
      if (request.headers.get('authorization') !== `Bearer ${env.SEED_TOKEN}`) return unauthorized();
      const { subject, headers } = await request.json();
      const id = env.SUBJECTS.idFromName(subject);
      const secret = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))
        .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
      const key = `jsk_${id}_${secret}`;
      await env.SUBJECTS.get(id).add(await sha256hex(key), headers);
      return Response.json({ key });
    }
    const key = (request.headers.get('authorization') || '').replace(/^Bearer /, '');
    const m = /^jsk_([0-9a-f]{64})_[A-Za-z0-9_-]{43}$/.exec(key);
    if (!m) return unauthorized();
    let id;
    try { id = env.SUBJECTS.idFromString(m[1]); } catch { return unauthorized(); }
    const creds = await env.SUBJECTS.get(id).credentials(await sha256hex(key));
    if (!creds) return unauthorized();
    const headers = new Headers(request.headers);
    headers.delete('authorization');
    for (const [name, value] of Object.entries(creds)) headers.set(name, value);
    return fetch(env.UPSTREAM + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.body,
      redirect: 'manual',
    });
  },
};
