/**
 * The runner's default and largest settings, in one place: the config applies them and the flags'
 * help texts are written from them.
 */
export const DEFAULT_COORDINATOR_URL = "http://localhost:8765";
export const DEFAULT_POLL_TIMEOUT_SECONDS = 30;
export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 60;
export const DEFAULT_STOP_GRACE_SECONDS = 5;
/** How many persistent sessions may wait idle for their next turn, and for how long. */
export const DEFAULT_MAX_IDLE_SESSIONS = 8;
export const DEFAULT_IDLE_SESSION_TIMEOUT_SECONDS = 1800;
/** Lower bounds of the poll hold and the heartbeat interval, given by flag or by the coordinator. */
export const MIN_POLL_TIMEOUT_SECONDS = 1;
export const MIN_HEARTBEAT_INTERVAL_SECONDS = 1;
/** Upper bounds for durations: far below setTimeout's ceiling (~24.8 days), and beyond any sane use. */
export const MAX_POLL_TIMEOUT_SECONDS = 600;
export const MAX_HEARTBEAT_INTERVAL_SECONDS = 3600;
export const MAX_STOP_GRACE_SECONDS = 3600;
/**
 * The longest run timeout or idle time accepted: a week. Far beyond any agent run, and well
 * under what a timer can hold (2^31-1 ms, about 24.8 days) without firing at once.
 */
export const MAX_DURATION_SECONDS = 7 * 24 * 3600;
