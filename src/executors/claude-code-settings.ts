/**
 * What `executor_config` can set for the Claude Code executor: the accepted values and the
 * defaults. Plain data, no validator: read by the validator (claude-code-options.ts) and by the
 * early start (claude-code-early.ts), which must not wait for the validator to load.
 */
import type { PermissionMode, SettingSource } from "@anthropic-ai/claude-agent-sdk/core";

export const PERMISSION_MODES = ["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto"] as const;
export const SETTING_SOURCES = ["user", "project", "local"] as const;

/** What `executor_config` can set, with the defaults of docs/protocol.md ("Claude Code executor"). */
export interface ClaudeCodeSettings {
  permissionMode: PermissionMode;
  settingSources: SettingSource[];
  /** Undefined: the SDK's default model. */
  model?: string;
}

export const CLAUDE_CODE_DEFAULTS: ClaudeCodeSettings = {
  permissionMode: "bypassPermissions",
  settingSources: ["user", "project", "local"],
};
