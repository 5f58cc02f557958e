/**
 * Turns one workflow file (ComfyUI API-format JSON) and its optional `<id>.meta.json` sidecar into
 * a workflow definition: typed parameters with descriptions and constraints, a namespace for
 * defaults and the kind of media it outputs. Used at build time (scripts/build-workflows.mjs, under
 * Node) and at run time (workflows stored in R2), so it imports nothing but types: a bad file is
 * a `problem` string naming what is wrong, never an exception that takes the server down.
 */
import type { ComfyGraph } from "../comfy/types";
import { discoverParams, type ParamType, type WorkflowParam } from "./params.ts";

export type Scalar = string | number | boolean;
export type Namespace = "image" | "audio" | "video";
export type OutputKind = "image" | "audio" | "video" | "mixed" | "unknown";

export interface ParamSpec extends WorkflowParam {
  required: boolean;
  description: string;
  default?: Scalar;
  enum?: Scalar[];
  min?: number;
  max?: number;
  /** Values must be a multiple of this (integers) or a whole number of steps from `min`. */
  step?: number;
}

export interface WorkflowDefinition {
  /** The file stem: `workflows/<id>.json` or `workflows/<id>.json` in the R2 bucket. */
  id: string;
  title: string;
  description: string;
  namespace: Namespace;
  output: OutputKind;
  graph: ComfyGraph;
  params: ParamSpec[];
  source: "bundled" | "r2";
  /** Backend tags this workflow prefers (sidecar `backend_tags`, e.g. ["video"]). */
  backendTags: string[];
  /** Who stored it with add_workflow, when, and from where ("inline" or the URL). */
  added?: Provenance;
}

export interface Provenance {
  by: string;
  at: string;
  from: string;
}

export interface WorkflowFile {
  id: string;
  graph: unknown;
  meta?: unknown;
  source: "bundled" | "r2";
}

export type ParseResult = { ok: true; workflow: WorkflowDefinition } | { ok: false; problem: string };

/** Optional by name in the original server (original-server.md §4.2); a sidecar default also makes a parameter optional. */
const OPTIONAL_BY_NAME = new Set([
  "seed",
  "width",
  "height",
  "model",
  "steps",
  "cfg",
  "sampler_name",
  "scheduler",
  "denoise",
  "negative_prompt",
  "seconds",
  "lyrics_strength",
  "duration",
  "fps",
]);

const DESCRIPTIONS: Record<string, string> = {
  prompt: "Main text prompt used inside the workflow.",
  negative_prompt: "What to avoid (negative prompt).",
  seed: "Sampler seed (0 to 2^53-1). Omit for a fresh random seed; reuse a result's seed to reproduce it.",
  width: "Width in pixels.",
  height: "Height in pixels.",
  model: "Model file name as listed by list_models.",
  steps: "Number of sampling steps: more is slower and usually finer.",
  cfg: "Classifier-free guidance: how strictly to follow the prompt.",
  sampler_name: "ComfyUI sampler, e.g. euler, dpmpp_2m, ddim.",
  scheduler: "ComfyUI scheduler, e.g. normal, karras, simple.",
  denoise: "Denoising strength, 0-1.",
  tags: "Comma-separated descriptive tags for the audio model.",
  lyrics: "Full lyric text that drives the audio generation.",
  seconds: "Audio duration in seconds.",
  lyrics_strength: "How strongly the lyrics influence the audio.",
  duration: "Video duration in seconds.",
  fps: "Frames per second of the output video.",
};

const SIDECAR_KEYS = new Set([
  "name",
  "title",
  "description",
  "namespace",
  "parameters",
  "constraints",
  "defaults",
  "updated_at",
  "hash",
  "version",
  "backend_tags",
  "added",
]);
const PARAMETER_KEYS = new Set(["description", "required", "default", "enum", "min", "max", "step"]);
const OUTPUT_CLASSES: Record<string, Exclude<OutputKind, "mixed" | "unknown">> = {
  SaveImage: "image",
  PreviewImage: "image",
  SaveAnimatedWEBP: "image",
  SaveAnimatedPNG: "image",
  MaskPreview: "image",
  SaveImageWebsocket: "image",
  SaveVideo: "video",
  SaveWEBM: "video",
  VHS_VideoCombine: "video",
  SaveAudio: "audio",
  SaveAudioMP3: "audio",
  SaveAudioOpus: "audio",
  SaveAudioAdvanced: "audio",
  PreviewAudio: "audio",
};

