// Runtime plumbing for src/plumbing.rs: each function does in one JS↔wasm crossing what the
// worker crate's wrappers do in many (a header each, an object property each, a promise each).
// Nothing is decided here: every header, name, limit and deadline comes from the Rust side,
// which gets the answers back as plain text and bytes. Header lists travel as one text,
// `name\nvalue\nname\nvalue…`: the runtime allows no line break in a header name or value.

function headersFrom(list) {
  const headers = new Headers();
  const parts = list.split('\n');
  for (let i = 0; i + 1 < parts.length; i += 2) headers.append(parts[i], parts[i + 1]);
  return headers;
}

/** The headers of a request or response as one list. */
export function headerList(headers) {
  let out = '';
  for (const [name, value] of headers) out += (out ? '\n' : '') + name + '\n' + value;
  return out;
}

/** A request's method, URL and headers: `method\nurl\n` and its header list. */
export function head(request) {
  return request.method + '\n' + request.url + '\n' + headerList(request.headers);
}

/**
 * A request's body: resolves `[bytes, true]` when it has at most `limit` bytes (or none), else
 * `[its first peek bytes, false]`, the rest read and dropped up to `drain` bytes, so that the
 * runtime does not cut the connection before the client has its answer. The caller knows the
 * declared length: `declared` 1 when it is within the limit (the runtime then delivers exactly
 * that: read in one piece), 2 when it is over, 0 when there is none (read and counted).
 */
export async function readBody(request, declared, limit, peek, drain) {
  if (!request.body) return [new Uint8Array(0), true];
  if (declared === 1) return [new Uint8Array(await request.arrayBuffer()), true];
  const reader = request.body.getReader();
  const chunks = [];
  let read = 0;
  let kept = 0;
  let over = declared === 2;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.length;
    over ||= read > limit;
    if (over && kept >= peek) {
      if (read >= drain) break;
      continue;
    }
    const room = over ? peek - kept : value.length;
    chunks.push(room < value.length ? value.subarray(0, room) : value);
    kept += Math.min(room, value.length);
  }
  reader.releaseLock();
  const size = over ? Math.min(kept, peek) : kept;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    if (at >= size) break;
    const part = c.subarray(0, size - at);
    bytes.set(part, at);
    at += part.length;
  }
  return [bytes, !over];
}

const TIMEOUT = 'timeout';

/**
 * `fetch` with the headers of `list`, `body` (bytes, or undefined), no redirect followed, and a
 * deadline for the response headers only: rejects with 'timeout' when none came within
 * `timeoutMs` (the request is then aborted); once they came, the body streams for as long as it
 * lasts.
 */
export function send(url, method, list, body, timeoutMs) {
  const controller = new AbortController();
  // Everything that may throw comes before the timer is set (the caller gets the exception).
  const init = { method, headers: headersFrom(list), body, redirect: 'manual', signal: controller.signal };
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let sent;
  try {
    sent = fetch(url, init);
  } catch (error) {
    clearTimeout(timer);
    throw error;
  }
  return sent.then(
    (response) => { clearTimeout(timer); return response; },
    (error) => { clearTimeout(timer); throw controller.signal.aborted ? TIMEOUT : error; },
  );
}

/** `upstream`'s answer passed on: its status, its headers but those named in `drop` (a list), its body unless `empty`. */
export function relay(upstream, drop, empty) {
  const headers = new Headers(upstream.headers);
  for (const name of drop.split('\n')) if (name) headers.delete(name);
  return new Response(empty ? null : upstream.body, { status: upstream.status, headers });
}

/** Calls the RPC method `name` of a Durable Object stub with one or two arguments. */
export function call(stub, name, first, second) {
  return second === undefined ? stub[name](first) : stub[name](first, second);
}

/** The stub of the Durable Object whose id is `hex`, or null when `hex` is not an id of `namespace`. */
export function stubAt(namespace, hex) {
  let id;
  try { id = namespace.idFromString(hex); } catch { return null; }
  return namespace.get(id);
}
