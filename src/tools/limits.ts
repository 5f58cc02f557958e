/**
 * Per-user limits on what one generation may ask of the GPU, checked on the graph as it will be
 * sent: after defaults, overrides (run_workflow, regenerate) and literal values in the workflow
 * file alike. The quota of jobs (open, per minute) is counted by the studio at submission.
 */
import type { ComfyGraph } from "../comfy/types";
import type { Limit, UserLimits } from "../config";
import { ToolFailure } from "../mcp/results";
import type { ParamSpec } from "../workflows/definition.ts";

/** Inputs that count frames in the video latent nodes ComfyUI ships (Wan, Hunyuan, LTXV, Mochi, SVD…). */
const FRAME_INPUTS = ["length", "video_frames", "num_frames", "frames"];

/**
 * Text encoders take width/height as conditioning hints (SDXL's 4096 trick), not pixels rendered:
 * they are not latents.
 */
const NOT_A_LATENT = /^CLIPTextEncode/;

/** Throws a refusal naming the parameter, the limit and the variable that raises it. */
export function checkGraphLimits(graph: ComfyGraph, params: ParamSpec[], limits: UserLimits): void {
  const paramOf = new Map(
    params.flatMap((param) => param.bindings.map((b) => [`${b.node_id}.${b.input}`, param.name] as const)),
  );
  const named = (nodeId: string, input: string) =>
    paramOf.get(`${nodeId}.${input}`) ?? `${input} (node ${nodeId}, ${graph[nodeId]?.class_type})`;
  for (const [nodeId, node] of Object.entries(graph)) {
    const inputs = node.inputs;
    const steps = inputs.steps;
    if (typeof steps === "number" && over(limits.steps, steps))
      throw refusal(
        `${named(nodeId, "steps")} = ${steps} is more than the ${limits.steps.value} sampling steps you may use`,
        limits.steps,
        "Use fewer steps.",
      );
    const { width, height } = inputs;
    if (typeof width !== "number" || typeof height !== "number" || NOT_A_LATENT.test(node.class_type)) continue;
    const batch = typeof inputs.batch_size === "number" ? inputs.batch_size : 1;
    const frameInput = FRAME_INPUTS.find((input) => typeof inputs[input] === "number");
    const size = `${named(nodeId, "width")} × ${named(nodeId, "height")} = ${width} × ${height}${batch > 1 ? ` × batch ${batch}` : ""}`;
    const megapixels = (width * height * batch) / 1_000_000;
    if (frameInput) {
      const frames = inputs[frameInput] as number;
      const load = megapixels * frames;
      if (over(limits.videoMegapixelFrames, load))
        throw refusal(
          `${size} × ${frames} frames (${named(nodeId, frameInput)}) = ${round(load)} megapixel-frames is more than the ${limits.videoMegapixelFrames.value} you may render in one video`,
          limits.videoMegapixelFrames,
          "Use fewer frames or a smaller frame size.",
        );
    } else if (over(limits.megapixels, megapixels)) {
      throw refusal(
        `${size} (${round(megapixels)} megapixels) is more than the ${limits.megapixels.value} megapixels you may render per image`,
        limits.megapixels,
        "Use a smaller width and height.",
      );
    }
  }
}

function over(limit: Limit, value: number): boolean {
  return limit.value !== null && value > limit.value;
}

function refusal(what: string, limit: Limit, fix: string): ToolFailure {
  return new ToolFailure(
    `Limit exceeded: ${what}. ${fix} The gateway's operator can raise this limit with ${limit.variable}.`,
    { kind: "limit_exceeded", limit: limit.value, variable: limit.variable },
  );
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
