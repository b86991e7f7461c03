// The Worker's entry module (wrangler.toml `main`): the Rust build's exports, with the subject
// store wrapped in a class that extends DurableObject, because the runtime offers Workers RPC
// only on such classes. The Worker calls the store's `op` method over RPC (src/store/stub.rs):
// no HTTP request and response objects, no body streams. Besides, plumbing only: the event
// streams of the gateway's own legacy MCP sessions (src/core/connect_tool.rs), which one request
// opens and others write to, so they live in the one place all of them reach: this object.
import { DurableObject } from 'cloudflare:workers';
import worker, { SubjectStore as RustSubjectStore } from '../build/index.js';

export default worker;

export class SubjectStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.store = new RustSubjectStore(ctx, env);
    this.streams = new Map();
  }

  /** One operation (JSON text) → its answer (JSON text). */
  op(text) {
    return this.store.op(text);
  }

  /** Opens the event stream of session `id`, starting with the text `first`; until its reader goes away. */
  openStream(id, first) {
    const { readable, writable } = new TransformStream();
    const writer = writable.getWriter();
    this.streams.set(id, writer);
    writer.closed.catch(() => {}).finally(() => this.streams.delete(id));
    this.pushStream(id, first);
    return readable;
  }

  /** Writes `text` to the event stream of session `id`: false when it is not open here. */
  pushStream(id, text) {
    const writer = this.streams.get(id);
    if (!writer) return false;
    writer.write(new TextEncoder().encode(text)).catch(() => this.streams.delete(id));
    return true;
  }
}
