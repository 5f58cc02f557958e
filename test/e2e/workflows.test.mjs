import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePng } from "../fake-comfyui/png.mjs";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { CLIENTS } from "./clients.mjs";
import { putLocalR2Object, startGateway } from "./gateway.mjs";

/** Workflows a user adds to the bucket with `wrangler r2 object put`, no redeploy. */
const STORED = {
  "r2_batch.json": {
    1: {
      class_type: "EmptyImage",
      inputs: {
        width: "PARAM_INT_WIDTH",
        height: "PARAM_INT_HEIGHT",
        batch_size: "PARAM_INT_BATCH_SIZE",
        color: "PARAM_INT_COLOR",
      },
    },
    2: { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "gw_batch" } },
  },
  "r2_batch.meta.json": {
    name: "Solid colour batch",
    description: "A batch of solid-colour images.",
    parameters: {
      batch_size: { default: 1, min: 1, max: 8 },
      color: { default: 16711680, min: 0, max: 16777215, description: "RGB colour as an integer." },
    },
  },
  // A link to a node that does not exist: only ComfyUI's own validation can catch it.
  "r2_broken_link.json": { 2: { class_type: "SaveImage", inputs: { images: ["99", 0], filename_prefix: "x" } } },
  // Literal seeds in a KSamplerAdvanced (noise_seed) and no seed parameter: regenerate must still reseed it.
  "r2_advanced.json": {
    4: { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "v1-5-pruned-emaonly.ckpt" } },
    5: { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } },
    6: { class_type: "CLIPTextEncode", inputs: { text: "PARAM_PROMPT", clip: ["4", 1] } },
    7: { class_type: "CLIPTextEncode", inputs: { text: "blurry", clip: ["4", 1] } },
    3: {
      class_type: "KSamplerAdvanced",
      inputs: {
        add_noise: "enable",
        noise_seed: 5,
        steps: 3,
        cfg: 7,
        sampler_name: "euler",
        scheduler: "normal",
        start_at_step: 0,
        end_at_step: 10000,
        return_with_leftover_noise: "disable",
        model: ["4", 0],
        positive: ["6", 0],
        negative: ["7", 0],
        latent_image: ["5", 0],
      },
    },
    8: { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
    9: { class_type: "SaveImage", inputs: { images: ["8", 0], filename_prefix: "adv" } },
  },
  "r2_ui_export.json": { last_node_id: 9, last_link_id: 9, nodes: [], links: [] },
  "r2_bad_sidecar.json": {
    1: { class_type: "EmptyImage", inputs: { width: "PARAM_INT_WIDTH", height: 8, batch_size: 1, color: 0 } },
    2: { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "x" } },
  },
  "r2_bad_sidecar.meta.json": { override_mappings: { width: [["1", "width"]] } },
};

let fake;
let gateway;
let stateDir;

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 2, nodeDelayMs: 1 });
  stateDir = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-wf-"));
  const files = join(stateDir, "files");
  mkdirSync(files);
  for (const [name, body] of Object.entries(STORED)) {
    writeFileSync(join(files, name), JSON.stringify(body));
    await putLocalR2Object(join(stateDir, "state"), `workflows/${name}`, join(files, name));
  }
  gateway = await startGateway({
    comfyUrl: fake.url,
    persistDir: join(stateDir, "state"),
    vars: { COMFY_MCP_WAIT_SECONDS: "30" },
  });
});

