// End to end over real HTTP: a real `wrangler dev` gateway, the fake ComfyUI, and both MCP client
// generations. Every behaviour of issue #2 item 8 is exercised once per client.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { CLIENTS } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

let fake;
let gateway;

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 10, nodeDelayMs: 2 });
  gateway = await startGateway({ comfyUrl: fake.url, vars: { COMFY_MCP_WAIT_SECONDS: "20" } });
});

afterAll(async () => {
  await gateway?.stop();
  await fake?.close();
});

const text = (result) => result.content?.find((c) => c.type === "text")?.text ?? "";

async function pngSize(url) {
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const view = new DataView(bytes.buffer);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

describe.each(CLIENTS)("%s", (_label, connect) => {
  let client;
  beforeAll(async () => {
    client = await connect(gateway.mcpUrl);
  });
  afterAll(async () => {
    await client?.close();
  });

  it("lists the tools", async () => {
    const names = (await client.listTools()).map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "generate_image",
        "get_job",
        "get_queue_status",
        "cancel_job",
        "list_models",
        "get_defaults",
      ]),
    );
  });

  it("generate_image returns an asset whose bytes come from ComfyUI, while streaming progress", async () => {
    const progress = [];
    const result = await client.call(
      "generate_image",
      { prompt: "a red fox in snow", width: 384, height: 256, steps: 12 },
      { onprogress: (p) => progress.push(p) },
    );
    expect(result.isError).toBeFalsy();
    const data = result.structuredContent;
    expect(data.status).toBe("completed");
    expect(data.assets).toHaveLength(1);
    expect(data).toMatchObject({ mime_type: "image/png", width: 384, height: 256, workflow_id: "generate_image" });
    expect(JSON.parse(text(result))).toEqual(data);
    expect(result.content.some((c) => c.type === "resource_link" && c.uri === `comfy://assets/${data.asset_id}`)).toBe(
      true,
    );
    // The registered size is the file's: fetch it from the fake's /view and read its header.
    const asset = data.assets[0];
    const view = `${fake.url}/view?filename=${encodeURIComponent(asset.filename)}&subfolder=${encodeURIComponent(asset.subfolder)}&type=${asset.folder_type}`;
    expect(await pngSize(view)).toEqual({ width: 384, height: 256 });
    // The resource_link resolves: the asset's bytes, read through the gateway.
    const resource = await client.readResource(`comfy://assets/${data.asset_id}`);
    const blob = Buffer.from(resource.contents[0].blob, "base64");
    expect(resource.contents[0].mimeType).toBe("image/png");
    expect(blob.length).toBe(asset.bytes_size);
    expect([blob.readUInt32BE(16), blob.readUInt32BE(20)]).toEqual([384, 256]);
    // Progress: several notifications, strictly increasing, ending at 100, with sampler steps.
    expect(progress.length).toBeGreaterThan(3);
    for (let i = 1; i < progress.length; i++) expect(progress[i].progress).toBeGreaterThan(progress[i - 1].progress);
    expect(progress.at(-1).progress).toBe(100);
    expect(progress.some((p) => /step \d+\/12/.test(p.message ?? ""))).toBe(true);
    // A fresh seed per call (ComfyUI would otherwise serve the cached result).
    const again = await client.call("generate_image", {
      prompt: "a red fox in snow",
      width: 384,
      height: 256,
      steps: 12,
    });
    expect(again.structuredContent.params.seed).not.toBe(data.params.seed);
    expect(again.structuredContent.asset_id).not.toBe(data.asset_id);
  });

  it("a wait that runs out returns a job handle, and get_job completes it with the assets", async () => {
    const started = await client.call("generate_image", {
      prompt: "a slow cathedral",
      steps: 150,
      width: 64,
      height: 64,
      wait_seconds: 0.3,
    });
    expect(started.isError).toBeFalsy();
    const handle = started.structuredContent;
    expect(["queued", "running"]).toContain(handle.status);
    expect(handle.message).toMatch(/get_job\(prompt_id='[0-9a-f-]{36}'\)/);
    expect(handle.assets).toEqual([]);
    const progress = [];
    const done = await client.call(
      "get_job",
      { prompt_id: handle.prompt_id, wait_seconds: 30 },
      { onprogress: (p) => progress.push(p) },
    );
    expect(done.structuredContent).toMatchObject({ status: "completed", job_id: handle.job_id, width: 64, height: 64 });
    expect(progress.length).toBeGreaterThan(0);
    // Asking again returns the same registered asset (nothing registered twice).
    const again = await client.call("get_job", { prompt_id: handle.prompt_id });
    expect(again.structuredContent.assets.map((a) => a.asset_id)).toEqual(
      done.structuredContent.assets.map((a) => a.asset_id),
    );
  });

  it("cancel_job interrupts a running job and removes a pending one", async () => {
    const running = (
      await client.call("generate_image", { prompt: "long one", steps: 200, width: 64, height: 64, wait_seconds: 0 })
    ).structuredContent;
    const pending = (
      await client.call("generate_image", { prompt: "queued one", steps: 4, width: 64, height: 64, wait_seconds: 0 })
    ).structuredContent;
    // Wait until the first one is actually running in ComfyUI.
    for (let i = 0; i < 100; i++) {
      const job = (await client.call("get_job", { prompt_id: running.prompt_id })).structuredContent;
      if (job.status === "running") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const queue = (await client.call("get_queue_status")).structuredContent;
    expect(queue.queue_pending.find((e) => e.prompt_id === pending.prompt_id)?.mine).toBe(true);

    const cancelledPending = await client.call("cancel_job", { prompt_id: pending.prompt_id });
    expect(cancelledPending.structuredContent.status).toBe("cancelled");
    expect(cancelledPending.structuredContent.message).toMatch(/before it started/);
    const cancelledRunning = await client.call("cancel_job", { prompt_id: running.prompt_id });
    expect(cancelledRunning.structuredContent.status).toBe("cancelled");
    expect(cancelledRunning.structuredContent.cancel_reason).toMatch(/interrupted/);
    const after = await client.call("get_job", { prompt_id: running.prompt_id });
    expect(after.structuredContent.status).toBe("cancelled");
    // The original's convention: an `error` key means the call failed. A successful cancel, and a
    // cancelled job read back, carry the reason in cancel_reason instead (structured and as text).
    for (const result of [cancelledPending, cancelledRunning, after]) {
      expect(result.isError).toBeFalsy();
      expect(result.structuredContent).not.toHaveProperty("error");
      expect(JSON.parse(result.content.find((c) => c.type === "text").text)).not.toHaveProperty("error");
    }
    // Removed from the queue by the gateway; the interrupted one is confirmed by ComfyUI's own events.
    expect(cancelledPending.structuredContent.completed_via).toBe("cancel");
    expect(cancelledRunning.structuredContent.completed_via).toMatch(/^(event|cancel)$/);
  });

  it("a value ComfyUI would reject is caught first, listing the valid ones from its live /object_info", async () => {
    const result = await client.call("generate_image", {
      prompt: "x",
      sampler_name: "not_a_sampler",
      width: 64,
      height: 64,
    });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(
      /'not_a_sampler' is not a valid sampler_name \(KSampler\.sampler_name\)\. Valid values: euler, /,
    );
  });

  it("an unknown model is named, with the installed ones", async () => {
    const result = await client.call("generate_image", { prompt: "x", model: "missing.safetensors" });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/Model 'missing\.safetensors' is not installed.*v1-5-pruned-emaonly\.ckpt/s);
    const models = (await client.call("list_models")).structuredContent;
    expect(models.models).toContain("v1-5-pruned-emaonly.ckpt");
    expect(models.default).toBe("v1-5-pruned-emaonly.ckpt");
  });

  it("ComfyUI down gives a clear error, and the gateway recovers when it is back", async () => {
    const port = fake.port;
    await fake.close();
    const down = await client.call("generate_image", { prompt: "x", width: 64, height: 64 });
    expect(down.isError).toBe(true);
    expect(text(down)).toMatch(/not reachable at http:\/\/127\.0\.0\.1:\d+.*COMFYUI_URL/s);
    // Loopback mode sees the details, checked afresh; `ok` is false while no backend answers.
    const response = await fetch(`${gateway.url}/healthz`);
    expect(response.status, "a monitor reading only the status code sees it").toBe(503);
    expect(await response.json()).toMatchObject({ ok: false, status: "degraded", comfyui: { reachable: false } });
    fake = await startFakeComfy({ port, stepDelayMs: 10, nodeDelayMs: 2 });
    const back = await client.call("generate_image", { prompt: "x", width: 64, height: 64, steps: 4 });
    expect(back.structuredContent?.status).toBe("completed");
  });

  it("Cloudflare Access answering instead of ComfyUI is diagnosed as such", async () => {
    fake.setFaults({ accessRedirect: true });
    try {
      const result = await client.call("list_models");
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/Cloudflare Access/);
    } finally {
      fake.setFaults({ accessRedirect: false });
    }
  });
});
