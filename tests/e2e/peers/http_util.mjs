// The node:http plumbing every loopback peer shares: reading a request body, listening on a free
// loopback port, recording what reached the peer, and closing it.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The whole request body, as UTF-8 text. */
export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Listens on a free port of 127.0.0.1; resolves with the port. */
export function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/** What a test may assert about a request that reached a peer: method, url, headers. */
export const recorded = (req) => ({ method: req.method, url: req.url, headers: { ...req.headers } });

/**
 * Listens (as listen does) and returns what every peer answers with: its `origin`, its `url`
 * (the origin and `pathname`), and `close()`, which closes the server and every connection it
 * holds open (streams included).
 */
export async function served(httpServer, pathname) {
  const origin = `http://127.0.0.1:${await listen(httpServer)}`;
  return { url: origin + pathname, origin, close: () => { httpServer.closeAllConnections(); httpServer.close(); } };
}

/** A 500 with the error's message, unless the answer has begun already. */
export function failed(res, err) {
  if (!res.headersSent) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err?.message || err));
  }
}
