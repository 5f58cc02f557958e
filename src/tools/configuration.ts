/**
 * Generation defaults per namespace (image, audio, video), in layers: per-call > runtime
 * (`set_defaults`) > persisted (`set_defaults(persist=true)`, kept in the user's studio) >
 * environment (`COMFY_MCP_DEFAULT_<NS>_<KEY>`) > the workflow's own default > built-in. Values are
 * type-checked per key against the workflows that use them; a model is checked against the live
 * model list of its kind.
 */
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import { failure } from "../mcp/results";
import type { DefaultsLayers } from "../studio/defaults";
import type { Scalar } from "../studio/records";
import { checkValue, type Namespace, type ParamSpec } from "../workflows/definition.ts";
import { MODEL_FOLDER_OF, comboOptionsAnywhere } from "../workflows/combos";
import type { WorkflowCatalogue } from "../workflows/registry";
import { requireScope, type ToolContext } from "./context";
import { BUILT_IN_DEFAULTS, resolveDefaults } from "./defaults";
import { runTool } from "./run";

const NAMESPACES: Namespace[] = ["image", "audio", "video"];
export type DefaultSource = "runtime" | "persisted" | "env" | "built-in";

/** The effective namespace-level defaults and where each value comes from. */
export function effectiveDefaults(env: Env, layers: DefaultsLayers, namespace: Namespace) {
  const resolved = resolveDefaults(env, namespace);
  const values: Record<string, Scalar> = { ...resolved.values };
  const sources: Record<string, DefaultSource> = { ...resolved.sources };
  for (const [layer, source] of [
    [layers.persisted, "persisted"],
    [layers.runtime, "runtime"],
  ] as const) {
    for (const [key, value] of Object.entries(layer[namespace] ?? {})) {
      values[key] = value;
      sources[key] = source;
    }
  }
  return { values, sources, warnings: resolved.invalid };
}

/**
 * The defaults as the namespace's workflows will use them (the order of fillParameters): a
 * built-in value gives way to the workflow's own default, and a built-in key no workflow of the
 * namespace takes is left out (the original's video `duration`: generate_video takes `length`).
 * Values someone set (runtime, persisted, env) are always shown. With no workflow in a namespace,
 * its built-ins are shown as they are.
 */
function asWorkflowsUseThem(
  defaults: ReturnType<typeof effectiveDefaults>,
  catalogue: WorkflowCatalogue,
  namespace: Namespace,
): { values: Record<string, Scalar>; sources: Record<string, string>; warnings: string[] } {
  const params = catalogue.workflows.filter((w) => w.namespace === namespace).flatMap((w) => w.params);
  if (params.length === 0) return defaults;
  const values: Record<string, Scalar> = {};
  const sources: Record<string, string> = {};
  for (const [key, value] of Object.entries(defaults.values)) {
    const source = defaults.sources[key]!;
    const own = params.find((param) => param.name === key && param.default !== undefined);
    if (source !== "built-in") [values[key], sources[key]] = [value, source];
    else if (own) [values[key], sources[key]] = [own.default!, "workflow"];
    else if (params.some((param) => param.name === key)) [values[key], sources[key]] = [value, source];
  }
  for (const param of params)
    if (param.default !== undefined && !(param.name in values) && !param.required)
      [values[param.name], sources[param.name]] = [param.default, "workflow"];
  return { values, sources, warnings: defaults.warnings };
}

const namespaceValues = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
const namespaceUpdate = z
  // Keys are checked against the namespace's workflows (checkDefaults), so any string will do here.
  .record(z.string(), z.union([z.string().max(1000), z.number(), z.boolean(), z.null()]))
  .optional();

// Schemas are built once per isolate: building them for every request was a third of a tools/list.
const getDefaultsInput = z.object({});

const getDefaultsOutput = z.object({
  image: namespaceValues,
  audio: namespaceValues,
  video: namespaceValues,
  sources: z.record(z.string(), z.record(z.string(), z.string())),
  warnings: z.array(z.string()),
});

const setDefaultsInput = z.object({
  image: namespaceUpdate.describe("By key."),
  audio: namespaceUpdate.describe("By key."),
  video: namespaceUpdate.describe("By key."),
  persist: z.boolean().optional().describe("Keep them (true) or only until the studio restarts (default)."),
});

const setDefaultsOutput = z.object({
  success: z.boolean(),
  updated: z.record(z.string(), z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))),
  errors: z.array(z.string()),
  persisted: z.boolean(),
});

