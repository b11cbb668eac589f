/**
 * The two generations of the coordinator's protocol, named by the invocation schema each hands
 * executors: 2.1 (runs carry a prompt, stops name runs, the runner fetches blueprints) and 2.2
 * (runs carry parameters and a resolved blueprint, stops name sessions, persistent sessions).
 */
export const PROTOCOL_GENERATIONS = ["2.1", "2.2"] as const;
export type ProtocolGeneration = (typeof PROTOCOL_GENERATIONS)[number];
