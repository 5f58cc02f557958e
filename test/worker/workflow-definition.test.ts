// The workflow system's rules (original-server.md §4) and the original's defects in it (§15,
// items 6-12), each pinned by a test that would fail on that defect.
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import * as z from "zod/v4";
import { checkValue, parseWorkflow, type ParseResult, type WorkflowDefinition } from "../../src/workflows/definition";
import { parseCombo } from "../../src/workflows/combos";
import { forgetStoredWorkflows, loadCatalogue } from "../../src/workflows/registry";
import { paramField } from "../../src/workflows/schema";
import { FIXED_TOOLS } from "../../src/mcp/server";
import generateImage from "../../workflows/generate_image.json";
import generateImageMeta from "../../workflows/generate_image.meta.json";

const save = { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "x" } };
const parse = (graph: unknown, meta?: unknown, id = "custom_flow"): ParseResult =>
  parseWorkflow({ id, graph, meta, source: "bundled" });
const ok = (result: ParseResult): WorkflowDefinition => {
  if (!result.ok) throw new Error(result.problem);
  return result.workflow;
};
const problem = (result: ParseResult) => (result.ok ? "" : result.problem);

describe("parsing workflow files", () => {
  it("reads the bundled generate_image with its sidecar: required first, typed, defaults and constraints", () => {
    const workflow = ok(parse(generateImage, generateImageMeta, "generate_image"));
    expect(workflow.params.map((p) => p.name)).toEqual([
      "prompt",
      "seed",
      "steps",
      "cfg",
      "sampler_name",
      "scheduler",
      "denoise",
      "model",
      "width",
      "height",
      "negative_prompt",
    ]);
    expect(workflow.params[0]).toMatchObject({ name: "prompt", required: true, type: "str" });
    expect(workflow.params.find((p) => p.name === "width")).toMatchObject({
      type: "int",
      default: 512,
      min: 16,
      max: 8192,
      step: 8,
      required: false,
    });
    expect(workflow).toMatchObject({ title: "Generate an image", namespace: "image", output: "image" });
  });

  it("binds one parameter to every input that carries it; the first occurrence fixes the type", () => {
    const workflow = ok(
      parse({
        1: { class_type: "CLIPTextEncode", inputs: { text: "PARAM_PROMPT" } },
        2: { class_type: "CLIPTextEncode", inputs: { text: "PARAM_STR_PROMPT" } },
        3: {
          class_type: "EmptyImage",
          inputs: { width: "PARAM_INT_SIZE", height: "PARAM_INT_SIZE", batch_size: 1, color: 0 },
        },
        4: save,
      }),
    );
    expect(workflow.params.find((p) => p.name === "prompt")!.bindings).toEqual([
      { node_id: "1", input: "text" },
      { node_id: "2", input: "text" },
    ]);
    expect(workflow.params.find((p) => p.name === "size")).toMatchObject({
      type: "int",
      required: true,
      bindings: [
        { node_id: "3", input: "width" },
        { node_id: "3", input: "height" },
      ],
    });
  });

  it("decides required by name like the original, unless the sidecar says otherwise or gives a default", () => {
    const graph = {
      1: {
        class_type: "X",
        inputs: { a: "PARAM_INT_STEPS", b: "PARAM_TEXT_STYLE", c: "PARAM_FLOAT_STRENGTH", d: "PARAM_INT_SEED" },
      },
      2: save,
    };
    const plain = ok(parse(graph));
    expect(Object.fromEntries(plain.params.map((p) => [p.name, p.required]))).toEqual({
      steps: false,
      style: true,
      strength: true,
      seed: false,
    });
    const described = ok(
      parse(graph, {
        parameters: { style: { required: false }, strength: { default: 0.5 }, seed: { required: true } },
      }),
    );
    expect(Object.fromEntries(described.params.map((p) => [p.name, p.required]))).toEqual({
      seed: true,
      steps: false,
      style: false,
      strength: false,
    });
  });

  it("rejects what the original crashed on, naming the problem (original defect 7)", () => {
    expect(problem(parse({ last_node_id: 9, nodes: [], links: [] }))).toMatch(
      /UI-format workflow.*add_workflow.*Export \(API\)/,
    );
    expect(problem(parse({ name: "my flow", description: "a sidecar mistaken for a workflow" }))).toMatch(
      /node 'name' is not an object/,
    );
    expect(problem(parse({ 1: { class_type: "X" } }))).toMatch(/node '1' \(X\) has no inputs object/);
    expect(problem(parse({ 1: { inputs: {} } }))).toMatch(/node '1' has no class_type/);
    expect(problem(parse([]))).toMatch(/not a JSON object of nodes/);
    expect(problem(parse({}))).toMatch(/no nodes/);
    expect(problem(parse({ 1: save }, undefined, "../escape"))).toMatch(/must be letters, digits/);
  });

  it("accepts the documented sidecar (top-level strings crashed the original) and rejects bad ones by name", () => {
    const graph = {
      1: { class_type: "EmptyImage", inputs: { width: "PARAM_INT_WIDTH", height: 8, batch_size: 1, color: 0 } },
      2: save,
    };
    expect(
      ok(parse(graph, { name: "Tiny", description: "A tiny image.", updated_at: "2026-01-01", hash: "abc" })).title,
    ).toBe("Tiny");
    expect(problem(parse(graph, { override_mappings: {} }))).toMatch(
      /custom_flow\.meta\.json: unknown key\(s\) override_mappings/,
    );
    expect(problem(parse(graph, { parameters: { height: { min: 1 } } }))).toMatch(
      /mentions 'height', but the workflow has no PARAM_…_HEIGHT placeholder/,
    );
    expect(problem(parse(graph, { parameters: { width: { default: 3, min: 16 } } }))).toMatch(
      /default of 'width' must be at least 16/,
    );
    expect(problem(parse(graph, { parameters: { width: { default: "wide" } } }))).toMatch(
      /default of 'width' must be a number/,
    );
    expect(problem(parse(graph, { parameters: { width: { step: 0 } } }))).toMatch(/'step' must be greater than 0/);
    expect(problem(parse(graph, { parameters: { width: { colour: 1 } } }))).toMatch(/unknown key\(s\) colour/);
    expect(problem(parse(graph, "just a string"))).toMatch(/must be a JSON object/);
    expect(ok(parse(graph, { backend_tags: ["Video", "sdxl"] })).backendTags).toEqual(["video", "sdxl"]);
    expect(problem(parse(graph, { backend_tags: "video" }))).toMatch(/'backend_tags' must be a list of short words/);
  });

  it("refuses a parameter that would hide a tool argument (wait_seconds, backend, resubmit_if_backend_lost)", () => {
    for (const name of ["WAIT_SECONDS", "BACKEND", "RESUBMIT_IF_BACKEND_LOST"]) {
      const graph = {
        1: { class_type: "EmptyImage", inputs: { width: `PARAM_STR_${name}`, height: 8, batch_size: 1, color: 0 } },
        2: save,
      };
      expect(problem(parse(graph))).toMatch(
        new RegExp(`the parameter '${name.toLowerCase()}' would hide the tool argument`),
      );
    }
  });

  it("applies the original's constraints and defaults keys (its defaults were never applied: defect 8)", () => {
    const graph = {
      1: {
        class_type: "EmptyImage",
        inputs: { width: "PARAM_INT_WIDTH", height: "PARAM_INT_HEIGHT", batch_size: 1, color: 0 },
      },
      2: save,
    };
    const workflow = ok(
      parse(graph, { constraints: { width: { min: 64, max: 1024, step: 64 } }, defaults: { width: 256, height: 128 } }),
    );
    expect(workflow.params.find((p) => p.name === "width")).toMatchObject({
      min: 64,
      max: 1024,
      step: 64,
      default: 256,
    });
    expect(workflow.params.find((p) => p.name === "height")).toMatchObject({ default: 128 });
  });

  it("takes the namespace from the id or the outputs, never from any audio-ish node (defect 12)", () => {
    const imageWithAudioNode = { 1: { class_type: "LoadAudio", inputs: { audio: "x.flac" } }, 2: save };
    expect(ok(parse(imageWithAudioNode))).toMatchObject({ namespace: "image", output: "image" });
    const video = {
      1: { class_type: "SaveVideo", inputs: { video: ["2", 0], filename_prefix: "v", format: "mp4", codec: "h264" } },
    };
    expect(ok(parse(video))).toMatchObject({ namespace: "video", output: "video" });
    expect(ok(parse({ 1: save, 2: { class_type: "SaveAudioMP3", inputs: {} } }))).toMatchObject({ output: "mixed" });
    expect(ok(parse({ 1: save }, undefined, "make_song"))).toMatchObject({ namespace: "audio" });
  });
});

