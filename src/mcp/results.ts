/**
 * Every tool answers through these helpers: structured content plus the same JSON as text for
 * clients that ignore `structuredContent`, or an `isError` result whose text says how to recover.
 * Never base64 in structured content (Claude Code dumps it as text).
 */
import type { CallToolResult, ContentBlock } from "@modelcontextprotocol/server";

export function success<T extends Record<string, unknown>>(data: T, extra: ContentBlock[] = []): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(data, null, 2) }, ...extra], structuredContent: data };
}

export function failure(message: string, details?: Record<string, unknown>): CallToolResult {
  const text =
    details && Object.keys(details).length > 0 ? `${message}\n\n${JSON.stringify(details, null, 2)}` : message;
  return { content: [{ type: "text", text }], isError: true };
}

/** Tools throw this for expected failures; the wrapper turns it into `failure(...)`. */
export class ToolFailure extends Error {
  override readonly name = "ToolFailure";
  constructor(
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}
