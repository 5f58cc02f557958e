/**
 * Proposes the parameters a converted workflow should take when its owner names none: the
 * positive and negative prompt (found by following each sampler's `positive`/`negative` links back
 * to their text encoders), the sampler settings, the latent size, the model loader, Flux guidance,
 * and every uploaded-media input. Each proposal names its node and input and takes the workflow's
 * current value as default. Inputs holding the same value in several samplers (a refiner, a second
 * Wan expert) are bound to one parameter; where a choice would be a guess, the proposal is left
 * out and `needsMap` says why. `toWorkflowFile` turns proposals into the `PARAM_*` placeholders and
 * `.meta.json` sidecar that parseWorkflow already reads.
 */
import type { ComfyGraph } from "../comfy/types";
import { parseWorkflow, type ParseResult, type Scalar } from "./definition.ts";
import type { ParamBinding, ParamType } from "./params.ts";
import { inputsOf, type NamedInput, type ObjectInfo } from "./ui-format.ts";
import { isMediaInput } from "./validate-graph.ts";

export interface Proposal {
  name: string;
  /** The first (or only) input the parameter writes; `bindings` lists all of them. */
  node_id: string;
  input: string;
  default: unknown;
  type: ParamType;
  bindings: ParamBinding[];
  description?: string;
  min?: number;
  max?: number;
  step?: number;
}

export interface ParameterPlan {
  proposals: Proposal[];
  /** Why the owner should give a parameter map instead (empty when the proposals cover it). */
  needsMap: string[];
}

/** Sampler settings: the first input found sets the default, equal values elsewhere are bound too. */
const SETTINGS: { name: string; inputs: string[]; description?: string; onlyIf?: (value: unknown) => boolean }[] = [
  {
    name: "seed",
    inputs: ["KSampler.seed", "KSamplerAdvanced.noise_seed", "SamplerCustom.noise_seed", "RandomNoise.noise_seed"],
  },
  {
    name: "steps",
    inputs: ["KSampler.steps", "KSamplerAdvanced.steps", "BasicScheduler.steps", "SDTurboScheduler.steps"],
  },
  { name: "cfg", inputs: ["KSampler.cfg", "KSamplerAdvanced.cfg", "SamplerCustom.cfg", "CFGGuider.cfg"] },
  {
    name: "sampler_name",
    inputs: ["KSampler.sampler_name", "KSamplerAdvanced.sampler_name", "KSamplerSelect.sampler_name"],
  },
  { name: "scheduler", inputs: ["KSampler.scheduler", "KSamplerAdvanced.scheduler", "BasicScheduler.scheduler"] },
  // Only where the workflow really denoises partly (img2img, a second pass): 1 means "from noise".
  { name: "denoise", inputs: ["KSampler.denoise", "BasicScheduler.denoise"], onlyIf: (value) => Number(value) < 1 },
  {
    name: "guidance",
    inputs: ["FluxGuidance.guidance", "CLIPTextEncodeFlux.guidance"],
    description: "Flux guidance: how strongly the image follows the prompt.",
  },
];

/** Text inputs of encoders: which parameter each one feeds, for the positive side. */
const TEXT_INPUTS: Record<string, string> = {
  text: "prompt",
  prompt: "prompt",
  // In encoders with several text inputs, the main one first: its text is the default.
  t5xxl: "prompt",
  llama: "prompt",
  text_g: "prompt",
  clip_g: "prompt",
  text_l: "prompt",
  clip_l: "prompt",
  tags: "tags",
  lyrics: "lyrics",
};

/** Inputs of samplers and guiders that carry the positive and the negative conditioning. */
const POSITIVE_INPUTS = ["positive", "conditioning", "cond1"];
const NEGATIVE_INPUTS = ["negative"];
const MODEL_LOADERS: Record<string, string> = { CheckpointLoaderSimple: "ckpt_name", UNETLoader: "unet_name" };
/** Nodes besides the latent that repeat the image size (Flux's shift depends on it). */
const SIZE_FOLLOWERS = new Set(["ModelSamplingFlux"]);

export function proposeParameters(graph: ComfyGraph, objectInfo: ObjectInfo): Proposal[] {
  return planParameters(graph, objectInfo).proposals;
}

