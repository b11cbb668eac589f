// The coordinator's error text. No imports on purpose: executors use it too, and start without the runner's modules.

/** The coordinator's error text: FastAPI's `detail` (string or object with `message`), else the body. */
export function coordinatorDetail(body: string): string | undefined {
  if (!body) return undefined;
  try {
    const parsed = JSON.parse(body) as { detail?: unknown; message?: unknown };
    const detail = parsed.detail ?? parsed.message;
    if (typeof detail === "string") return detail;
    if (detail && typeof detail === "object" && "message" in detail && typeof detail.message === "string") {
      return detail.message;
    }
    if (detail !== undefined) return JSON.stringify(detail);
  } catch {
    // not JSON: fall through to the raw text
  }
  return body.slice(0, 500);
}
