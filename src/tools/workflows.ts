/**
 * Every workflow is a tool: one MCP tool per workflow file (bundled or in R2), plus
 * list_workflows (the catalogue), run_workflow (any workflow by id, with overrides) and
 * regenerate (replay an asset's workflow with typed overrides through its PARAM_* bindings).
 */
import type { McpServer, ServerContext } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { ComfyGraph } from "../comfy/types";
import { failure, ToolFailure } from "../mcp/results";
import type { AssetView, JobView, Scalar } from "../studio/records";
import type { ParamSpec } from "../workflows/definition.ts";
import { randomSeed } from "../workflows/params.ts";
import type { RegisteredWorkflow, WorkflowCatalogue } from "../workflows/registry";
import { describeParam, paramField } from "../workflows/schema";
import { requireScope, type ToolContext } from "./context";
import { runTool } from "./run";
import { runWorkflow } from "./run-workflow";
import { backendArg, jobHandleSchema, resubmitArg, waitSecondsArg } from "./schemas";
import { VIEW_META } from "../view/resource";

// readOnlyHint and idempotentHint are false unless said (the spec's defaults), so they are left out:
// bytes in every agent's context.
const WRITE = { destructiveHint: false, openWorldHint: false } as const;

/** Input nodes whose seeds regenerate may change when a workflow has no seed parameter. */
const SEED_INPUTS = ["seed", "noise_seed"];

/** Built once per workflow definition (its parameters array), not once per request. */
const inputSchemas = new WeakMap<readonly ParamSpec[], z.ZodObject>();

export function workflowInputSchema(workflow: RegisteredWorkflow): z.ZodObject {
  let schema = inputSchemas.get(workflow.params);
  if (!schema) {
    const shape: Record<string, z.ZodType> = {};
    for (const param of workflow.params) shape[param.name] = paramField(param);
    shape.wait_seconds = waitSecondsArg;
    shape.backend = backendArg;
    shape.resubmit_if_backend_lost = resubmitArg;
    schema = z.object(shape);
    inputSchemas.set(workflow.params, schema);
  }
  return schema;
}

// Schemas are built once per isolate: building them for every request was a third of a tools/list.
const listWorkflowsInput = z.object({});

const listWorkflowsOutput = z.object({
  workflows: z
    .array(z.object({ id: z.string(), tool: z.string().nullable(), output: z.string() }))
    .describe("Each also has title, description, namespace, source, added and inputs."),
  count: z.number().int(),
  rejected: z.array(z.object({ file: z.string(), problem: z.string() })),
});

const runWorkflowInput = z.object({
  workflow_id: z.string().min(1).max(200).describe("Id or tool name (list_workflows)."),
  overrides: z.record(z.string(), z.unknown()).optional().describe('By parameter name, e.g. {"prompt": "a fox"}.'),
  options: z.record(z.string(), z.unknown()).optional().describe("Ignored (the original's callers send it)."),
  wait_seconds: waitSecondsArg,
  backend: backendArg,
  resubmit_if_backend_lost: resubmitArg,
});

const regenerateInput = z.object({
  asset_id: z.string().min(1).max(200).describe("An asset_id to replay."),
  seed: z
    .number()
    .int()
    .min(-1)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .describe("Omit for a new random seed; -1 keeps the original."),
  param_overrides: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('By name, e.g. {"steps": 30}; checked like the tool\'s own.'),
  wait_seconds: waitSecondsArg,
  backend: backendArg.describe("Backend (list_backends); default: where the asset was made."),
  resubmit_if_backend_lost: resubmitArg,
});

/** One tool per workflow, named after its file (unless COMFY_MCP_WORKFLOW_TOOLS leaves it to run_workflow). */
export function registerWorkflowTools(server: McpServer, tools: ToolContext, catalogue: WorkflowCatalogue): void {
  for (const workflow of catalogue.workflows.filter((w) => hasOwnTool(w, tools.config.workflowTools))) {
    server.registerTool(
      workflow.tool,
      {
        title: workflow.title,
        description: workflow.description,
        inputSchema: workflowInputSchema(workflow),
        outputSchema: jobHandleSchema,
        annotations: WRITE,
        _meta: VIEW_META,
      },
      (args: Record<string, unknown>, ctx) =>
        runTool(() => {
          const { wait_seconds, backend, resubmit_if_backend_lost, ...values } = args;
          const placement = {
            backend: backend as string | undefined,
            resubmit: resubmit_if_backend_lost as boolean | undefined,
          };
          return runWorkflow(
            tools,
            { workflow, tool: workflow.tool, values, waitSeconds: wait_seconds as number | undefined, ...placement },
            ctx,
          );
        }),
    );
  }
}

