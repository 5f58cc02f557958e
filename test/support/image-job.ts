// A studio submission of the bundled generate_image workflow, as the tools would build it.
import type { ComfyGraph } from "../../src/comfy/types";
import type { SubmitRequest } from "../../src/studio/records";
import { discoverParams, randomSeed, renderGraph } from "../../src/workflows/params";
import generateImage from "../../workflows/generate_image.json";

const TEMPLATE = generateImage as ComfyGraph;
const PARAMS = discoverParams(TEMPLATE);

export function imageJob(overrides: Record<string, unknown> = {}): SubmitRequest {
  const values = {
    seed: randomSeed(),
    steps: 4,
    cfg: 7,
    sampler_name: "euler",
    scheduler: "normal",
    denoise: 1,
    model: "v1-5-pruned-emaonly.ckpt",
    width: 320,
    height: 192,
    prompt: "a lighthouse",
    negative_prompt: "blurry",
    ...overrides,
  };
  return {
    prompt_id: crypto.randomUUID(),
    workflow_id: "generate_image",
    tool: "generate_image",
    graph: renderGraph(TEMPLATE, PARAMS, values),
    params: values as SubmitRequest["params"],
    session: null,
    backend: "default",
    routing: { requirements: [] },
    resubmit: false,
    movable: false,
  };
}
