/** How much of a reply from the coordinator (or its token endpoint) the runner reads at most. */

/**
 * Far above any reply of the protocol or any session read an executor makes through the gateway;
 * a bigger one is no reply, and reading it whole could take the runner's memory.
 */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/** A reply over MAX_REPLY_BYTES: its request failed, as if the connection had broken (retried where that is). */
export class ReplyTooLargeError extends Error {
  override name = "ReplyTooLargeError";
  constructor(what: string, bytes?: number) {
    const size = bytes === undefined ? "more than that" : `${bytes} bytes`;
    super(`the reply to ${what} is over the ${MAX_REPLY_BYTES / (1024 * 1024)} MiB a reply may have (${size})`);
  }
}

/**
 * The response (to `what`: a path or URL, for the error) with a body that cannot be read past MAX_REPLY_BYTES: one that declares a bigger
 * length fails at once, one that streams more fails when it gets there. A declared length is a
 * bound of its own (the body ends there), so such replies are passed on unchanged.
 */
export function limitReply(response: Response, what: string): Response {
  const body = response.body;
  if (!body) return response;
  const declared = response.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared)) {
    const length = Number(declared);
    if (length <= MAX_REPLY_BYTES) return response;
    void body.cancel().catch(() => {});
    throw new ReplyTooLargeError(what, length);
  }
  let read = 0;
  const limit = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      read += chunk.byteLength;
      if (read > MAX_REPLY_BYTES) controller.error(new ReplyTooLargeError(what));
      else controller.enqueue(chunk);
    },
  });
  const { status, statusText, headers } = response;
  return new Response(body.pipeThrough(limit), { status, statusText, headers });
}
