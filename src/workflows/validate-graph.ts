/**
 * Checks an API-format graph against one backend's /object_info before anything is submitted,
 * by the rules of ComfyUI's own validate_prompt / validate_inputs (execution.py, 0.3.64): every
 * class exists, every required input of a node that an output needs is present, every link points
 * at an existing output of a compatible type, numbers are numbers within min/max, and combo
 * values are among the options. Model files and input media a backend lacks are reported apart,
 * because they are not fatal: a model can be installed, and media become parameters.
 */
import type { ComfyGraph } from "../comfy/types";
import { inputsOf, type NamedInput, type ObjectInfo, typesCompatible, UPLOAD_OPTIONS } from "./ui-format.ts";

export type ProblemKind =
  | "unknown_class"
  | "no_outputs"
  | "missing_input"
  | "bad_link"
  | "type_mismatch"
  | "bad_value"
  | "value_not_in_list";

export interface GraphProblem {
  kind: ProblemKind;
  node_id?: string;
  class_type?: string;
  input?: string;
  message: string;
}

/** A combo value naming a file the backend does not have (a model, or an input picture/sound). */
export interface MissingFile {
  node_id: string;
  class_type: string;
  input: string;
  value: string;
}

export interface GraphValidation {
  /** True when nothing fatal was found; missing models and input files are not fatal. */
  ok: boolean;
  problems: GraphProblem[];
  missingModels: MissingFile[];
  missingInputFiles: MissingFile[];
}

/** Extensions of model weights: a combo value with one of these names a model file. */
const MODEL_FILE = /\.(safetensors|sft|ckpt|pt|pth|bin|gguf|onnx|pkl)$/i;

export function validateAgainst(graph: ComfyGraph, objectInfo: ObjectInfo): GraphValidation {
  const result: GraphValidation = { ok: true, problems: [], missingModels: [], missingInputFiles: [] };
  const outputs: string[] = [];
  for (const [id, node] of Object.entries(graph)) {
    const schema = objectInfo[node.class_type];
    if (!schema)
      result.problems.push({
        kind: "unknown_class",
        node_id: id,
        class_type: node.class_type,
        message: `node ${id}: class '${node.class_type}' does not exist on this backend`,
      });
    else if (schema.output_node === true) outputs.push(id);
  }
  if (result.problems.length === 0 && outputs.length === 0)
    result.problems.push({ kind: "no_outputs", message: "the graph has no output node (save, preview…)" });

  // As ComfyUI: only what an output needs is validated, each node once.
  const seen = new Set<string>();
  const pending = [...outputs];
  while (pending.length > 0) {
    const id = pending.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const upstream of validateNode(graph, id, objectInfo, result)) pending.push(upstream);
  }
  result.ok = result.problems.length === 0;
  return result;
}

/** Validates one node's inputs; returns the ids of the nodes it links to. */
function validateNode(graph: ComfyGraph, id: string, objectInfo: ObjectInfo, result: GraphValidation): string[] {
  const node = graph[id]!;
  const schema = objectInfo[node.class_type];
  if (!schema) return [];
  const upstream: string[] = [];
  const problem = (kind: ProblemKind, input: string, message: string) =>
    result.problems.push({
      kind,
      node_id: id,
      class_type: node.class_type,
      input,
      message: `node ${id} (${node.class_type}) ${input}: ${message}`,
    });

  for (const input of inputsOf(schema)) {
    if (!(input.name in node.inputs)) {
      if (input.required) problem("missing_input", input.name, "required input is missing");
      continue;
    }
    const value = node.inputs[input.name];
    if (Array.isArray(value)) {
      const linkProblem = checkLink(graph, objectInfo, value, input);
      if (linkProblem) problem(linkProblem.kind, input.name, linkProblem.message);
      else upstream.push(String(value[0]));
      continue;
    }
    // A PARAM_ placeholder is a value the caller supplies at run time; it is checked then.
    if (typeof value === "string" && value.startsWith("PARAM_")) continue;
    const valueProblem = checkLiteral(input, unbox(value));
    if (!valueProblem) continue;
    if (valueProblem === "not_in_list") {
      const missing = { node_id: id, class_type: node.class_type, input: input.name, value: String(unbox(value)) };
      if (isMediaInput(input)) result.missingInputFiles.push(missing);
      else if (MODEL_FILE.test(missing.value)) result.missingModels.push(missing);
      else
        problem(
          "value_not_in_list",
          input.name,
          `'${missing.value}' is not one of ${listOf(comboOptions(input) ?? [])}`,
        );
    } else problem("bad_value", input.name, valueProblem);
  }
  return upstream;
}