export function registerConfigurationTools(server: McpServer, tools: ToolContext, catalogue: WorkflowCatalogue): void {
  server.registerTool(
    "get_defaults",
    {
      title: "Show generation defaults",
      description: "The defaults tools use for an omitted argument, per namespace, with each value's source.",
      inputSchema: getDefaultsInput,
      outputSchema: getDefaultsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    () =>
      runTool(async () => {
        requireScope(tools, "generate");
        const layers = await tools.studio.defaultsLayers();
        const all = Object.fromEntries(
          NAMESPACES.map((ns) => [ns, asWorkflowsUseThem(effectiveDefaults(tools.env, layers, ns), catalogue, ns)]),
        );
        return {
          image: all.image!.values,
          audio: all.audio!.values,
          video: all.video!.values,
          sources: Object.fromEntries(NAMESPACES.map((ns) => [ns, all[ns]!.sources])),
          warnings: NAMESPACES.flatMap((ns) => all[ns]!.warnings),
        };
      }),
  );

  server.registerTool(
    "set_defaults",
    {
      title: "Set generation defaults",
      description:
        'Set defaults for omitted arguments per namespace, e.g. image={"steps": 30}; null removes one. Checked against workflows and models.',
      inputSchema: setDefaultsInput,
      outputSchema: setDefaultsOutput,
      annotations: { destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (args, ctx) =>
      runTool(async () => {
        requireScope(tools, "admin");
        const updated: Record<string, Record<string, Scalar | null>> = {};
        const errors: string[] = [];
        for (const namespace of NAMESPACES) {
          const values = args[namespace];
          if (!values || Object.keys(values).length === 0) continue;
          const problems = await checkDefaults(tools, catalogue, namespace, values, ctx.mcpReq.signal);
          if (problems.length > 0) {
            errors.push(...problems.map((problem) => `${namespace}: ${problem}`));
            continue;
          }
          await tools.studio.setDefaults(namespace, values, args.persist ?? false);
          updated[namespace] = values;
        }
        const result = { success: errors.length === 0, updated, errors, persisted: args.persist ?? false };
        if (errors.length === 0) return result;
        const applied = Object.keys(updated).length
          ? ` Applied: ${Object.keys(updated).join(", ")}.`
          : " Nothing was changed.";
        return failure(`Some defaults were refused: ${errors.join(" ")}${applied}`, result);
      }),
  );
}

/** Every key must be one the namespace's workflows (or built-ins) know, with a value they accept. */
async function checkDefaults(
  tools: ToolContext,
  catalogue: WorkflowCatalogue,
  namespace: Namespace,
  values: Record<string, Scalar | null>,
  signal: AbortSignal,
): Promise<string[]> {
  const builtIn = BUILT_IN_DEFAULTS[namespace];
  const specs = new Map<string, Array<{ param: ParamSpec; classes: string[] }>>();
  for (const workflow of catalogue.workflows.filter((w) => w.namespace === namespace)) {
    for (const param of workflow.params) {
      if (param.type === "image" || param.type === "audio" || param.type === "video" || param.required) continue;
      const classes = param.bindings.map((b) => `${workflow.graph[b.node_id]?.class_type}.${b.input}`);
      specs.set(param.name, [...(specs.get(param.name) ?? []), { param, classes }]);
    }
  }
  const known = [...new Set([...Object.keys(builtIn), ...specs.keys()])].sort();
  const problems: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (!known.includes(key)) {
      problems.push(
        `'${key}' is not ${namespace === "image" ? "an" : "a"} ${namespace} default (known: ${known.join(", ")}).`,
      );
      continue;
    }
    if (value === null) continue;
    const uses = specs.get(key) ?? [];
    const reference = uses[0]?.param ?? {
      type:
        typeof builtIn[key] === "number"
          ? ("float" as const)
          : typeof builtIn[key] === "boolean"
            ? ("bool" as const)
            : ("str" as const),
    };
    const problem =
      checkValue({ ...reference, enum: undefined } as ParamSpec, value) ??
      (uses.length ? checkValue(uses[0]!.param, value) : undefined);
    if (problem) {
      problems.push(`'${key}' ${problem}.`);
      continue;
    }
    // A model (or any combo) default must be installed: check it where the workflows use it.
    for (const target of new Set(uses.flatMap((use) => use.classes))) {
      const [classType, input] = target.split(".") as [string, string];
      const options = await comboOptionsAnywhere(tools.backends.all(), classType, input, signal);
      if (!options || options.includes(String(value))) continue;
      const folder = MODEL_FOLDER_OF[target];
      problems.push(
        folder
          ? `model '${value}' is not installed in ComfyUI's ${folder} (${target}). Installed: ${options.slice(0, 20).join(", ") || "none"}.`
          : `'${value}' is not a valid ${key} (${target}). Valid: ${options.slice(0, 25).join(", ")}.`,
      );
      break;
    }
  }
  return problems;
}
