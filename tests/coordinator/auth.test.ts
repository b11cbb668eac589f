import { expect, test } from "bun:test";
import { AuthError, ClientCredentialsAuth } from "../../src/coordinator/auth.ts";
import { redact } from "../../src/shared/log.ts";
import { onTeardown } from "../support/teardown.ts";

function tokenServer(reply: (n: number) => Response) {
  const requests: any[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      requests.push({ path: new URL(request.url).pathname, body: await request.json() });
      return reply(requests.length);
    },
  });
  onTeardown(() => server.stop(true));
  return { domain: `http://127.0.0.1:${server.port}`, requests };
}

const credentials = (domain: string) => ({
  domain,
  clientId: "cid",
  clientSecret: "very-secret-value",
  audience: "aud",
});

test("client-credentials token: requested once, cached and shared by concurrent callers", async () => {
  const server = tokenServer((n) => Response.json({ access_token: `tok-${n}`, expires_in: 3600 }));
  const auth = new ClientCredentialsAuth(credentials(server.domain));
  const headers = await Promise.all([auth.authorization(), auth.authorization(), auth.authorization()]);
  expect(headers).toEqual(["Bearer tok-1", "Bearer tok-1", "Bearer tok-1"]);
  expect(await auth.authorization()).toBe("Bearer tok-1");
  expect(server.requests).toEqual([
    {
      path: "/oauth/token",
      body: { grant_type: "client_credentials", client_id: "cid", client_secret: "very-secret-value", audience: "aud" },
    },
  ]);
});

test("the token is refreshed before it expires, and after the coordinator rejects it", async () => {
  const server = tokenServer((n) => Response.json({ access_token: `tok-${n}`, expires_in: 600 }));
  let now = 0;
  const auth = new ClientCredentialsAuth(credentials(server.domain), () => now);
  expect(await auth.authorization()).toBe("Bearer tok-1");
  now = 539_000; // 61 s before expiry: still good
  expect(await auth.authorization()).toBe("Bearer tok-1");
  now = 541_000; // inside the refresh margin
  expect(await auth.authorization()).toBe("Bearer tok-2");
  auth.invalidate();
  expect(await auth.authorization()).toBe("Bearer tok-3");
});

test("a refused token request is an AuthError that does not carry the secret", async () => {
  const server = tokenServer(() => Response.json({ error: "access_denied" }, { status: 403 }));
  const auth = new ClientCredentialsAuth(credentials(server.domain));
  const error = await auth.authorization().catch((e: Error) => e);
  expect(error).toBeInstanceOf(AuthError);
  expect((error as Error).message).toContain("HTTP 403");
  expect((error as Error).message).not.toContain("very-secret-value");
});

test("secret and token are redacted from anything logged", async () => {
  const server = tokenServer(() => Response.json({ access_token: "tok-abcdef", expires_in: 600 }));
  const auth = new ClientCredentialsAuth(credentials(server.domain));
  await auth.authorization();
  expect(redact("secret=very-secret-value token=tok-abcdef")).toBe("secret=[redacted] token=[redacted]");
});
