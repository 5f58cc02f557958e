// add_workflow and remove_workflow (issue #16) end to end, through `wrangler dev` with SDK v1 and
// v2 clients: a UI-format SDXL template pasted in the chat, or fetched by URL from a server this
// test runs, becomes a tool that list_workflows shows and that runs on a fake ComfyUI; a template
// needing a node no backend has gets one answer naming the node and every backend, and nothing is
// stored; remove_workflow removes an added workflow and refuses a bundled one; a token without the
// 'admin' scope is refused with that scope's name.
//
// Two fake backends, so that "every backend" means more than one: "big" has the SDXL refiner
// checkpoint the template needs, "small" has not (a missing model is reported for it, not fatal).
// One gateway serves every case (its start is the slow part).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MODELS, startFakeComfy } from "../fake-comfyui/server.mjs";
import { CLIENTS } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

const template = (name) => readFileSync(`test/fixtures/templates/${name}.json`, "utf8");
const SDXL = template("sdxl_simple_example");
const ESRGAN = template("esrgan_example");
const REFINER = "sd_xl_refiner_1.0.safetensors";

const OWNER_TOKEN = randomBytes(24).toString("hex");
/** A user who may generate and publish but not administer the gateway. */
const HELPER_TOKEN = randomBytes(24).toString("hex");

const text = (result) => result.content?.find((c) => c.type === "text")?.text ?? "";
const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const ok = (result) => {
  expect(result.isError, text(result)).toBeFalsy();
  return result.structuredContent;
};
/**
 * Where a reported parameter writes, as "node.input" strings. The interface names one input
 * (node_id, input); a parameter bound to several inputs may also list them all (bindings).
 */
const targets = (param) => [
  ...(param.node_id !== undefined ? [`${param.node_id}.${param.input}`] : []),
  ...(param.bindings ?? []).map((b) => (typeof b === "string" ? b : `${b.node_id}.${b.input}`)),
];

let fakes;
let gateway;
let files;
let filesOrigin;
/** Requests the file server answered, by path: proves the gateway fetched the URL itself. */
const served = [];

beforeAll(async () => {
  fakes = {
    big: await startFakeComfy({
      checkpoints: [...DEFAULT_MODELS.checkpoints, REFINER],
      stepDelayMs: 2,
      nodeDelayMs: 1,
    }),
    small: await startFakeComfy({ stepDelayMs: 2, nodeDelayMs: 1 }),
  };
  // The workflow by URL: any path ending in .json serves the SDXL template, so that each client
  // gets a URL of its own (the workflow's id comes from the file name).
  files = createServer((request, response) => {
    served.push(request.url);
    if (!request.url.endsWith(".json")) return response.writeHead(404).end();
    response.writeHead(200, { "Content-Type": "application/json" }).end(SDXL);
  });
  await new Promise((resolve) => files.listen(0, "127.0.0.1", resolve));
  filesOrigin = `http://127.0.0.1:${files.address().port}`;
  gateway = await startGateway({
    comfyUrl: fakes.big.url,
    vars: {
      COMFYUI_BACKENDS: JSON.stringify(Object.entries(fakes).map(([name, fake]) => ({ name, url: fake.url }))),
      MCP_TOKENS: `owner:${OWNER_TOKEN},helper:${HELPER_TOKEN}:generate+publish`,
      // The SSRF rules refuse http and loopback; the operator trusts this one origin (the test's).
      COMFY_MCP_FETCH_ALLOW_ORIGINS: filesOrigin,
      COMFY_MCP_WAIT_SECONDS: "30",
    },
  });
});

afterAll(async () => {
  await gateway?.stop();
  await Promise.all(Object.values(fakes ?? {}).map((fake) => fake.close()));
  await new Promise((resolve) => (files ? files.close(resolve) : resolve()));
});