export function hasOwnTool(workflow: RegisteredWorkflow, choice: ToolContext["config"]["workflowTools"]): boolean {
  if (choice === "all") return true;
  if (choice === "none") return false;
  return choice.has(workflow.id) || choice.has(workflow.tool);
}

export function registerCatalogueTools(server: McpServer, tools: ToolContext, catalogue: WorkflowCatalogue): void {
  server.registerTool(
    "list_workflows",
    {
      title: "List workflows",
      description:
        "Every workflow (bundled or added): its tool (null: use run_workflow), output and parameters; rejected files and why.",
      inputSchema: listWorkflowsInput,
      outputSchema: listWorkflowsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    () =>
      runTool(async () => {
        requireScope(tools, "generate");
        return {
          workflows: catalogue.workflows.map((workflow) => ({
            id: workflow.id,
            tool: hasOwnTool(workflow, tools.config.workflowTools) ? workflow.tool : null,
            title: workflow.title,
            description: workflow.description,
            output: workflow.output,
            namespace: workflow.namespace,
            source: workflow.source,
            ...(workflow.added && { added: workflow.added }),
            inputs: workflow.params.map(describeInput),
          })),
          count: catalogue.workflows.length,
          rejected: catalogue.rejected,
        };
      }),
  );

  server.registerTool(
    "run_workflow",
    {
      title: "Run a workflow by id",
      description:
        "Run any workflow from list_workflows with overrides by parameter name, checked like its own tool's arguments.",
      inputSchema: runWorkflowInput,
      outputSchema: jobHandleSchema,
      annotations: WRITE,
      _meta: VIEW_META,
    },
    ({ workflow_id, overrides, options, wait_seconds, backend, resubmit_if_backend_lost }, ctx) =>
      runTool(async () => {
        requireScope(tools, "generate");
        const workflow = findWorkflow(catalogue, workflow_id);
        const { values, ignored } = checkOverrides(workflow, overrides ?? {});
        if (options && Object.keys(options).length > 0) ignored.options = "run_workflow has no options yet; ignored";
        const extra = Object.keys(ignored).length ? { ignored_overrides: ignored } : {};
        return runWorkflow(
          tools,
          {
            workflow,
            tool: "run_workflow",
            values,
            waitSeconds: wait_seconds,
            extra,
            backend,
            resubmit: resubmit_if_backend_lost,
          },
          ctx,
        );
      }),
  );

  server.registerTool(
    "regenerate",
    {
      title: "Regenerate an asset with changes",
      description:
        "Run an asset's workflow again with the same parameters except those you override (by the workflow's parameter names).",
      inputSchema: regenerateInput,
      outputSchema: jobHandleSchema,
      annotations: WRITE,
      _meta: VIEW_META,
    },
    (args, ctx) => runTool(() => regenerate(tools, catalogue, args, ctx)),
  );
}

function describeInput(param: ParamSpec) {
  return {
    name: param.name,
    type: param.type,
    required: param.required,
    description: describeParam(param),
    ...(param.default !== undefined && { default: param.default }),
    ...(param.enum && { enum: param.enum }),
    ...(param.min !== undefined && { min: param.min }),
    ...(param.max !== undefined && { max: param.max }),
    ...(param.step !== undefined && { step: param.step }),
  };
}

function findWorkflow(catalogue: WorkflowCatalogue, id: string): RegisteredWorkflow {
  const wanted = id.trim().replace(/\.json$/, "");
  const workflow =
    catalogue.workflows.find((w) => w.id === wanted) ?? catalogue.workflows.find((w) => w.tool === wanted);
  if (workflow) return workflow;
  const rejected = catalogue.rejected.find((r) => r.file.endsWith(`/${wanted}.json`));
  if (rejected) throw new ToolFailure(`Workflow '${wanted}' exists but was rejected: ${rejected.problem}.`);
  throw new ToolFailure(
    `Workflow '${wanted}' not found. Available: ${catalogue.workflows.map((w) => w.id).join(", ") || "none"}. Call list_workflows for details.`,
  );
}

/** Typed like the workflow's own tool; names it has no parameter for are reported, not sent. */
function checkOverrides(
  workflow: RegisteredWorkflow,
  overrides: Record<string, unknown>,
): { values: Record<string, unknown>; ignored: Record<string, string> } {
  const ignored: Record<string, string> = {};
  const known: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(overrides)) {
    if (workflow.params.some((param) => param.name === name)) known[name] = value;
    else
      ignored[name] =
        `workflow '${workflow.id}' has no parameter '${name}' (it has: ${workflow.params.map((p) => p.name).join(", ") || "none"})`;
  }
  const shape = Object.fromEntries(
    workflow.params
      .filter((param) => param.name in known)
      .map((param) => [param.name, paramField({ ...param, required: false })]),
  );
  const parsed = z.object(shape).safeParse(known);
  if (!parsed.success) {
    throw new ToolFailure(
      `Invalid override(s) for workflow '${workflow.id}': ${parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}.`,
    );
  }
  return { values: parsed.data, ignored };
}

