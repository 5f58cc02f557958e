/**
 * Builds the MCP server for one request: a fresh SDK v2 McpServer whose tools are bound to the
 * caller's studio. Stateless by design (MCP 2026-07-28): all cross-call state lives in the studio
 * behind explicit handles (job_id, asset_id).
 */
import { McpServer } from "@modelcontextprotocol/server";
import { VERSION } from "../config";
import { registerAssetResources } from "../tools/assets";
import { registerConfigurationTools } from "../tools/configuration";
import type { ToolContext } from "../tools/context";
import { registerGenerationTools } from "../tools/generation";
import { registerJobTools } from "../tools/jobs";
import { registerModelTools } from "../tools/models";

const INSTRUCTIONS =
  "Generates images on the user's own ComfyUI. Call generate_image with a prompt; it waits for the result while reporting progress. " +
  "If it returns a running job instead, call get_job(prompt_id) (optionally with wait_seconds) until it completes. " +
  "list_models shows installed checkpoints; get_queue_status shows how busy the GPU is; cancel_job stops a job.";

export function buildMcpServer(tools: ToolContext): McpServer {
  const server = new McpServer({ name: "comfyui-mcp-edge", title: "ComfyUI (your GPU)", version: VERSION }, { instructions: INSTRUCTIONS });
  registerModelTools(server, tools);
  registerConfigurationTools(server, tools);
  registerGenerationTools(server, tools);
  registerJobTools(server, tools);
  registerAssetResources(server, tools);
  return server;
}