describe.each(CLIENTS)("%s", (label, connect) => {
  const suffix = label.includes("v1") ? "v1" : "v2";
  const keyUrl = () => `${gateway.url}/mcp-key`;
  let owner;
  beforeAll(async () => {
    owner = await connect(keyUrl(), bearer(OWNER_TOKEN));
  });
  afterAll(async () => {
    await owner?.close();
  });

  const catalogue = async () => ok(await owner.call("list_workflows"));
  /** The client's next tools/list: an added or removed tool shows there at once, no reconnecting. */
  const toolNames = async () => (await owner.listTools()).map((tool) => tool.name);

  /** The checks every added SDXL template passes: proposals, backends, catalogue, tools/list, a run. */
  async function expectUsableSdxl(added, { workflowId, from }) {
    expect(added).toMatchObject({ workflow_id: workflowId, format: "ui", stored: true });
    expect(added.tool).toEqual(expect.any(String));
    const params = Object.fromEntries(added.parameters.map((p) => [p.name, p]));
    // The SDXL template's base and refiner samplers share their settings and prompts, so each is
    // one parameter bound to both; two different checkpoints make 'model' a guess, so it is left out.
    expect(Object.keys(params).sort()).toEqual(
      ["cfg", "height", "negative_prompt", "prompt", "sampler_name", "scheduler", "seed", "steps", "width"].sort(),
    );
    expect(params.prompt).toMatchObject({
      type: "str",
      default: "evening sunset scenery blue sky nature, glass bottle with a galaxy in it",
    });
    expect(params.steps).toMatchObject({ type: "int", default: 25 });
    expect(params.width).toMatchObject({ type: "int", default: 1024 });
    expect(targets(params.seed)).toContain("10.noise_seed");
    expect(targets(params.prompt)).toContain("6.text");
    expect(added.notes.join("\n")).toMatch(/'model'/);
    const backends = Object.fromEntries(added.backends.map((b) => [b.name, b]));
    expect(backends.big).toMatchObject({ ok: true, missing_nodes: [], missing_models: [], problems: [] });
    expect(backends.small).toMatchObject({ ok: true, missing_nodes: [], missing_models: [REFINER] });

    const listed = (await catalogue()).workflows.find((w) => w.id === workflowId);
    expect(listed).toMatchObject({ source: "r2", tool: added.tool, added: { by: "owner", from } });
    expect(Date.parse(listed.added.at)).toBeGreaterThan(Date.now() - 5 * 60_000);
    expect(await toolNames()).toContain(added.tool);

    const before = fakes.big.prompts.size;
    const run = ok(
      await owner.call(added.tool, { prompt: `a lighthouse (${suffix})`, width: 64, height: 64, steps: 3 }),
    );
    expect(run).toMatchObject({ status: "completed", width: 64, height: 64 });
    // Routed to the backend that has both checkpoints, with the call's values in place.
    expect(fakes.big.prompts.size).toBe(before + 1);
    const graph = [...fakes.big.prompts.values()].at(-1).prompt;
    expect(graph["5"].inputs).toMatchObject({ width: 64, height: 64 });
    expect(graph["6"].inputs.text).toBe(`a lighthouse (${suffix})`);
    expect(graph["15"].inputs.text).toBe(`a lighthouse (${suffix})`);
    expect(graph["12"].inputs.ckpt_name).toBe(REFINER);
  }

  it("adds the UI-format SDXL template pasted inline: a tool with proposed parameters, listed, and it runs", async () => {
    const workflowId = `sdxl_inline_${suffix}`;
    // Pasted as the file's text with one client, as a JSON object with the other: both are "inline".
    const workflow = suffix === "v1" ? SDXL : JSON.parse(SDXL);
    const added = ok(await owner.call("add_workflow", { workflow, workflow_id: workflowId, name: `SDXL ${suffix}` }));
    await expectUsableSdxl(added, { workflowId, from: "inline" });

    // The id is taken now: a second add says so, and replace: true overwrites it.
    const again = await owner.call("add_workflow", { workflow: JSON.parse(SDXL), workflow_id: workflowId });
    expect(again.isError).toBe(true);
    expect(text(again)).toMatch(/replace/);
    const replaced = ok(
      await owner.call("add_workflow", { workflow: JSON.parse(SDXL), workflow_id: workflowId, replace: true }),
    );
    expect(replaced.workflow_id).toBe(workflowId);
  });

  it("adds the same template by URL, fetched by the gateway, its id taken from the file name", async () => {
    const url = `${filesOrigin}/shared/sdxl_url_${suffix}.json`;
    const added = ok(await owner.call("add_workflow", { url }));
    expect(served).toContain(`/shared/sdxl_url_${suffix}.json`);
    await expectUsableSdxl(added, { workflowId: `sdxl_url_${suffix}`, from: url });
  });

  it("refuses a template needing a node no backend has, in one answer naming the node and every backend; nothing is stored", async () => {
    const before = (await catalogue()).workflows.map((w) => w.id).sort();
    const refused = await owner.call("add_workflow", { workflow: JSON.parse(ESRGAN), workflow_id: `esrgan_${suffix}` });
    expect(refused.isError).toBe(true);
    const answer = text(refused);
    // UpscaleModelLoader (node 13) and ImageUpscaleWithModel (node 14) are not core in 0.3.64's
    // recorded schemas, which both fakes serve.
    expect(answer).toMatch(/UpscaleModelLoader/);
    expect(answer).toMatch(/node 13\b/);
    expect(answer).toMatch(/ImageUpscaleWithModel/);
    expect(answer).toMatch(/\bbig\b/);
    expect(answer).toMatch(/\bsmall\b/);
    expect(answer).toMatch(/[Nn]othing was stored/);
    const after = (await catalogue()).workflows.map((w) => w.id).sort();
    expect(after).toEqual(before);
    expect(await toolNames()).not.toContain(`esrgan_${suffix}`);
  });

  it("remove_workflow removes an added workflow and its tool; a bundled one is refused", async () => {
    const workflowId = `sdxl_url_${suffix}`;
    const { tool } = (await catalogue()).workflows.find((w) => w.id === workflowId);
    const removed = ok(await owner.call("remove_workflow", { workflow_id: workflowId }));
    expect(removed).toMatchObject({ workflow_id: workflowId, removed: true, message: expect.any(String) });
    expect((await catalogue()).workflows.map((w) => w.id)).not.toContain(workflowId);
    expect(await toolNames()).not.toContain(tool);

    const twice = await owner.call("remove_workflow", { workflow_id: workflowId });
    expect(twice.isError).toBe(true);

    const bundled = await owner.call("remove_workflow", { workflow_id: "generate_image" });
    expect(bundled.isError).toBe(true);
    expect(text(bundled)).toMatch(/bundled/);
    expect((await catalogue()).workflows.find((w) => w.id === "generate_image")).toMatchObject({ source: "bundled" });
  });

  it("a token without the 'admin' scope is refused add_workflow and remove_workflow, naming the scope", async () => {
    const helper = await connect(keyUrl(), bearer(HELPER_TOKEN));
    try {
      const add = await helper.call("add_workflow", { workflow: JSON.parse(SDXL), workflow_id: `helper_${suffix}` });
      expect(add.isError).toBe(true);
      expect(text(add)).toMatch(/'admin' scope/);
      const remove = await helper.call("remove_workflow", { workflow_id: `sdxl_inline_${suffix}` });
      expect(remove.isError).toBe(true);
      expect(text(remove)).toMatch(/'admin' scope/);
      // Refused before anything happened: the owner's workflow is still there, the helper's never was.
      const ids = (await catalogue()).workflows.map((w) => w.id);
      expect(ids).toContain(`sdxl_inline_${suffix}`);
      expect(ids).not.toContain(`helper_${suffix}`);
    } finally {
      await helper.close();
    }
  });
});

