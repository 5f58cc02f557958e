/**
 * Builds the MCP server for one request: a fresh SDK v2 McpServer whose tools are bound to the
 * caller's studio. Stateless by design (MCP 2026-07-28): all cross-call state lives in the studio
 * behind explicit handles (job_id, asset_id). Tools are registered in the original server's order,
 * with one tool per workflow file in the middle.
 */
import { McpServer } from "@modelcontextprotocol/server";
import { VERSION } from "../config";
import { registerWorkflowAdminTools } from "../tools/add-workflow";
import { registerAssetResources, registerAssetTools } from "../tools/assets";
import { registerBackendTools } from "../tools/backends";
import { registerConfigurationTools } from "../tools/configuration";
import type { ToolContext } from "../tools/context";
import { registerJobTools } from "../tools/jobs";
import { registerModelTools } from "../tools/models";
import { registerPublishTools } from "../tools/publish";
import { registerCatalogueTools, registerWorkflowTools } from "../tools/workflows";
import { registerStudioView } from "../view/resource";
import { loadCatalogue } from "../workflows/registry";
import { withToolConventions } from "./conventions";

/** What an agent reads once per connection: how the tools fit together, and what no schema says. */
function instructions(workflowTools: ToolContext["config"]["workflowTools"]): string {
  const perWorkflow =
    workflowTools === "none"
      ? "Workflows have no tools of their own here: list_workflows shows each with its parameters, and run_workflow(workflow_id, overrides) runs it. "
      : "Each workflow is a tool (generate_image, generate_song, generate_video, image_to_image, …); list_workflows shows them all with their parameters, and run_workflow runs any of them by id. ";
  return (
    "Generates images, audio and video on the user's own ComfyUI. " +
    perWorkflow +
    "A generation waits up to wait_seconds (default 45) while reporting progress; if it returns a running job instead, call get_job(prompt_id, wait_seconds) until it completes. " +
    "regenerate(asset_id) replays a result with changes. list_models shows installed models; get_queue_status shows how busy the GPU is and your usage against your limits " +
    "(a refusal names the limit); cancel_job stops a job. With several GPUs, list_backends shows each one; jobs go to the least busy one with the models, or to 'backend'. " +
    "Arguments a tool does not take are not used: results list them in ignored_arguments."
  );
}

/** Names of the fixed tools: a workflow file cannot take them. */
export const FIXED_TOOLS: ReadonlySet<string> = new Set([
  "list_models",
  "get_defaults",
  "set_defaults",
  "list_workflows",
  "run_workflow",
  "view_image",
  "regenerate",
  "get_queue_status",
  "get_job",
  "list_assets",
  "get_asset_metadata",
  "cancel_job",
  "get_publish_info",
  "publish_asset",
  "list_published",
  "unpublish",
  "list_backends",
  "add_workflow",
  "remove_workflow",
]);

export async function buildMcpServer(tools: ToolContext): Promise<McpServer> {
  const catalogue = await loadCatalogue(tools.env, FIXED_TOOLS);
  const server = withToolConventions(
    new McpServer(
      { name: "comfyui-mcp-edge", title: "ComfyUI (your GPU)", version: VERSION },
      { instructions: instructions(tools.config.workflowTools) },
    ),
  );
  registerModelTools(server, tools);
  registerConfigurationTools(server, tools, catalogue);
  registerCatalogueTools(server, tools, catalogue);
  registerWorkflowTools(server, tools, catalogue);
  registerJobTools(server, tools);
  registerAssetTools(server, tools);
  registerPublishTools(server, tools);
  registerBackendTools(server, tools);
  registerWorkflowAdminTools(server, tools, catalogue);
  registerAssetResources(server, tools);
  registerStudioView(server, tools);
  return server;
}
