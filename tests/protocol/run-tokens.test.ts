import { expect, test } from "bun:test";
import { admit, RUN_TOKEN_PATTERN, RunTokens, urlWithToken } from "../../src/protocol/run-tokens.ts";
import { redact } from "../../src/shared/log.ts";

test("tokens are unguessable, map to their session until revoked, and have one recognizable shape", () => {
  const tokens = new RunTokens();
  const a = tokens.issue("ses_a");
  const b = tokens.issue("ses_a");
  expect(a).not.toBe(b);
  expect(a).toMatch(/^agrun_[A-Za-z0-9_-]{43}$/);
  expect(tokens.sessionOf(a)).toBe("ses_a");
  tokens.revoke(a);
  expect(tokens.sessionOf(a)).toBeUndefined();
  expect(tokens.sessionOf(b)).toBe("ses_a");
  expect(tokens.sessionOf("")).toBeUndefined();
  expect(`x ${b} y ${b}`.replace(RUN_TOKEN_PATTERN, "T")).toBe("x T y T");
  // Every log line is redacted with that shape.
  expect(redact(`GET http://127.0.0.1:1/${b}/events`)).toBe("GET http://127.0.0.1:1/[redacted]/events");
});

test("the token becomes the URL's first path segment", () => {
  expect(urlWithToken("http://127.0.0.1:5", "agrun_t")).toBe("http://127.0.0.1:5/agrun_t");
  expect(urlWithToken("http://127.0.0.1:5/mcp", "agrun_t")).toBe("http://127.0.0.1:5/agrun_t/mcp");
});

test("the door: Host, then token, then a JSON body; the path after the token", () => {
  const tokens = new RunTokens();
  const token = tokens.issue("ses_d");
  const door = { port: 5, tokens, urlSource: "THE_URL" };
  // A Request built here has no Host header of its own (a server's has).
  const request = (path: string, init: RequestInit = {}, host = "127.0.0.1:5") =>
    new Request(`http://127.0.0.1:5${path}`, { ...init, headers: { host, ...(init.headers as object) } });
  expect(admit(request(`/${token}/sessions/x`), door)).toEqual({
    ok: true,
    token,
    sessionId: "ses_d",
    path: "/sessions/x",
  });
  expect(admit(request(`/${token}`), door)).toMatchObject({ ok: true, path: "/" });
  expect(admit(request(`/${token}/x`, {}, "localhost:5"), door)).toMatchObject({ ok: true });
  expect(admit(request(`/${token}/x`, {}, "127.0.0.1:6"), door)).toMatchObject({ ok: false, status: 403 });
  expect(admit(request(`/${token}/x`, {}, "attacker.example:5"), door)).toMatchObject({ ok: false, status: 403 });
  expect(admit(request("/bind"), door)).toMatchObject({ ok: false, status: 401 });
  expect((admit(request("/bind"), door) as { message: string }).message).toContain("(THE_URL)");
  const json = { "content-type": "application/json; charset=utf-8" };
  expect(admit(request(`/${token}/bind`, { method: "POST", headers: json, body: "{}" }), door)).toMatchObject({
    ok: true,
  });
  const plain = { "content-type": "text/plain" };
  expect(admit(request(`/${token}/bind`, { method: "POST", headers: plain, body: "{}" }), door)).toMatchObject({
    ok: false,
    status: 415,
  });
  expect(admit(request(`/${token}/bind`, { method: "PATCH" }), door)).toMatchObject({ ok: false, status: 415 });
});

test("a URL's password is cut out of log lines, whatever its length; the rest of the URL stays", () => {
  expect(redact("Registered with http://runner:pw@127.0.0.1:8765 as r1")).toBe(
    "Registered with http://runner:[redacted]@127.0.0.1:8765 as r1",
  );
  expect(redact("https://u:p%40ss@host/path?q=a@b")).toBe("https://u:[redacted]@host/path?q=a@b");
  expect(redact("mail me at a@b.c, or see http://host:80/x")).toBe("mail me at a@b.c, or see http://host:80/x");
});