function checkLink(
  graph: ComfyGraph,
  objectInfo: ObjectInfo,
  link: unknown[],
  input: NamedInput,
): { kind: ProblemKind; message: string } | undefined {
  const [from, slot] = link;
  if (link.length !== 2 || typeof slot !== "number" || !Number.isInteger(slot))
    return { kind: "bad_link", message: `a link must be [node_id, output_index], got ${JSON.stringify(link)}` };
  const source = graph[String(from)];
  if (!source) return { kind: "bad_link", message: `links to node ${String(from)}, which is not in the graph` };
  const outputs = objectInfo[source.class_type]?.output;
  if (!outputs)
    return { kind: "bad_link", message: `links to node ${String(from)} of unknown class ${source.class_type}` };
  const received = outputs[slot];
  if (received === undefined)
    return {
      kind: "bad_link",
      message: `links to output ${slot} of node ${String(from)} (${source.class_type}), which has ${outputs.length}`,
    };
  const expected = Array.isArray(input.type) ? "COMBO" : input.type;
  // ComfyUI compares the type names; a combo output (a list of options) feeds a combo input.
  const receivedName = Array.isArray(received) ? "COMBO" : received;
  if (!typesCompatible(receivedName, expected))
    return {
      kind: "type_mismatch",
      message: `gets ${String(receivedName)} from node ${String(from)} (${source.class_type}) but needs ${String(expected)}`,
    };
  return undefined;
}

/** A phrase saying what is wrong with a literal, "not_in_list" for a combo miss, or undefined. */
function checkLiteral(input: NamedInput, value: unknown): string | undefined {
  if (input.type === "INT" || input.type === "FLOAT") {
    const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    if (typeof number !== "number" || Number.isNaN(number))
      return `must be a number (${input.type}), got ${JSON.stringify(value)}`;
    const { min, max } = input.options;
    if (typeof min === "number" && number < min) return `${number} is smaller than the minimum ${min}`;
    if (typeof max === "number" && number > max) return `${number} is bigger than the maximum ${max}`;
    return undefined;
  }
  if (input.type === "BOOLEAN" || input.type === "STRING")
    return value === null || value === undefined ? `has no value (${input.type})` : undefined;
  const options = comboOptions(input);
  if (!options) return undefined;
  // Python's ==: 1 == 1.0, but "1" != 1.
  return options.some((option) => option === value) ? undefined : "not_in_list";
}

/** A combo's options in both forms (V1 list, V3 "COMBO" + options); undefined when not a combo. */
export function comboOptions(input: Pick<NamedInput, "type" | "options">): unknown[] | undefined {
  if (Array.isArray(input.type)) return input.type;
  if (input.type === "COMBO") return Array.isArray(input.options.options) ? input.options.options : [];
  return undefined;
}

/** A combo of uploaded files (LoadImage, LoadAudio, LoadVideo…): its value is a media parameter. */
export function isMediaInput(input: Pick<NamedInput, "options">): boolean {
  return UPLOAD_OPTIONS.some((option) => input.options[option] === true);
}

function unbox(value: unknown): unknown {
  return typeof value === "object" && value !== null && "__value__" in value
    ? (value as { __value__: unknown }).__value__
    : value;
}

function listOf(options: unknown[]): string {
  const shown = options.slice(0, 20).map((option) => JSON.stringify(option));
  return options.length > 20 ? `${shown.join(", ")} … (${options.length} in all)` : shown.join(", ") || "(no options)";
}

/** One answer for several backends: what each one lacks, so the caller can say where it runs. */
export function validateOnBackends(
  graph: ComfyGraph,
  backends: { name: string; objectInfo: ObjectInfo }[],
): { backend: string; validation: GraphValidation }[] {
  return backends.map((backend) => ({ backend: backend.name, validation: validateAgainst(graph, backend.objectInfo) }));
}