describe("values and schemas", () => {
  it("checks constraints with messages instead of a TypeError on strings vs numbers (defect 8)", () => {
    const width = { type: "int" as const, min: 16, max: 1024, step: 8 };
    expect(checkValue(width, "512")).toBe('must be a number, got "512"');
    expect(checkValue(width, 8)).toBe("must be at least 16");
    expect(checkValue(width, 2048)).toBe("must be at most 1024");
    expect(checkValue(width, 100)).toBe("must be a multiple of 8");
    expect(checkValue(width, 512)).toBeUndefined();
    expect(checkValue({ type: "float" as const, min: 0, max: 1, step: 0.05 }, 0.35)).toBeUndefined();
    expect(checkValue({ type: "str" as const, enum: ["a", "b"] }, "c")).toBe('must be one of "a", "b"');
  });

  it("gives numbers a JSON type, constraints and descriptions in tool schemas (defects 10, 11)", () => {
    const workflow = ok(parse(generateImage, generateImageMeta, "generate_image"));
    const shape = Object.fromEntries(workflow.params.map((p) => [p.name, paramField(p)]));
    const schema = z.toJSONSchema(z.object(shape), { io: "input" }) as {
      properties: Record<string, Record<string, unknown>>;
      required: string[];
    };
    expect(schema.required).toEqual(["prompt"]);
    expect(schema.properties.width).toMatchObject({ type: "integer", minimum: 16, maximum: 8192, multipleOf: 8 });
    expect(schema.properties.cfg).toMatchObject({ type: "number", minimum: 0, maximum: 100 });
    expect(schema.properties.steps!.description).toMatch(/Default:? 20/);
    expect(schema.properties.seed).toMatchObject({ type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
  });

  it("reads all three combo forms of /object_info (comfyui-api.md §13.1)", () => {
    expect(parseCombo([["nearest-exact", "bilinear"], {}])).toEqual(["nearest-exact", "bilinear"]);
    expect(parseCombo([["V0", "128k"]])).toEqual(["V0", "128k"]);
    expect(parseCombo(["COMBO", { multiselect: false, options: ["vp9", "av1"] }])).toEqual(["vp9", "av1"]);
    expect(
      parseCombo([
        "COMFY_DYNAMICCOMBO_V3",
        {
          options: [
            { key: "mp3", inputs: {} },
            { key: "flac", inputs: {} },
          ],
        },
      ]),
    ).toEqual(["mp3", "flac"]);
    expect(parseCombo(["INT", { min: 0 }])).toBeUndefined();
  });
});

describe("the catalogue", () => {
  afterEach(async () => {
    const listed = await env.ASSETS_BUCKET.list({ prefix: "workflows/" });
    for (const object of listed.objects) await env.ASSETS_BUCKET.delete(object.key);
    forgetStoredWorkflows();
  });

  it("adds R2 workflows without a redeploy, de-duplicates tool names and never takes a fixed tool's name", async () => {
    const graph = JSON.stringify({
      1: { class_type: "EmptyImage", inputs: { width: "PARAM_INT_WIDTH", height: 8, batch_size: 1, color: 0 } },
      2: save,
    });
    await env.ASSETS_BUCKET.put("workflows/generate-image.json", graph);
    await env.ASSETS_BUCKET.put("workflows/list_models.json", graph);
    await env.ASSETS_BUCKET.put("workflows/broken.json", "{ not json");
    forgetStoredWorkflows();
    const catalogue = await loadCatalogue(env, FIXED_TOOLS);
    const tools = Object.fromEntries(catalogue.workflows.map((w) => [w.id, w.tool]));
    expect(tools).toMatchObject({
      generate_image: "generate_image",
      "generate-image": "generate_image_2",
      list_models: "list_models_2",
    });
    expect(catalogue.rejected).toEqual(
      expect.arrayContaining([{ file: "r2:workflows/broken.json", problem: expect.stringMatching(/not valid JSON/) }]),
    );
  });
});
