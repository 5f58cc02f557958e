/**
 * The single wrapper around every tool body, so no tool hand-writes its own try/catch: expected
 * failures and ComfyUI errors become `isError` results with their recovery hint; anything else
 * becomes a generic error without internals (never a stack trace, never a 500).
 */
import type { CallToolResult } from "@modelcontextprotocol/server";
import { ComfyError } from "../comfy/errors";
import { ToolFailure, failure, success } from "../mcp/results";

export async function runTool(body: () => Promise<Record<string, unknown> | CallToolResult>): Promise<CallToolResult> {
  try {
    const result = await body();
    return isCallToolResult(result) ? result : success(result);
  } catch (error) {
    if (error instanceof ToolFailure) return failure(error.message, error.details);
    if (error instanceof ComfyError) return failure(error.message, { kind: error.kind });
    console.error("tool failed unexpectedly:", error instanceof Error ? error.message : String(error));
    return failure(
      "The gateway hit an unexpected error while running this tool. Retry; if it persists, check the gateway logs.",
    );
  }
}

function isCallToolResult(value: Record<string, unknown> | CallToolResult): value is CallToolResult {
  return Array.isArray((value as CallToolResult).content);
}
