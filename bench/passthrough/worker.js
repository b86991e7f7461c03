// The floor any Worker proxy pays: forward the request to the same path on UPSTREAM with one
// header swapped (the client's Authorization out, the upstream's X-API-KEY in), and stream the
// answer back. No key check, no storage. Benchmark baseline only (bench/run.mjs).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/healthz') return new Response('ok');
    const headers = new Headers(request.headers);
    headers.delete('authorization');
    headers.set('x-api-key', env.API_KEY);
    return fetch(env.UPSTREAM + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.body,
      redirect: 'manual',
    });
  },
};
