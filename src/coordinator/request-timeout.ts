/** How long one request to the coordinator, or to its token endpoint, may take unless it says otherwise. */
export const REQUEST_TIMEOUT_MS = 30_000;