describe("add_workflow, once per gateway", () => {
  let owner;
  beforeAll(async () => {
    owner = await CLIENTS[1][1](`${gateway.url}/mcp-key`, bearer(OWNER_TOKEN));
  });
  afterAll(async () => {
    await owner?.close();
  });
  /** The graph a backend received whose node 6 had this text (each call here writes its own). */
  const graphWithText = (text) =>
    Object.values(fakes)
      .flatMap((fake) => [...fake.prompts.values()])
      .find((entry) => entry.prompt["6"]?.inputs.text === text)?.prompt;

  it("an API-format workflow keeps its own PARAM_* placeholders as its parameters", async () => {
    // The bundled generate_image graph: API format, placeholders already chosen by its author.
    const workflow = JSON.parse(readFileSync("workflows/generate_image.json", "utf8"));
    const added = ok(await owner.call("add_workflow", { workflow, workflow_id: "api_with_placeholders" }));
    expect(added).toMatchObject({ workflow_id: "api_with_placeholders", format: "api", stored: true });
    expect(added.parameters.map((p) => p.name)).toEqual(expect.arrayContaining(["prompt", "seed", "width"]));
    // Every value given: what a missing one falls back to is not this test's subject.
    const run = ok(
      await owner.call(added.tool, {
        prompt: "placeholders",
        negative_prompt: "blurry",
        model: "v1-5-pruned-emaonly.ckpt",
        width: 64,
        height: 64,
        steps: 2,
        cfg: 7,
        sampler_name: "euler",
        scheduler: "normal",
        denoise: 1,
        seed: 3,
      }),
    );
    expect(run.status).toBe("completed");
  });

  it('an explicit parameter map ({name: "node_id.input"}) replaces the proposals', async () => {
    const added = ok(
      await owner.call("add_workflow", {
        workflow: JSON.parse(template("default")),
        workflow_id: "sd15_mapped",
        parameters: {
          subject: "6.text",
          size: "5.width",
          model: "4.ckpt_name",
        },
      }),
    );
    const params = Object.fromEntries(added.parameters.map((p) => [p.name, p]));
    expect(Object.keys(params).sort()).toEqual(["model", "size", "subject"]);
    expect(params.subject).toMatchObject({
      type: "str",
      default: "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
    });
    expect(params.size).toMatchObject({ type: "int", default: 512 });
    expect(targets(params.size)).toContain("5.width");
    const listed = ok(await owner.call("list_workflows")).workflows.find((w) => w.id === "sd15_mapped");
    expect(listed.inputs.find((i) => i.name === "size")).toMatchObject({ type: "int", default: 512 });
    // The template's checkpoint is on neither fake: the map made it a parameter, so a call can fix that.
    const run = ok(
      await owner.call(added.tool, { subject: "a mapped prompt", size: 64, model: "v1-5-pruned-emaonly.ckpt" }),
    );
    expect(run.status).toBe("completed");
    const graph = graphWithText("a mapped prompt");
    expect(graph["6"].inputs.text).toBe("a mapped prompt");
    expect(graph["5"].inputs.width).toBe(64);
    // Not in the map, so left as the template has it.
    expect(graph["5"].inputs.height).toBe(512);
    expect(graph["3"].inputs.steps).toBe(20);
  });
});
