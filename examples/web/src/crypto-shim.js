// @krmx/state's Stream names its optimistic events by `createHash('sha256')` of their JSON text, from
// Node's crypto, which browsers do not have (and their SubtleCrypto is asynchronous). The hash is only
// ever compared for equality, so the text itself serves as its own name.
export function createHash() {
  let text = '';
  return {
    update(data) { text += data; return this; },
    digest() { return text; },
  };
}
export default { createHash };