export function planParameters(graph: ComfyGraph, objectInfo: ObjectInfo): ParameterPlan {
  const view = new GraphView(graph, objectInfo);
  const plan: ParameterPlan = { proposals: [], needsMap: [] };
  const samplers = view.ids().filter((id) => view.isSampler(id));
  proposePrompts(view, samplers, plan);
  for (const setting of SETTINGS) {
    const literal = view.ids().flatMap((id) =>
      setting.inputs
        .map((key) => key.split(".") as [string, string])
        .filter(([className, input]) => className === view.classOf(id) && view.isLiteral({ node_id: id, input }))
        .filter(() => !(setting.name === "seed" && view.addsNoNoise(id)))
        .map(([, input]) => ({ node_id: id, input })),
    );
    if (literal.length === 0) continue;
    const value = view.value(literal[0]!);
    if (setting.onlyIf && !setting.onlyIf(value)) continue;
    const bindings = literal.filter((binding) => view.value(binding) === value);
    plan.proposals.push(view.proposal(setting.name, bindings, setting.description));
  }
  proposeSize(view, samplers, plan);
  proposeModel(view, samplers, plan);
  proposeMedia(view, plan);
  if (
    !plan.proposals.some(
      (p) => p.name === "prompt" || p.name === "tags" || p.type === "image" || p.type === "audio" || p.type === "video",
    )
  )
    plan.needsMap.push("no prompt and no media input was recognised: say which inputs should become parameters");
  return plan;
}

function proposePrompts(view: GraphView, samplers: string[], plan: ParameterPlan): void {
  const taken = new Set<string>();
  for (const [side, inputs] of [
    ["positive", POSITIVE_INPUTS],
    ["negative", NEGATIVE_INPUTS],
  ] as const) {
    const byName = new Map<string, ParamBinding[]>();
    const distinct = new Set<string>();
    for (const sampler of samplers) {
      for (const input of inputs) {
        const encoder = view.encoderBehind(sampler, input);
        if (!encoder) continue;
        for (const [text, base] of Object.entries(TEXT_INPUTS)) {
          const binding = { node_id: encoder, input: text };
          if (!view.isLiteral(binding) || typeof view.value(binding) !== "string") continue;
          const key = `${encoder}.${text}`;
          // A guider may use the positive encoder as its negative too (HiDream E1): not a negative prompt.
          if (taken.has(key)) continue;
          const name = side === "negative" ? (base === "prompt" ? "negative_prompt" : undefined) : base;
          if (!name) continue;
          const bound = byName.get(name) ?? [];
          const first = bound[0];
          if (first === undefined || view.value(first) === view.value(binding)) {
            if (!bound.some((b) => b.node_id === encoder && b.input === text)) bound.push(binding);
            byName.set(name, bound);
            taken.add(key);
          } else if (!bound.some((b) => b.node_id === encoder)) distinct.add(`${name} (node ${encoder})`);
          // (Differing texts inside one encoder, e.g. Flux's clip_l and t5xxl, are its design: kept.)
        }
      }
    }
    for (const [name, bindings] of byName) plan.proposals.push(view.proposal(name, bindings));
    if (distinct.size > 0)
      plan.needsMap.push(
        `the samplers use different texts: ${[...distinct].join(", ")} kept as they are; only the first is proposed`,
      );
  }
}

function proposeSize(view: GraphView, samplers: string[], plan: ParameterPlan): void {
  const latent = samplers
    .map((id) =>
      view.upstream(id, "latent_image", "LATENT", (node) => view.isLiteral({ node_id: node, input: "width" })),
    )
    .find((id) => id !== undefined);
  const audio = view
    .ids()
    .find((id) => view.isLiteral({ node_id: id, input: "seconds" }) && /Latent/.test(view.classOf(id)));
  if (audio) plan.proposals.push(view.proposal("seconds", [{ node_id: audio, input: "seconds" }]));
  if (!latent) return;
  for (const name of ["width", "height"]) {
    const value = view.value({ node_id: latent, input: name });
    const followers = view
      .ids()
      .filter((id) => SIZE_FOLLOWERS.has(view.classOf(id)) && view.isLiteral({ node_id: id, input: name }))
      .filter((id) => view.value({ node_id: id, input: name }) === value)
      .map((id) => ({ node_id: id, input: name }));
    plan.proposals.push(view.proposal(name, [{ node_id: latent, input: name }, ...followers]));
  }
  // A batch is proposed only when the workflow makes one; a single image is the usual case.
  const batch = { node_id: latent, input: "batch_size" };
  if (view.isLiteral(batch) && Number(view.value(batch)) > 1) plan.proposals.push(view.proposal("batch_size", [batch]));
}