afterAll(async () => {
  await gateway?.stop();
  await fake?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const text = (result) => result.content?.find((c) => c.type === "text")?.text ?? "";
const pngBase64 = (width, height, hash = 7) => encodePng(width, height, { type: "pattern", hash }).toString("base64");
const submittedGraphs = () => [...fake.prompts.values()].map((p) => JSON.stringify(p.prompt));

describe.each(CLIENTS)("%s", (_label, connect) => {
  let client;
  beforeAll(async () => {
    client = await connect(gateway.mcpUrl);
  });
  afterAll(async () => {
    await client?.close();
  });

  it("lists bundled and R2 workflows with typed inputs, and the rejected files with their problem", async () => {
    const catalogue = (await client.call("list_workflows")).structuredContent;
    const byId = Object.fromEntries(catalogue.workflows.map((w) => [w.id, w]));
    expect(Object.keys(byId)).toEqual(
      expect.arrayContaining([
        "generate_image",
        "generate_song",
        "generate_video",
        "image_to_image",
        "r2_batch",
        "r2_broken_link",
      ]),
    );
    expect(byId.generate_song).toMatchObject({ output: "audio", namespace: "audio", source: "bundled" });
    expect(byId.generate_video).toMatchObject({ output: "video", namespace: "video" });
    expect(byId.r2_batch).toMatchObject({ source: "r2", title: "Solid colour batch", output: "image" });
    // Descriptions carry the namespace's own defaults (original defect 11).
    expect(byId.generate_song.inputs.find((i) => i.name === "steps")).toMatchObject({
      type: "int",
      required: false,
      default: 50,
    });
    expect(byId.image_to_image.inputs.find((i) => i.name === "image")).toMatchObject({ type: "image", required: true });
    const problems = Object.fromEntries(catalogue.rejected.map((r) => [r.file, r.problem]));
    expect(problems["r2:workflows/r2_ui_export.json"]).toMatch(/UI-format workflow.*add_workflow.*Export \(API\)/);
    expect(problems["r2:workflows/r2_bad_sidecar.json"]).toMatch(
      /r2_bad_sidecar\.meta\.json: unknown key\(s\) override_mappings/,
    );
    const tools = await client.listTools();
    const batch = tools.find((t) => t.name === "r2_batch");
    expect(batch.inputSchema.properties.batch_size).toMatchObject({ type: "integer", minimum: 1, maximum: 8 });
    expect(tools.find((t) => t.name === "generate_song").inputSchema.required).toEqual(["tags", "lyrics"]);
  });

  it("registers every item of a batch as an asset (an R2 workflow)", async () => {
    const result = await client.call("r2_batch", { batch_size: 3, width: 40, height: 24 });
    expect(result.isError).toBeFalsy();
    const assets = result.structuredContent.assets;
    expect(assets).toHaveLength(3);
    expect(new Set(assets.map((a) => a.filename)).size).toBe(3);
    for (const asset of assets)
      expect(asset).toMatchObject({ kind: "image", width: 40, height: 24, mime_type: "image/png" });
    expect(result.content.filter((c) => c.type === "resource_link")).toHaveLength(3);
  });

  it("generate_song returns an audio asset, with the workflow's own defaults", async () => {
    const result = await client.call("generate_song", {
      tags: "funk, bass",
      lyrics: "[verse]\nla la",
      seconds: 10,
      steps: 5,
    });
    expect(result.isError).toBeFalsy();
    const data = result.structuredContent;
    expect(data.assets[0]).toMatchObject({ kind: "audio", mime_type: "audio/mpeg", output_key: "audio" });
    expect(data.param_sources).toMatchObject({
      tags: "call",
      seconds: "call",
      cfg: "workflow",
      model: "workflow",
      seed: "random",
    });
    expect(data.params.model).toBe("ace_step_v1_3.5b.safetensors");
  });

  it("generate_video returns the video ComfyUI reports under `images` with `animated`", async () => {
    const result = await client.call("generate_video", {
      prompt: "a boat",
      width: 64,
      height: 48,
      length: 5,
      steps: 3,
    });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent.assets[0]).toMatchObject({
      kind: "video",
      mime_type: "video/mp4",
      animated: true,
      output_key: "images",
    });
  });

  it("image_to_image takes base64, an https-only URL policy, and an asset_id; output has the input's size", async () => {
    const fromBase64 = await client.call("image_to_image", {
      image: pngBase64(96, 64),
      prompt: "oil painting",
      steps: 3,
    });
    expect(fromBase64.isError).toBeFalsy();
    expect(fromBase64.structuredContent).toMatchObject({ width: 96, height: 64 });
    const fromDataUrl = await client.call("image_to_image", {
      image: `data:image/png;base64,${pngBase64(32, 16, 9)}`,
      prompt: "x",
      steps: 2,
    });
    expect(fromDataUrl.structuredContent).toMatchObject({ width: 32, height: 16 });
    // An asset of this studio is loaded straight from ComfyUI's output folder.
    const source = (await client.call("generate_image", { prompt: "a fox", width: 80, height: 56, steps: 2 }))
      .structuredContent;
    const fromAsset = await client.call("image_to_image", { image: source.asset_id, prompt: "winter", steps: 2 });
    expect(fromAsset.structuredContent).toMatchObject({ status: "completed", width: 80, height: 56 });
    expect(fromAsset.structuredContent.params.image).toBe(`${source.subfolder}/${source.filename} [output]`);
  });

  it("refuses bad input media with an error that says what to pass instead", async () => {
    const cases = [
      [{ image: "https://127.0.0.1/secret.png" }, /private or local address/],
      [{ image: "http://example.com/x.png" }, /only https URLs/],
      [{ image: "definitely not an image !!" }, /must be an asset_id from your studio, an https URL, or base64 data/],
      [
        { image: Buffer.from("just some text, not pixels").toString("base64") },
        /is not a PNG, JPEG, WebP or GIF image/,
      ],
      [
        { image: "00000000-0000-4000-8000-000000000000" },
        /no asset '00000000-0000-4000-8000-000000000000' in your studio/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const result = await client.call("image_to_image", { prompt: "x", ...args });
      expect(result.isError, JSON.stringify(args)).toBe(true);
      expect(text(result)).toMatch(pattern);
    }
    const song = (await client.call("generate_song", { tags: "a", lyrics: "b", seconds: 5, steps: 2 }))
      .structuredContent;
    const wrongKind = await client.call("image_to_image", { prompt: "x", image: song.asset_id });
    expect(text(wrongKind)).toMatch(/needs an image, but asset .* is an audio/);
  });

  it("regenerate replays through the PARAM bindings: prompt override leaves the negative prompt, seeds by mode", async () => {
    const original = (
      await client.call("generate_image", {
        prompt: "a red fox",
        negative_prompt: "blurry, dark",
        width: 64,
        height: 64,
        steps: 3,
      })
    ).structuredContent;
    const changed = (
      await client.call("regenerate", {
        asset_id: original.asset_id,
        param_overrides: { prompt: "a blue fox", steps: 4 },
      })
    ).structuredContent;
    expect(changed.params).toMatchObject({
      prompt: "a blue fox",
      negative_prompt: "blurry, dark",
      steps: 4,
      width: 64,
    });
    expect(changed.regenerated_from).toBe(original.asset_id);
    expect(changed.tool).toBe("regenerate");
    expect(changed.params.seed).not.toBe(original.params.seed); // omitted → new random seed
    const kept = (
      await client.call("regenerate", { asset_id: original.asset_id, seed: -1, param_overrides: { steps: 5 } })
    ).structuredContent;
    expect(kept.params.seed).toBe(original.params.seed);
    const chosen = (await client.call("regenerate", { asset_id: original.asset_id, seed: 1234 })).structuredContent;
    expect(chosen.params.seed).toBe(1234);
    expect(chosen.asset_id).not.toBe(original.asset_id);
    // The graph ComfyUI received: the negative encoder kept its text (original defect 25).
    const graph = JSON.parse(submittedGraphs().find((g) => g.includes('"a blue fox"')));
    expect(graph["7"].inputs.text).toBe("blurry, dark");
    const typed = await client.call("regenerate", { asset_id: original.asset_id, param_overrides: { steps: "many" } });
    expect(text(typed)).toMatch(/Invalid override\(s\).*steps/);
    const unknown = await client.call("regenerate", {
      asset_id: original.asset_id,
      param_overrides: { colour: "red" },
    });
    expect(text(unknown)).toMatch(/no parameter 'colour'/);
    const missing = await client.call("regenerate", { asset_id: "nope" });
    expect(text(missing)).toMatch(/No asset 'nope'/);
  });

  it("regenerate reseeds literal KSamplerAdvanced noise_seed when a workflow has no seed parameter (defect 27)", async () => {
    const first = (await client.call("r2_advanced", { prompt: "a lighthouse" })).structuredContent;
    expect(first.status).toBe("completed");
    const seeded = (await client.call("regenerate", { asset_id: first.asset_id, seed: 77 })).structuredContent;
    expect(seeded.status).toBe("completed");
    const graphs = submittedGraphs()
      .map((g) => JSON.parse(g))
      .filter((g) => g["3"]?.class_type === "KSamplerAdvanced");
    expect(graphs.at(-1)["3"].inputs.noise_seed).toBe(77);
    await client.call("regenerate", { asset_id: first.asset_id });
    const fresh = submittedGraphs()
      .map((g) => JSON.parse(g))
      .filter((g) => g["3"]?.class_type === "KSamplerAdvanced")
      .at(-1);
    expect(fresh["3"].inputs.noise_seed).not.toBe(77);
    expect(Number.isSafeInteger(fresh["3"].inputs.noise_seed)).toBe(true);
  });

  it("run_workflow: required parameters, unknown overrides, unknown and rejected ids, ComfyUI's own validation", async () => {
    const noPrompt = await client.call("run_workflow", { workflow_id: "generate_image", overrides: { steps: 3 } });
    expect(noPrompt.isError).toBe(true);
    expect(text(noPrompt)).toMatch(/Missing value for parameter\(s\) of workflow 'generate_image': prompt/);
    const ran = await client.call("run_workflow", {
      workflow_id: "generate_image",
      overrides: { prompt: "a cat", steps: 2, width: 64, height: 64, flavour: "spicy" },
    });
    expect(ran.structuredContent).toMatchObject({ status: "completed", tool: "run_workflow", width: 64 });
    expect(ran.structuredContent.ignored_overrides.flavour).toMatch(/has no parameter 'flavour'/);
    const badValue = await client.call("run_workflow", {
      workflow_id: "generate_image",
      overrides: { prompt: "x", width: 100 },
    });
    expect(text(badValue)).toMatch(/width.*multiple of 8/i);
    expect(text(await client.call("run_workflow", { workflow_id: "nope" }))).toMatch(
      /Workflow 'nope' not found\. Available: .*generate_image/,
    );
    expect(text(await client.call("run_workflow", { workflow_id: "r2_ui_export" }))).toMatch(
      /exists but was rejected: this is a UI-format workflow/,
    );
    const broken = await client.call("run_workflow", { workflow_id: "r2_broken_link" });
    expect(broken.isError).toBe(true);
    expect(text(broken)).toMatch(/node 2 \(SaveImage\): Exception when validating node: '99'/);
    const badModel = await client.call("run_workflow", {
      workflow_id: "generate_image",
      overrides: { prompt: "x", model: "nope.safetensors" },
    });
    expect(text(badModel)).toMatch(
      /Model 'nope\.safetensors' is not installed .*Valid values: .*v1-5-pruned-emaonly\.ckpt/,
    );
    const withOptions = await client.call("run_workflow", {
      workflow_id: "generate_image",
      overrides: { prompt: "x", width: 64, height: 64, steps: 2 },
      options: { fast: true },
    });
    expect(withOptions.structuredContent.ignored_overrides.options).toMatch(/ignored/);
    // No placeholder ever reached ComfyUI (original defect 6).
    expect(submittedGraphs().some((g) => g.includes("PARAM_"))).toBe(false);
  });
});
