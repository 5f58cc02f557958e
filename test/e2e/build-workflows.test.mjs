// The build step (scripts/build-workflows.mjs) on a copy of workflows/ holding UI-format files
// (issue #16): a template becomes a bundled workflow with the proposed parameters, the author's
// PARAM_* placeholders survive the conversion, and a template it cannot convert is reported by
// name with the converter's reason and left out, never failing the build. Run as `npm run
// workflows` runs it (a child Node 22 process), writing to a temporary --out so that the real
// bundle is untouched.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkflow } from "../../src/workflows/definition.ts";

const TEMPLATES = "test/fixtures/templates";
const SCHEMAS = "test/fake-comfyui/samples/object_info.json";

/** The generated module's two lists (it is JSON in a TypeScript wrapper). */
function readBundle(path) {
  const source = readFileSync(path, "utf8");
  const list = (name) => JSON.parse(source.match(new RegExp(`export const ${name}: \\w+\\[\\] = ([\\s\\S]*?);\\n`))[1]);
  return { bundled: list("BUNDLED_WORKFLOWS"), rejected: list("REJECTED_WORKFLOWS") };
}

async function build(directory, extra = [], env = {}) {
  const out = join(directory, "..", `bundle-${Math.random().toString(36).slice(2)}.ts`);
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ["scripts/build-workflows.mjs", "--dir", directory, "--out", out, ...extra],
    { env: { ...process.env, COMFY_OBJECT_INFO: "", ...env } },
  );
  return { stdout, stderr, ...readBundle(out) };
}

/** The workflow as the Worker will see it: the bundled file through the Worker's own parser. */
function definition(file) {
  const parsed = parseWorkflow({ ...file, source: "bundled" });
  expect(parsed.ok, parsed.problem).toBe(true);
  return parsed.workflow;
}

let root;
let directory;
/** One build of the directory, shared by the tests that only read it. */
let first;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "build-workflows-"));
  directory = join(root, "workflows");
  cpSync("workflows", directory, { recursive: true });
  cpSync(join(TEMPLATES, "default.json"), join(directory, "sd15_ui.json"));
  cpSync(join(TEMPLATES, "esrgan_example.json"), join(directory, "esrgan_example.json"));
  // The SD 1.5 template with placeholders typed into its widgets, as an author would in ComfyUI.
  const ui = JSON.parse(readFileSync(join(TEMPLATES, "default.json"), "utf8"));
  const widgets = (id, values) => {
    ui.nodes.find((node) => node.id === id).widgets_values = values;
  };
  widgets(6, ["PARAM_PROMPT"]);
  widgets(5, ["PARAM_INT_WIDTH", "PARAM_INT_HEIGHT", 1]);
  widgets(3, ["PARAM_INT_SEED", "randomize", 12, 7, "PARAM_SAMPLER_NAME", "normal", 1]);
  writeFileSync(join(directory, "sd15_placeholders.json"), JSON.stringify(ui));
  writeFileSync(
    join(directory, "sd15_placeholders.meta.json"),
    JSON.stringify({ name: "SD 1.5 with my parameters", parameters: { sampler_name: { default: "euler" } } }),
  );
  first = await build(directory);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("scripts/build-workflows.mjs with UI-format files in workflows/", () => {
  it("converts a UI-format template into a workflow with the proposed parameters, and says which schemas it used", async () => {
    const { stdout, bundled } = first;
    expect(stdout).toContain("node schemas from the recorded ComfyUI 0.3.64 schemas");
    const ids = bundled.map((file) => file.id);
    // The API-format workflows are bundled as before, next to the converted ones.
    expect(ids).toEqual(expect.arrayContaining(["generate_image", "image_to_image", "sd15_placeholders", "sd15_ui"]));

    const file = bundled.find((f) => f.id === "sd15_ui");
    // An API graph, no longer nodes/links: the Worker needs no converter for bundled files.
    expect(file.graph.nodes).toBeUndefined();
    expect(file.graph["3"].class_type).toBe("KSampler");
    const workflow = definition(file);
    const params = Object.fromEntries(workflow.params.map((p) => [p.name, p]));
    expect(Object.keys(params).sort()).toEqual(
      [
        "cfg",
        "height",
        "model",
        "negative_prompt",
        "prompt",
        "sampler_name",
        "scheduler",
        "seed",
        "steps",
        "width",
      ].sort(),
    );
    // The template's values are the defaults.
    expect(params.prompt.default).toBe("beautiful scenery nature glass bottle landscape, , purple galaxy bottle,");
    expect(params.negative_prompt.default).toBe("text, watermark");
    expect(params.steps).toMatchObject({ type: "int", default: 20 });
    expect(params.cfg).toMatchObject({ type: "float", default: 8 });
    expect(params.sampler_name.default).toBe("euler");
    expect(params.width).toMatchObject({ type: "int", default: 512 });
    expect(params.model.default).toBe("v1-5-pruned-emaonly-fp16.safetensors");
    expect(file.graph["3"].inputs.steps).toBe("PARAM_INT_STEPS");
    expect(file.graph["3"].inputs.positive).toEqual(["6", 0]);
  });

  it("keeps the author's PARAM_* placeholders instead of proposing, with the sidecar's rules", async () => {
    const { bundled } = first;
    const file = bundled.find((f) => f.id === "sd15_placeholders");
    const workflow = definition(file);
    expect(workflow.title).toBe("SD 1.5 with my parameters");
    expect(workflow.params.map((p) => p.name).sort()).toEqual(["height", "prompt", "sampler_name", "seed", "width"]);
    expect(workflow.params.find((p) => p.name === "sampler_name").default).toBe("euler");
    // What the author left literal stays literal.
    expect(file.graph["3"].inputs).toMatchObject({ steps: 12, cfg: 7, scheduler: "normal" });
    expect(file.graph["7"].inputs.text).toBe("text, watermark");
  });

  it("reports a UI-format file it cannot convert by name, with the converter's reason, and bundles the rest", async () => {
    const { stderr, bundled, rejected } = first;
    expect(bundled.map((f) => f.id)).not.toContain("esrgan_example");
    const entry = rejected.find((r) => r.file.endsWith("/esrgan_example.json"));
    expect(entry.problem).toContain("UpscaleModelLoader");
    expect(entry.problem).toContain("does not exist on this backend");
    expect(stderr).toMatch(/rejected \S*esrgan_example\.json: .*class 'UpscaleModelLoader' does not exist/);
  });

  it("takes node schemas from --object-info or COMFY_OBJECT_INFO, and a missing file refuses only the UI-format files", async () => {
    const byOption = await build(directory, ["--object-info", SCHEMAS]);
    expect(byOption.stdout).toMatch(/node schemas from \S*object_info\.json/);
    expect(byOption.bundled.map((f) => f.id)).toContain("sd15_ui");

    const byEnv = await build(directory, [], { COMFY_OBJECT_INFO: SCHEMAS });
    expect(byEnv.stdout).toContain("($COMFY_OBJECT_INFO)");

    const missing = await build(directory, ["--object-info", join(root, "nowhere.json")]);
    const ids = missing.bundled.map((f) => f.id);
    expect(ids).toContain("generate_image");
    expect(ids).not.toContain("sd15_ui");
    expect(missing.rejected.find((r) => r.file.endsWith("/sd15_ui.json")).problem).toMatch(
      /node schemas .*nowhere\.json: file not found/,
    );
  });
});
