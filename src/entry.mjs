// The Worker's entry module (wrangler.toml `main`): the Rust build's exports, with the subject
// store wrapped in a class that extends DurableObject, because the runtime offers Workers RPC
// only on such classes. The Worker calls the store's `op` method over RPC (src/store/stub.rs):
// no HTTP request and response objects, no body streams.
import { DurableObject } from 'cloudflare:workers';
import worker, { SubjectStore as RustSubjectStore } from '../build/index.js';

export default worker;

export class SubjectStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.store = new RustSubjectStore(ctx, env);
  }

  /** One operation (JSON text) → its answer (JSON text). */
  op(text) {
    return this.store.op(text);
  }
}