async function regenerate(
  tools: ToolContext,
  catalogue: WorkflowCatalogue,
  args: {
    asset_id: string;
    seed?: number;
    param_overrides?: Record<string, unknown>;
    wait_seconds?: number;
    backend?: string;
    resubmit_if_backend_lost?: boolean;
  },
  ctx: ServerContext,
) {
  requireScope(tools, "generate");
  const asset: AssetView | undefined = await tools.studio.getAsset(args.asset_id.trim());
  if (!asset)
    return failure(
      `No asset '${args.asset_id}' in your studio. Pass an asset_id from a previous result (list them through the comfy://assets resources).`,
    );
  const job: JobView | undefined = await tools.studio.getJob(asset.job_id);
  if (!job) return failure(`The job that produced asset '${args.asset_id}' is gone; generate a new asset instead.`);
  const workflow = catalogue.workflows.find((w) => w.id === job.workflow_id);
  if (!workflow)
    throw new ToolFailure(
      `Workflow '${job.workflow_id}' that produced this asset no longer exists, so it cannot be replayed with changes. Available: ${catalogue.workflows.map((w) => w.id).join(", ")}.`,
    );

  const { values, ignored } = checkOverrides(workflow, args.param_overrides ?? {});
  const unknown = Object.keys(ignored);
  if (unknown.length > 0)
    throw new ToolFailure(`Cannot override ${unknown.join(", ")}: ${Object.values(ignored).join("; ")}.`);
  if ("seed" in values && args.seed !== undefined)
    throw new ToolFailure("Give the seed either as 'seed' or inside 'param_overrides', not both.");

  const replayed: Record<string, Scalar> = { ...job.params };
  const seedParams = workflow.params.filter((param) => /seed$/.test(param.name) && param.type === "int");
  for (const param of seedParams) {
    if (args.seed === undefined)
      delete replayed[param.name]; // a fresh random seed
    else if (args.seed >= 0) values[param.name] ??= args.seed; // -1 keeps the replayed one
  }
  return runWorkflow(
    tools,
    {
      workflow: seedParams.length > 0 ? workflow : withLiteralSeeds(workflow, args.seed),
      tool: "regenerate",
      values,
      replayed,
      waitSeconds: args.wait_seconds,
      extra: { regenerated_from: asset.asset_id },
      backend: args.backend,
      preferBackend: job.backend,
      resubmit: args.resubmit_if_backend_lost,
    },
    ctx,
  );
}

/**
 * A workflow without a seed parameter still has seeds in its samplers (KSampler.seed,
 * KSamplerAdvanced/RandomNoise/SamplerCustom.noise_seed): set them in a copy of the template.
 */
function withLiteralSeeds(workflow: RegisteredWorkflow, seed: number | undefined): RegisteredWorkflow {
  if (seed === -1) return workflow;
  const graph: ComfyGraph = structuredClone(workflow.graph);
  for (const node of Object.values(graph)) {
    for (const input of SEED_INPUTS) {
      if (typeof node.inputs[input] === "number") node.inputs[input] = seed ?? randomSeed();
    }
  }
  return { ...workflow, graph };
}