function proposeModel(view: GraphView, samplers: string[], plan: ParameterPlan): void {
  const loaders = new Set<string>();
  for (const sampler of samplers) {
    // A SamplerCustomAdvanced gets its model through the guider; the guider is a sampler here too.
    const loader = view.upstream(sampler, "model", "MODEL", (node) => view.classOf(node) in MODEL_LOADERS);
    if (loader) loaders.add(loader);
  }
  const bindings = [...loaders].map((id) => ({ node_id: id, input: MODEL_LOADERS[view.classOf(id)]! }));
  const files = new Set(bindings.map((binding) => view.value(binding)));
  if (files.size === 1) plan.proposals.push(view.proposal("model", bindings));
  else if (files.size > 1)
    plan.needsMap.push(
      `the samplers use ${files.size} different models (${[...files].join(", ")}): no single 'model' parameter is proposed`,
    );
}

function proposeMedia(view: GraphView, plan: ParameterPlan): void {
  const counts: Record<string, number> = {};
  for (const id of view.ids()) {
    for (const input of view.inputs(id)) {
      if (!isMediaInput(input) || !view.isLiteral({ node_id: id, input: input.name })) continue;
      const type: ParamType = input.options.audio_upload ? "audio" : input.options.video_upload ? "video" : "image";
      counts[type] = (counts[type] ?? 0) + 1;
      const name = counts[type] === 1 ? type : `${type}_${counts[type]}`;
      plan.proposals.push({ ...view.proposal(name, [{ node_id: id, input: input.name }]), type });
    }
  }
}

/** Read-only helpers over a converted graph and its backend's schemas. */
class GraphView {
  readonly graph: ComfyGraph;
  readonly objectInfo: ObjectInfo;

  constructor(graph: ComfyGraph, objectInfo: ObjectInfo) {
    this.graph = graph;
    this.objectInfo = objectInfo;
  }

  ids(): string[] {
    return Object.keys(this.graph);
  }

  classOf(id: string): string {
    return this.graph[id]?.class_type ?? "";
  }

  inputs(id: string): NamedInput[] {
    const schema = this.objectInfo[this.classOf(id)];
    return schema ? inputsOf(schema) : [];
  }

  value(binding: ParamBinding): unknown {
    return this.graph[binding.node_id]?.inputs[binding.input];
  }

  isLiteral(binding: ParamBinding): boolean {
    const value = this.value(binding);
    return value !== undefined && !Array.isArray(value);
  }

  outputType(link: unknown): unknown {
    if (!Array.isArray(link)) return undefined;
    return this.objectInfo[this.classOf(String(link[0]))]?.output?.[link[1] as number];
  }

  /** A seed of a sampler that adds no noise (a second Wan or SDXL pass) changes nothing. */
  addsNoNoise(id: string): boolean {
    const addNoise = this.graph[id]?.inputs.add_noise;
    return addNoise === "disable" || addNoise === false;
  }

  /** Samplers and guiders: they take conditioning and give none. */
  isSampler(id: string): boolean {
    const schema = this.objectInfo[this.classOf(id)];
    const takes = this.inputs(id).some((input) => input.type === "CONDITIONING");
    return takes && !(schema?.output ?? []).includes("CONDITIONING");
  }

  /**
   * The text encoder behind a conditioning input, through conditioning-only nodes (FluxGuidance,
   * ControlNetApply, InpaintModelConditioning…); a zeroed conditioning has no text behind it.
   */
  encoderBehind(id: string, input: string): string | undefined {
    let link = this.graph[id]?.inputs[input];
    for (let hops = 0; hops < 32 && Array.isArray(link); hops++) {
      const source = String(link[0]);
      const className = this.classOf(source);
      if (className === "ConditioningZeroOut") return undefined;
      if (/TextEncode/.test(className)) return source;
      const outputName = this.objectInfo[className]?.output_name?.[link[1] as number]?.toLowerCase();
      const inputs = this.graph[source]?.inputs ?? {};
      // A node giving positive and negative passes on the input of the same name.
      const next =
        (outputName && Array.isArray(inputs[outputName]) ? inputs[outputName] : undefined) ??
        Object.values(inputs).find((value) => this.outputType(value) === "CONDITIONING");
      link = next;
    }
    return undefined;
  }

