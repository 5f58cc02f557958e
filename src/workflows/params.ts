/**
 * The `PARAM_*` placeholder grammar of the original server (original-server.md §4.2): a string
 * input value `PARAM_[TYPE_]NAME` becomes a typed parameter bound to every input that carries it.
 * Rendering writes coerced values through those bindings and refuses to leave any placeholder in
 * the graph (the original sent them to ComfyUI literally).
 */
import type { ComfyGraph } from "../comfy/types";

/** `image`, `audio` and `video` are our extension: an input file the gateway uploads to ComfyUI. */
export type ParamType = "str" | "int" | "float" | "bool" | "image" | "audio" | "video";

export interface ParamBinding {
  node_id: string;
  input: string;
}

export interface WorkflowParam {
  name: string;
  type: ParamType;
  placeholder: string;
  bindings: ParamBinding[];
}

const TYPE_PREFIXES: Record<string, ParamType> = {
  str: "str",
  string: "str",
  text: "str",
  int: "int",
  float: "float",
  bool: "bool",
  image: "image",
  audio: "audio",
  video: "video",
};

export function normaliseName(raw: string): string {
  const name = raw
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "_")
    .replace(/^_+|_+$/g, "");
  return name || "param";
}

export function parsePlaceholder(value: string): { name: string; type: ParamType } | undefined {
  if (!value.startsWith("PARAM_")) return undefined;
  const token = value.slice("PARAM_".length);
  const underscore = token.indexOf("_");
  const prefix = underscore > 0 ? TYPE_PREFIXES[token.slice(0, underscore).toLowerCase()] : undefined;
  if (prefix) return { name: normaliseName(token.slice(underscore + 1)), type: prefix };
  return { name: normaliseName(token), type: "str" };
}

/** Parameters in discovery order (node order, then input order); first occurrence fixes the type. */
export function discoverParams(graph: ComfyGraph): WorkflowParam[] {
  const byName = new Map<string, WorkflowParam>();
  for (const [nodeId, node] of Object.entries(graph)) {
    for (const [input, value] of Object.entries(node.inputs ?? {})) {
      if (typeof value !== "string") continue;
      const parsed = parsePlaceholder(value);
      if (!parsed) continue;
      const existing = byName.get(parsed.name);
      if (existing) existing.bindings.push({ node_id: nodeId, input });
      else byName.set(parsed.name, { ...parsed, placeholder: value, bindings: [{ node_id: nodeId, input }] });
    }
  }
  return [...byName.values()];
}

export class RenderError extends Error {
  override readonly name = "RenderError";
}

/** Returns a new graph with every parameter written; throws if any placeholder would remain. */
export function renderGraph(
  template: ComfyGraph,
  params: WorkflowParam[],
  values: Record<string, unknown>,
): ComfyGraph {
  const graph = structuredClone(template);
  const missing: string[] = [];
  for (const param of params) {
    const value = values[param.name];
    if (value === undefined || value === null) {
      missing.push(param.name);
      continue;
    }
    const coerced = coerce(param, value);
    for (const binding of param.bindings) {
      const node = graph[binding.node_id];
      if (node) node.inputs[binding.input] = coerced;
    }
  }
  if (missing.length > 0) throw new RenderError(`Missing value for required parameter(s): ${missing.join(", ")}.`);
  return graph;
}

export function coerce(param: Pick<WorkflowParam, "name" | "type">, value: unknown): string | number | boolean {
  switch (param.type) {
    case "str":
    case "image":
    case "audio":
    case "video":
      return String(value);
    case "int": {
      const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof number !== "number" || !Number.isInteger(number))
        throw new RenderError(`'${param.name}' must be an integer, got ${JSON.stringify(value)}.`);
      return number;
    }
    case "float": {
      const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof number !== "number" || !Number.isFinite(number))
        throw new RenderError(`'${param.name}' must be a number, got ${JSON.stringify(value)}.`);
      return number;
    }
    case "bool":
      if (typeof value === "boolean") return value;
      if (typeof value === "string" && /^(1|true|yes|y|0|false|no|n)$/i.test(value.trim()))
        return /^(1|true|yes|y)$/i.test(value.trim());
      throw new RenderError(`'${param.name}' must be true or false, got ${JSON.stringify(value)}.`);
  }
}

/** A fresh seed in ComfyUI's range that stays exact in JSON and JavaScript (<= 2^53 - 1). */
export function randomSeed(): number {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return (words[0]! & 0x1fffff) * 0x100000000 + words[1]!;
}