/** Arguments every workflow tool takes besides its parameters. */
const RESERVED_ARGUMENTS = new Set(["wait_seconds", "backend", "resubmit_if_backend_lost"]);

export function parseWorkflow(file: WorkflowFile): ParseResult {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(file.id))
    return fail(`the name '${file.id}' must be letters, digits, '_', '-' or '.' (at most 100)`);
  const graphProblem = checkGraph(file.graph);
  if (graphProblem) return fail(graphProblem);
  const graph = file.graph as ComfyGraph;
  const discovered = discoverParams(graph);
  const taken = discovered.find((param) => RESERVED_ARGUMENTS.has(param.name));
  if (taken)
    return fail(
      `the parameter '${taken.name}' would hide the tool argument of that name (${[...RESERVED_ARGUMENTS].join(", ")} are reserved); rename its PARAM_ placeholder`,
    );
  const sidecar = readSidecar(file.meta, discovered);
  if (typeof sidecar === "string") return fail(`${file.id}.meta.json: ${sidecar}`);

  const output = outputKind(graph);
  const params: ParamSpec[] = [];
  for (const param of discovered) {
    const rules = sidecar.parameters[param.name] ?? {};
    const spec: ParamSpec = {
      ...param,
      required: rules.required ?? (rules.default === undefined && !OPTIONAL_BY_NAME.has(param.name)),
      description:
        rules.description ??
        DESCRIPTIONS[param.name] ??
        (param.type === "str" || param.type === "int" || param.type === "float" || param.type === "bool"
          ? `Value for '${param.name}'.`
          : `Input ${param.type}: an asset_id, an https URL, or base64 data.`),
      ...(rules.default !== undefined && { default: rules.default }),
      ...(rules.enum && { enum: rules.enum }),
      ...(rules.min !== undefined && { min: rules.min }),
      ...(rules.max !== undefined && { max: rules.max }),
      ...(rules.step !== undefined && { step: rules.step }),
    };
    const problem = spec.default === undefined ? undefined : checkValue(spec, spec.default);
    if (problem) return fail(`${file.id}.meta.json: default of '${param.name}' ${problem}`);
    params.push(spec);
  }
  // Required first, each group in discovery order (as the original lists them).
  params.sort((a, b) => Number(b.required) - Number(a.required));
  return {
    ok: true,
    workflow: {
      id: file.id,
      title: sidecar.title ?? titleCase(file.id),
      description: sidecar.description ?? `Execute the '${file.id.replace(/[_-]+/g, " ").trim()}' ComfyUI workflow.`,
      namespace: sidecar.namespace ?? namespaceFor(file.id, output),
      output,
      graph,
      params,
      source: file.source,
      backendTags: sidecar.backendTags ?? [],
      ...(sidecar.added && { added: sidecar.added }),
    },
  };
}