  /** The nearest node upstream of `input` along links of `type` that satisfies `accept`. */
  upstream(id: string, input: string, type: string, accept: (node: string) => boolean): string | undefined {
    const queue = [this.graph[id]?.inputs[input]];
    const seen = new Set<string>();
    while (queue.length > 0) {
      const link = queue.shift();
      if (!Array.isArray(link) || this.outputType(link) !== type) continue;
      const source = String(link[0]);
      if (seen.has(source)) continue;
      seen.add(source);
      if (accept(source)) return source;
      for (const value of Object.values(this.graph[source]?.inputs ?? {})) queue.push(value);
    }
    return undefined;
  }

  proposal(name: string, bindings: ParamBinding[], description?: string): Proposal {
    const first = bindings[0]!;
    const spec = this.inputs(first.node_id).find((input) => input.name === first.input);
    const type: ParamType =
      spec?.type === "INT" ? "int" : spec?.type === "FLOAT" ? "float" : spec?.type === "BOOLEAN" ? "bool" : "str";
    const proposal: Proposal = {
      name,
      node_id: first.node_id,
      input: first.input,
      default: this.value(first),
      type,
      bindings,
    };
    if (description) proposal.description = description;
    const { min, max, step } = spec?.options ?? {};
    // Seeds span 64 bits in ComfyUI; the tool schema already bounds them to exact JSON integers.
    if (name !== "seed" && (type === "int" || type === "float")) {
      if (typeof min === "number" && Number.isSafeInteger(Math.trunc(min))) proposal.min = min;
      if (typeof max === "number" && max <= Number.MAX_SAFE_INTEGER) proposal.max = max;
      // Float steps are a widget's slider increment, not a rule ComfyUI enforces.
      if (type === "int" && typeof step === "number" && step > 1) proposal.step = step;
    }
    return proposal;
  }
}

// --- into the existing parameterisation ----------------------------------------------------------

const PLACEHOLDER_TYPES: Record<ParamType, string> = {
  str: "STR",
  int: "INT",
  float: "FLOAT",
  bool: "BOOL",
  image: "IMAGE",
  audio: "AUDIO",
  video: "VIDEO",
};

/**
 * The graph with each proposal's inputs replaced by its `PARAM_<TYPE>_<NAME>` placeholder, and
 * the sidecar giving defaults and ranges. Media parameters get no default (the template's file
 * name is a file on some backend, not something a caller can pass), nor does the seed (random).
 */
export function toWorkflowFile(
  id: string,
  graph: ComfyGraph,
  proposals: Proposal[],
): { id: string; graph: ComfyGraph; meta: { parameters: Record<string, Record<string, unknown>> }; source: "r2" } {
  const parameterised = structuredClone(graph);
  const parameters: Record<string, Record<string, unknown>> = {};
  for (const proposal of proposals) {
    const placeholder = `PARAM_${PLACEHOLDER_TYPES[proposal.type]}_${proposal.name.toUpperCase()}`;
    for (const binding of proposal.bindings) {
      const node = parameterised[binding.node_id];
      if (node) node.inputs[binding.input] = placeholder;
    }
    const rules: Record<string, unknown> = {};
    if (proposal.description) rules.description = proposal.description;
    const media = proposal.type === "image" || proposal.type === "audio" || proposal.type === "video";
    // A seed stays random per call unless given, as ComfyUI's "randomize" does; reusing the
    // template's seed on every call would make every image the same.
    if (!media && proposal.name !== "seed" && isScalar(proposal.default)) rules.default = proposal.default;
    for (const key of ["min", "max", "step"] as const) if (proposal[key] !== undefined) rules[key] = proposal[key];
    parameters[proposal.name] = rules;
  }
  return { id, graph: parameterised, meta: { parameters }, source: "r2" };
}

/** A converted graph with its proposals as a workflow definition, checked by parseWorkflow. */
export function definitionFromProposals(id: string, graph: ComfyGraph, proposals: Proposal[]): ParseResult {
  return parseWorkflow(toWorkflowFile(id, graph, proposals));
}

function isScalar(value: unknown): value is Scalar {
  return (
    typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))
  );
}
