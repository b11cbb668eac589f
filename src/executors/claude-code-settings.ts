/**
 * The Claude Code executor's plain data: its program name, and what `executor_config` can set
 * (the accepted values and the defaults). No validator: read by the validator
 * (claude-code-options.ts), by the entry and by the early start (claude-code-early.ts), which must
 * not wait for the validator to load.
 */
import type { PermissionMode, SettingSource } from "@anthropic-ai/claude-agent-sdk/core";

export const CLAUDE_CODE_EXECUTOR_NAME = "ao-claude-code-exec";

export const PERMISSION_MODES = ["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto"] as const;
export const SETTING_SOURCES = ["user", "project", "local"] as const;

/** What `executor_config` can set, with the defaults of docs/protocol.md ("Claude Code executor"). */
export interface ClaudeCodeSettings {
  permissionMode: PermissionMode;
  settingSources: SettingSource[];
  /** Undefined: the SDK's default model. */
  model?: string;
  /** A turn ends, failed, once the SDK estimates it has cost this much (USD). Undefined: no limit. */
  maxBudgetUsd?: number;
  /** A turn ends, failed, after this many model round trips. Undefined: no limit. */
  maxTurns?: number;
}

export const CLAUDE_CODE_DEFAULTS: ClaudeCodeSettings = {
  permissionMode: "bypassPermissions",
  settingSources: ["user", "project", "local"],
};
