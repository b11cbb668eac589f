/** The OAuth2 client-credentials token every coordinator request carries, cached and shared. */
import type { ClientCredentials } from "../config/runner-config.ts";
import { messageOf } from "../shared/errors.ts";
import { parseJson } from "../shared/json.ts";
import { addSecret, log } from "../shared/log.ts";
import { TokenReply } from "./replies.ts";
import { limitReply } from "./reply-limit.ts";
import { REQUEST_TIMEOUT_MS } from "./request-timeout.ts";

/** Gives the Authorization header value for coordinator requests, or undefined without auth. */
export interface TokenSource {
  authorization(): Promise<string | undefined>;
  /** Drops a token the coordinator rejected, so the next request fetches a fresh one. */
  invalidate(): void;
}

export const noAuth: TokenSource = {
  authorization: async () => undefined,
  invalidate: () => {},
};

/** Refresh this long before expiry, so a token never dies mid-request. */
const REFRESH_MARGIN_MS = 60_000;

/** The token endpoint refused the credentials (a 4xx other than 408/429): retrying will not help. */
export class AuthError extends Error {
  override name = "AuthError";
}

export function tokenUrl(domain: string): string {
  const base = /^https?:\/\//.test(domain) ? domain : `https://${domain}`;
  return `${base.replace(/\/+$/, "")}/oauth/token`;
}

/**
 * OAuth2 client-credentials token, cached and shared by every part of the runner (its own
 * requests, the gateway, the MCP server). Concurrent callers wait for one token request.
 */
export class ClientCredentialsAuth implements TokenSource {
  private token?: { value: string; refreshAt: number };
  private pending?: Promise<string>;

  constructor(
    private readonly credentials: ClientCredentials,
    private readonly now: () => number = Date.now,
  ) {
    addSecret(credentials.clientSecret);
  }

  async authorization(): Promise<string> {
    if (this.token && this.now() < this.token.refreshAt) return `Bearer ${this.token.value}`;
    this.pending ??= this.fetchToken().finally(() => (this.pending = undefined));
    return `Bearer ${await this.pending}`;
  }

  invalidate(): void {
    this.token = undefined;
  }

  private async fetchToken(): Promise<string> {
    const url = tokenUrl(this.credentials.domain);
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          grant_type: "client_credentials",
          client_id: this.credentials.clientId,
          client_secret: this.credentials.clientSecret,
          audience: this.credentials.audience,
        }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      response = limitReply(response, url);
    } catch (error) {
      // Unreachable is worth retrying; a refusal (AuthError below) is not.
      throw new Error(`Token request to ${url} failed: ${messageOf(error)}`);
    }
    const text = await response.text().catch((error) => {
      throw new Error(`Token request to ${url} failed: ${messageOf(error)}`);
    });
    if (!response.ok) {
      const refused =
        response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
      // A refusal of the credentials is final; an endpoint that is down or overloaded is retried.
      if (refused)
        throw new AuthError(`Token request to ${url} was refused (HTTP ${response.status}): ${text.slice(0, 300)}`);
      throw new Error(`Token request to ${url} answered HTTP ${response.status}: ${text.slice(0, 300)}`);
    }
    // A reply that is not a token (a proxy's error page, say) is retried too.
    const body = parseJson(text, TokenReply, `Token reply from ${url}`);
    addSecret(body.access_token);
    const lifetimeMs = (body.expires_in !== undefined && body.expires_in > 0 ? body.expires_in : 3600) * 1000;
    // Short-lived tokens: refresh at half their life rather than never using them.
    const margin = Math.min(REFRESH_MARGIN_MS, lifetimeMs / 2);
    this.token = { value: body.access_token, refreshAt: this.now() + lifetimeMs - margin };
    log.debug(`Fetched an access token from ${url}, valid ${Math.round(lifetimeMs / 1000)} s`);
    return body.access_token;
  }
}

export function createTokenSource(credentials: ClientCredentials | undefined): TokenSource {
  return credentials ? new ClientCredentialsAuth(credentials) : noAuth;
}
