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

/** What `executor_config` holds under the keys this executor reads, once checked (null = default). */
export interface ClaudeCodeConfig {
  permission_mode?: PermissionMode | null;
  setting_sources?: SettingSource[] | null;
  model?: string | null;
  max_budget_usd?: number | null;
  max_turns?: number | null;
}

/** The settings a checked `executor_config` asks for: its values over the defaults. */
export function settingsOf(config: ClaudeCodeConfig): ClaudeCodeSettings {
  const settings: ClaudeCodeSettings = {
    ...CLAUDE_CODE_DEFAULTS,
    settingSources: [...CLAUDE_CODE_DEFAULTS.settingSources],
  };
  if (config.permission_mode) settings.permissionMode = config.permission_mode;
  if (config.setting_sources) settings.settingSources = [...new Set(config.setting_sources)];
  if (config.model) settings.model = config.model;
  if (typeof config.max_budget_usd === "number") settings.maxBudgetUsd = config.max_budget_usd;
  if (typeof config.max_turns === "number") settings.maxTurns = config.max_turns;
  return settings;
}
