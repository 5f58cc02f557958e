// The studio remembers, end to end over wrangler dev: assets survive a gateway restart, expire on
// time, list/filter/page, carry sessions, download through signed URLs (tamper and expiry
// refused), read as resources, show inline with view_image, and defaults layer as documented.
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { connectV1, connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

const SIGNING_KEY = "test-signing-key-not-secret";
const VARS = { COMFY_MCP_WAIT_SECONDS: "30", COMFY_MCP_DEFAULT_IMAGE_STEPS: "25", DOWNLOAD_SIGNING_KEY: SIGNING_KEY };

let fake;
let gateway;
let stateDir;
let client;

const text = (result) => result.content?.find((c) => c.type === "text")?.text ?? "";
const image = (args = {}) =>
  client.call("generate_image", { prompt: "a harbour", width: 64, height: 48, steps: 2, ...args });

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1, nodeDelayMs: 1 });
  stateDir = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-assets-"));
  gateway = await startGateway({ comfyUrl: fake.url, persistDir: stateDir, vars: VARS });
  client = await connectV2(gateway.mcpUrl);
});

afterAll(async () => {
  await client?.close();
  await gateway?.stop();
  await fake?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

describe("assets", () => {
  it("lists newest first with filters and a cursor, and refuses bad limits and cursors", async () => {
    const made = [];
    for (let i = 0; i < 3; i++) made.push((await image()).structuredContent.asset_id);
    const song = (await client.call("generate_song", { tags: "a", lyrics: "b", seconds: 5, steps: 2 }))
      .structuredContent;
    const first = (await client.call("list_assets", { limit: 2 })).structuredContent;
    expect(first.assets.map((a) => a.asset_id)).toEqual([song.asset_id, made[2]]);
    expect(first.next_cursor).toBeTruthy();
    const second = (await client.call("list_assets", { limit: 2, cursor: first.next_cursor })).structuredContent;
    expect(second.assets.map((a) => a.asset_id)).toEqual([made[1], made[0]]);
    const audio = (await client.call("list_assets", { media_type: "audio" })).structuredContent;
    expect(audio.assets.map((a) => a.asset_id)).toEqual([song.asset_id]);
    expect(audio.assets[0].duration).toBeGreaterThan(0);
    const images = (await client.call("list_assets", { workflow_id: "generate_image", limit: 100 })).structuredContent;
    expect(images.assets.every((a) => a.workflow_id === "generate_image")).toBe(true);
    for (const limit of [0, 101, 2.5])
      expect((await client.call("list_assets", { limit })).isError, String(limit)).toBe(true);
    expect(text(await client.call("list_assets", { limit: 1, cursor: "bogus" }))).toMatch(
      /cursor is not one this studio issued/,
    );
  });

  it("get_asset_metadata gives full provenance: typed params, seed, the submitted graph, ComfyUI's history", async () => {
    const made = (await image({ seed: 4242 })).structuredContent;
    const meta = (await client.call("get_asset_metadata", { asset_id: made.asset_id })).structuredContent;
    expect(meta).toMatchObject({
      asset_id: made.asset_id,
      width: 64,
      height: 48,
      seed: 4242,
      workflow_id: "generate_image",
      metadata: { tool: "generate_image" },
    });
    expect(meta.params).toMatchObject({ prompt: "a harbour", steps: 2, seed: 4242 });
    expect(meta.submitted_workflow["3"].inputs.seed).toBe(4242);
    expect(meta.comfy_history.status.status_str).toBe("success");
    // The provenance says how the job was settled, as the job result did.
    expect(meta.completed_via).toBe(made.completed_via);
    expect(["event", "reconcile", "reconnect", "get_job"]).toContain(meta.completed_via);
    expect(text(await client.call("get_asset_metadata", { asset_id: "nope" }))).toMatch(/No asset 'nope'/);
  });

  it("downloads through signed URLs with type, length and ranges; tampered and expired links are refused", async () => {
    const made = (await image()).structuredContent;
    const response = await fetch(made.asset_url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/png");
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(bytes.length).toBe(made.bytes_size);
    expect(Number(response.headers.get("content-length"))).toBe(made.bytes_size);
    const ranged = await fetch(made.asset_url, { headers: { Range: "bytes=0-15" } });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(16);
    const url = new URL(made.asset_url);
    const tampered = new URL(url);
    tampered.searchParams.set("exp", String(Number(url.searchParams.get("exp")) + 3600));
    const refused = await fetch(tampered);
    expect(refused.status).toBe(403);
    expect((await refused.json()).message).toMatch(/not valid/);
    const past = Math.floor(Date.now() / 1000) - 10;
    const sig = createHmac("sha256", SIGNING_KEY).update(`owner\n${made.asset_id}\n${past}`).digest("hex");
    const expired = await fetch(`${gateway.url}/assets/${made.asset_id}?u=owner&exp=${past}&sig=${sig}`);
    expect(expired.status).toBe(403);
    expect((await expired.json()).message).toMatch(/expired/);
    const otherUser = createHmac("sha256", SIGNING_KEY)
      .update(`mallory\n${made.asset_id}\n${past + 9999}`)
      .digest("hex");
    expect(
      (await fetch(`${gateway.url}/assets/${made.asset_id}?u=mallory&exp=${past + 9999}&sig=${otherUser}`)).status,
    ).toBe(404);
  });

  it("exposes assets as resources: images inline, others as metadata with a download URL", async () => {
    const made = (await image()).structuredContent;
    const song = (await client.call("generate_song", { tags: "a", lyrics: "b", seconds: 5, steps: 2 }))
      .structuredContent;
    const listed = await client.listResources();
    expect(listed.resources.map((r) => r.uri)).toEqual(
      expect.arrayContaining([`comfy://assets/${made.asset_id}`, `comfy://assets/${song.asset_id}`]),
    );
    const png = await client.readResource(`comfy://assets/${made.asset_id}`);
    expect(Buffer.from(png.contents[0].blob, "base64").length).toBe(made.bytes_size);
    const mp3 = await client.readResource(`comfy://assets/${song.asset_id}`);
    expect(JSON.parse(mp3.contents[0].text)).toMatchObject({
      asset_id: song.asset_id,
      kind: "audio",
      download_url: expect.stringContaining("/assets/"),
    });
  });

  it("view_image returns a thumbnail within budget plus a link; metadata mode; audio refused with its link", async () => {
    const made = (await image({ width: 640, height: 480 })).structuredContent;
    const view = await client.call("view_image", { asset_id: made.asset_id, max_dim: 256, max_b64_chars: 20_000 });
    expect(view.isError).toBeFalsy();
    const inline = view.content.find((c) => c.type === "image");
    expect(inline.data.length).toBeLessThanOrEqual(20_000);
    expect(view.structuredContent.thumbnail).toMatchObject({ width: 256, height: 192 });
    expect(JSON.stringify(view.structuredContent)).not.toContain(inline.data.slice(0, 40));
    expect(view.content.some((c) => c.type === "resource_link")).toBe(true);
    const meta = await client.call("view_image", { asset_id: made.asset_id, mode: "metadata" });
    expect(meta.content.some((c) => c.type === "image")).toBe(false);
    expect(meta.structuredContent).toMatchObject({ width: 640, height: 480 });
    const song = (await client.call("generate_song", { tags: "a", lyrics: "b", seconds: 5, steps: 2 }))
      .structuredContent;
    const refused = await client.call("view_image", { asset_id: song.asset_id });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toMatch(/is audio .*not an image.*\/assets\//s);
  });

  it("tags assets with the client's session and filters by it", async () => {
    const tagged = await connectV1(gateway.mcpUrl, { "X-Session-Tag": "session-a" });
    try {
      const mine = (await tagged.call("generate_image", { prompt: "tagged", width: 64, height: 64, steps: 2 }))
        .structuredContent;
      expect(mine.assets[0].session).toBe("session-a");
      const current = (await tagged.call("list_assets", { session_id: "current", limit: 100 })).structuredContent;
      expect(current.assets.map((a) => a.asset_id)).toEqual([mine.asset_id]);
      expect(text(await client.call("list_assets", { session_id: "current" }))).toMatch(/sends no session tag/);
    } finally {
      await tagged.close();
    }
  });
});

describe("defaults", () => {
  it("layers per call > runtime > persisted > env > workflow > built-in, row by row", async () => {
    const steps = async (args = {}) => {
      const result = (await image({ steps: undefined, ...args })).structuredContent;
      return [result.params.steps, result.param_sources.steps];
    };
    // env (COMFY_MCP_DEFAULT_IMAGE_STEPS=25) beats the workflow's 20 and the built-in 20
    expect(await steps()).toEqual([25, "env"]);
    let defaults = (await client.call("get_defaults")).structuredContent;
    expect([defaults.image.steps, defaults.sources.image.steps]).toEqual([25, "env"]);
    // unset, cfg is what the image workflows use themselves (get_defaults follows fillParameters)
    expect([defaults.image.cfg, defaults.sources.image.cfg]).toEqual([8, "workflow"]);
    // persisted beats env
    expect((await client.call("set_defaults", { image: { steps: 30 }, persist: true })).structuredContent.success).toBe(
      true,
    );
    expect(await steps()).toEqual([30, "persisted"]);
    // runtime beats persisted
    await client.call("set_defaults", { image: { steps: 35 } });
    expect(await steps()).toEqual([35, "runtime"]);
    defaults = (await client.call("get_defaults")).structuredContent;
    expect([defaults.image.steps, defaults.sources.image.steps]).toEqual([35, "runtime"]);
    // the call beats everything
    expect(await steps({ steps: 3 })).toEqual([3, "call"]);
    // removing the runtime value uncovers the persisted one
    await client.call("set_defaults", { image: { steps: null } });
    expect(await steps()).toEqual([30, "persisted"]);
    // a workflow's own default sits between env and built-in: image_to_image denoise 0.6, not 1.0
    const png = (await image()).structuredContent;
    const img2img = (await client.call("image_to_image", { image: png.asset_id, prompt: "x", steps: 2 }))
      .structuredContent;
    expect([img2img.params.denoise, img2img.param_sources.denoise]).toEqual([0.6, "workflow"]);
  });

  it("checks keys, types and installed models per namespace, and changes nothing in a namespace with an error", async () => {
    const bad = await client.call("set_defaults", {
      image: { steps: "many" },
      video: { model: "wan2.1_t2v_1.3B_fp16.safetensors" },
    });
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/image: 'steps' must be a number/);
    expect(text(bad)).toMatch(/Applied: video/);
    expect(text(await client.call("set_defaults", { image: { flavour: 1 } }))).toMatch(
      /'flavour' is not an image default \(known: .*steps/,
    );
    const model = await client.call("set_defaults", { image: { model: "missing.safetensors" } });
    expect(text(model)).toMatch(
      /model 'missing\.safetensors' is not installed in ComfyUI's checkpoints .*v1-5-pruned-emaonly\.ckpt/,
    );
    const defaults = (await client.call("get_defaults")).structuredContent;
    expect(defaults.image.model).toBe("v1-5-pruned-emaonly.ckpt");
    expect(defaults.video.model).toBe("wan2.1_t2v_1.3B_fp16.safetensors");
  });
});

describe("the studio survives a gateway restart", () => {
  it("keeps assets, persisted defaults and working download links; runtime defaults are gone", async () => {
    const made = (await image()).structuredContent;
    await client.call("set_defaults", { image: { cfg: 6.5 }, persist: true });
    await client.call("set_defaults", { image: { sampler_name: "ddim" } });
    await client.close();
    await gateway.stop({ keepState: true });
    gateway = await startGateway({ comfyUrl: fake.url, persistDir: stateDir, vars: VARS });
    client = await connectV2(gateway.mcpUrl);
    const meta = (await client.call("get_asset_metadata", { asset_id: made.asset_id })).structuredContent;
    expect(meta).toMatchObject({ asset_id: made.asset_id, width: 64, height: 48 });
    expect((await fetch(meta.download_url)).status).toBe(200);
    const defaults = (await client.call("get_defaults")).structuredContent;
    expect([defaults.image.cfg, defaults.sources.image.cfg]).toEqual([6.5, "persisted"]);
    expect(defaults.sources.image.sampler_name).toBe("workflow");
  });
});

describe("retention", () => {
  it("forgets assets after ASSET_TTL_HOURS (unit tests check the alarm deletes the rows)", async () => {
    const shortState = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-ttl-"));
    const short = await startGateway({
      comfyUrl: fake.url,
      persistDir: shortState,
      vars: { ...VARS, ASSET_TTL_HOURS: "0.0005" },
    });
    const ttlClient = await connectV1(short.mcpUrl);
    try {
      const made = (await ttlClient.call("generate_image", { prompt: "brief", width: 64, height: 64, steps: 2 }))
        .structuredContent;
      expect(Date.parse(made.assets[0].expires_at) - Date.parse(made.assets[0].created_at)).toBe(1800);
      expect((await ttlClient.call("list_assets")).structuredContent.count).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect((await ttlClient.call("list_assets")).structuredContent.count).toBe(0);
      expect((await ttlClient.call("get_asset_metadata", { asset_id: made.asset_id })).isError).toBe(true);
      expect((await fetch(made.asset_url)).status).toBe(404);
    } finally {
      await ttlClient.close();
      await short.stop();
      rmSync(shortState, { recursive: true, force: true });
    }
  });
});