/** Checks a value against a parameter's type and constraints; a problem phrase, or undefined. */
export function checkValue(
  spec: Pick<ParamSpec, "type" | "enum" | "min" | "max" | "step">,
  value: unknown,
): string | undefined {
  const numeric = spec.type === "int" || spec.type === "float";
  if (numeric && (typeof value !== "number" || !Number.isFinite(value)))
    return `must be a number, got ${JSON.stringify(value)}`;
  if (spec.type === "int" && !Number.isInteger(value)) return `must be an integer, got ${JSON.stringify(value)}`;
  if (spec.type === "bool" && typeof value !== "boolean") return `must be true or false, got ${JSON.stringify(value)}`;
  if (!numeric && spec.type !== "bool" && typeof value !== "string")
    return `must be a string, got ${JSON.stringify(value)}`;
  if (spec.enum && !spec.enum.includes(value as Scalar))
    return `must be one of ${spec.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  if (typeof value === "number") {
    if (spec.min !== undefined && value < spec.min) return `must be at least ${spec.min}`;
    if (spec.max !== undefined && value > spec.max) return `must be at most ${spec.max}`;
    if (spec.step !== undefined && !isStep(value, spec.step, spec.min)) return `must be a multiple of ${spec.step}`;
  }
  return undefined;
}

function isStep(value: number, step: number, min = 0): boolean {
  const steps = (value - (Number.isInteger(step) ? 0 : min)) / step;
  return Math.abs(steps - Math.round(steps)) < 1e-9;
}

// --- the graph --------------------------------------------------------------------------------

function checkGraph(graph: unknown): string | undefined {
  if (typeof graph !== "object" || graph === null || Array.isArray(graph))
    return "not a JSON object of nodes (expected ComfyUI API format)";
  const record = graph as Record<string, unknown>;
  if (Array.isArray(record.nodes) || "links" in record || "last_node_id" in record) {
    return "this is a UI-format workflow (it has nodes/links): pass it to add_workflow, which converts it, or put it in workflows/ (converted at build time); or in ComfyUI use Workflow > Export (API)";
  }
  const entries = Object.entries(record);
  if (entries.length === 0) return "the workflow has no nodes";
  for (const [id, node] of entries) {
    if (typeof node !== "object" || node === null || Array.isArray(node))
      return `node '${id}' is not an object (expected {"class_type", "inputs"})`;
    const candidate = node as Record<string, unknown>;
    if (typeof candidate.class_type !== "string" || candidate.class_type === "")
      return `node '${id}' has no class_type`;
    if (typeof candidate.inputs !== "object" || candidate.inputs === null || Array.isArray(candidate.inputs))
      return `node '${id}' (${candidate.class_type}) has no inputs object`;
  }
  return undefined;
}

function outputKind(graph: ComfyGraph): OutputKind {
  const kinds = new Set(
    Object.values(graph).flatMap((node) => (OUTPUT_CLASSES[node.class_type] ? [OUTPUT_CLASSES[node.class_type]!] : [])),
  );
  if (kinds.size === 0) return "unknown";
  return kinds.size === 1 ? [...kinds][0]! : "mixed";
}

/** The original's rule by id, then what the workflow outputs (never "any audio-ish node anywhere"). */
function namespaceFor(id: string, output: OutputKind): Namespace {
  if (/song|audio|music/i.test(id)) return "audio";
  if (/video/i.test(id)) return "video";
  return output === "audio" || output === "video" ? output : "image";
}

function titleCase(id: string): string {
  return id
    .split(/[_\-.\s]+/)
    .filter(Boolean)
    .map((word) => word[0]!.toUpperCase() + word.slice(1))
    .join(" ");
}

// --- the sidecar ------------------------------------------------------------------------------

interface ParameterRules {
  description?: string;
  required?: boolean;
  default?: Scalar;
  enum?: Scalar[];
  min?: number;
  max?: number;
  step?: number;
}

interface Sidecar {
  title?: string;
  description?: string;
  namespace?: Namespace;
  parameters: Record<string, ParameterRules>;
  backendTags?: string[];
  added?: Provenance;
}

/** The sidecar, or a problem. Accepts the original's `constraints` and `defaults` keys too. */
function readSidecar(meta: unknown, params: WorkflowParam[]): Sidecar | string {
  if (meta === undefined) return { parameters: {} };
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) return "must be a JSON object";
  const record = meta as Record<string, unknown>;
  const unknown = Object.keys(record).filter((key) => !SIDECAR_KEYS.has(key));
  if (unknown.length > 0) return `unknown key(s) ${unknown.join(", ")} (allowed: ${[...SIDECAR_KEYS].join(", ")})`;
  const sidecar: Sidecar = { parameters: {} };
  const title = record.name ?? record.title;
  if (title !== undefined) {
    if (typeof title !== "string" || title.trim() === "") return "'name' must be a non-empty string";
    sidecar.title = title.trim();
  }
  if (record.description !== undefined) {
    if (typeof record.description !== "string") return "'description' must be a string";
    sidecar.description = record.description.trim();
  }
  if (record.namespace !== undefined) {
    if (record.namespace !== "image" && record.namespace !== "audio" && record.namespace !== "video")
      return "'namespace' must be image, audio or video";
    sidecar.namespace = record.namespace;
  }
  if (record.backend_tags !== undefined) {
    const tags = record.backend_tags;
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string" && /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(t)))
      return "'backend_tags' must be a list of short words (letters, digits, '-' or '_')";
    sidecar.backendTags = tags.map((t: string) => t.toLowerCase());
  }
  if (record.added !== undefined) {
    const added = record.added as Record<string, unknown>;
    if (
      typeof added !== "object" ||
      added === null ||
      !["by", "at", "from"].every((key) => typeof added[key] === "string" && (added[key] as string).length <= 2000)
    )
      return "'added' must be {by, at, from} strings (add_workflow writes it)";
    sidecar.added = { by: added.by as string, at: added.at as string, from: added.from as string };
  }
  const known = new Map(params.map((param) => [param.name, param]));
  const merge = (
    section: string,
    value: unknown,
    shape: (name: string, entry: unknown) => ParameterRules | string,
  ): string | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== "object" || value === null || Array.isArray(value))
      return `'${section}' must be an object keyed by parameter name`;
    for (const [name, entry] of Object.entries(value)) {
      if (!known.has(name))
        return `'${section}' mentions '${name}', but the workflow has no PARAM_…_${name.toUpperCase()} placeholder (parameters: ${[...known.keys()].join(", ") || "none"})`;
      const rules = shape(name, entry);
      if (typeof rules === "string") return `'${section}.${name}': ${rules}`;
      sidecar.parameters[name] = { ...sidecar.parameters[name], ...rules };
    }
    return undefined;
  };
  return (
    merge("parameters", record.parameters, (_name, entry) => readRules(entry)) ??
    merge("constraints", record.constraints, (_name, entry) => readRules(entry)) ??
    merge("defaults", record.defaults, (_name, entry) =>
      isScalar(entry) ? { default: entry } : "must be a string, number or boolean",
    ) ??
    sidecar
  );
}

function readRules(entry: unknown): ParameterRules | string {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return "must be an object";
  const record = entry as Record<string, unknown>;
  const unknown = Object.keys(record).filter((key) => !PARAMETER_KEYS.has(key));
  if (unknown.length > 0) return `unknown key(s) ${unknown.join(", ")} (allowed: ${[...PARAMETER_KEYS].join(", ")})`;
  const rules: ParameterRules = {};
  if (record.description !== undefined) {
    if (typeof record.description !== "string") return "'description' must be a string";
    rules.description = record.description;
  }
  if (record.required !== undefined) {
    if (typeof record.required !== "boolean") return "'required' must be true or false";
    rules.required = record.required;
  }
  if (record.default !== undefined) {
    if (!isScalar(record.default)) return "'default' must be a string, number or boolean";
    rules.default = record.default;
  }
  if (record.enum !== undefined) {
    if (!Array.isArray(record.enum) || record.enum.length === 0 || !record.enum.every(isScalar))
      return "'enum' must be a non-empty list of strings, numbers or booleans";
    rules.enum = record.enum;
  }
  for (const key of ["min", "max", "step"] as const) {
    const value = record[key];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isFinite(value)) return `'${key}' must be a number`;
    if (key === "step" && value <= 0) return "'step' must be greater than 0";
    rules[key] = value;
  }
  if (rules.min !== undefined && rules.max !== undefined && rules.min > rules.max) return "'min' is greater than 'max'";
  return rules;
}

function isScalar(value: unknown): value is Scalar {
  return (
    typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))
  );
}

function fail(problem: string): ParseResult {
  return { ok: false, problem };
}

export type { ParamType };
