/** How `agent-runner exec` shows what the executor reports, one readable line per gateway request. */
import { formatUsd, UsageEvent } from "../protocol/usage.ts";
import { type } from "../shared/arktype.ts";
import { JsonObject } from "../shared/json.ts";
import type { GatewayRecord } from "./local-gateway.ts";

const MAX_TEXT = 300;

function oneLine(text: string, max = MAX_TEXT): string {
  const flat = text.replace(/\s*\n\s*/g, " ⏎ ").trim();
  return flat.length > max ? `${flat.slice(0, max)}… (${text.length} chars)` : flat;
}

function compactJson(value: unknown, max = 160): string {
  const text = JSON.stringify(value) ?? "null";
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((block) => (block?.type === "text" ? String(block.text) : `[${block?.type}]`)).join("");
}

function sizeOf(output: unknown): string {
  const text = typeof output === "string" ? output : (JSON.stringify(output) ?? "");
  return `${text.length} chars`;
}

/** `<label> <text>`: what the request means for the session. */
export function describeRecord(record: GatewayRecord): { label: string; text: string } {
  const body = JsonObject.allows(record.body) ? record.body : {};
  const failed = record.status >= 400 ? ` → ${record.status} ${record.detail ?? ""}`.trimEnd() : "";
  switch (record.kind) {
    case "bind":
      return {
        label: "bind",
        text: `executor session ${body.executor_session_id ?? "(none)"}${body.project_dir ? ` in ${body.project_dir}` : ""}${failed}`,
      };
    case "metadata": {
      const fields = Object.entries(body)
        .filter(([key]) => key !== "session_id")
        .map(([key, value]) => `${key}=${value}`);
      return { label: "metadata", text: `${fields.join(" ")}${failed}` };
    }
    case "event":
      switch (body.event_type) {
        case "message":
          return { label: String(body.role ?? "message"), text: oneLine(textOf(body.content)) + failed };
        case "post_tool": {
          const outcome = body.error ? `error: ${oneLine(String(body.error), 160)}` : `ok, ${sizeOf(body.tool_output)}`;
          return { label: "tool", text: `${body.tool_name} ${compactJson(body.tool_input)} → ${outcome}${failed}` };
        }
        case "session_start":
          return { label: "session_start", text: `resumed${failed}` };
        case "session_stop":
          return { label: "session_stop", text: `exit ${body.exit_code} (${body.reason})${failed}` };
        case "usage": {
          const event = UsageEvent(body);
          if (event instanceof type.errors) return { label: "usage", text: compactJson(body) + failed };
          const { usage } = event;
          const tokens =
            usage.input_tokens +
            usage.output_tokens +
            usage.cache_read_input_tokens +
            usage.cache_creation_input_tokens;
          return {
            label: "usage",
            text: `${usage.num_turns} turn${usage.num_turns === 1 ? "" : "s"}, ${tokens.toLocaleString("en-US")} tokens; the session so far ${formatUsd(usage.total_cost_usd)}${failed}`,
          };
        }
        case "result": {
          // The turn's result (invocation 2.2): its text, or the structured output an output schema asked for.
          const data = JsonObject.allows(body.result_data) ? body.result_data : undefined;
          const text = data ? compactJson(data, MAX_TEXT) : oneLine(String(body.result_text ?? ""));
          return { label: "result", text: text + failed };
        }
        default:
          return { label: String(body.event_type ?? "event"), text: compactJson(body) + failed };
      }
    default:
      return {
        label: "request",
        text: `${record.method} ${record.path} → ${record.status}${record.detail ? ` ${record.detail}` : ""}`,
      };
  }
}

/** `12:34:56  assistant      Hello` */
export function formatRecordLine(record: GatewayRecord): string {
  const { label, text } = describeRecord(record);
  const time = record.at.slice(11, 19);
  return `${time}  ${label.padEnd(13)}  ${text}`.trimEnd();
}
