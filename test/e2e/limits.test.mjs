// Per-user limits end to end (issue #13, finding 4), through wrangler dev and the fake ComfyUI with
// SDK v1 and v2 clients on /mcp-key: a non-owner token ("mallory") floods 30 parallel generations
// and gets its open-job limit (2) and a refusal naming COMFY_MCP_USER_MAX_OPEN_JOBS for the rest,
// while the owner's job is accepted and completes; get_queue_status shows mallory its own usage;
// oversize images, steps (as run_workflow overrides), video and an input image larger than the
// limit on a side are refused before anything reaches ComfyUI, each naming its variable.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePng } from "../fake-comfyui/png.mjs";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { CLIENTS } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

const OWNER_TOKEN = randomBytes(24).toString("hex");
const MALLORY_TOKEN = randomBytes(24).toString("hex");
const FLOOD = 30;

let fake;
let gateway;
const text = (result) => result.content?.find((c) => c.type === "text")?.text ?? "";
const bearer = (token) => ({ Authorization: `Bearer ${token}` });
/** The refusal, matched positively: what was refused and the variable that raises the limit. */
const refusedWith = (result, what, variable) => {
  expect(result.isError, text(result)).toBe(true);
  expect(text(result)).toMatch(what);
  expect(text(result)).toMatch(new RegExp(`The gateway's operator can raise this limit with ${variable}\\.`));
};

beforeAll(async () => {
  // 40 steps of 100 ms: a job stays open for seconds, far longer than the flood takes to arrive.
  fake = await startFakeComfy({ port: 0, stepDelayMs: 100, nodeDelayMs: 1 });
  gateway = await startGateway({
    comfyUrl: fake.url,
    vars: { COMFY_MCP_WAIT_SECONDS: "30", MCP_TOKENS: `owner:${OWNER_TOKEN},mallory:${MALLORY_TOKEN}` },
  });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await fake?.close();
});

describe.each(CLIENTS)("per-user limits with the %s", (_label, connect) => {
  let owner;
  let mallory;
  beforeAll(async () => {
    owner = await connect(`${gateway.url}/mcp-key`, bearer(OWNER_TOKEN));
    mallory = await connect(`${gateway.url}/mcp-key`, bearer(MALLORY_TOKEN));
  });
  afterAll(async () => {
    await owner?.close();
    await mallory?.close();
  });

  it(`refuses a non-owner's flood of ${FLOOD} parallel generations past 2 open jobs, while the owner's job runs`, async () => {
    const flood = await Promise.all(
      Array.from({ length: FLOOD }, (_, i) =>
        mallory.call("generate_image", { prompt: `flood ${i}`, width: 64, height: 64, steps: 40, wait_seconds: 0 }),
      ),
    );
    const accepted = flood.filter((result) => !result.isError);
    const refused = flood.filter((result) => result.isError);
    expect(accepted.length, refused.map(text).join("\n").slice(0, 500)).toBe(2);
    expect(refused.length).toBe(FLOOD - 2);
    for (const result of refused)
      refusedWith(
        result,
        /^Limit reached: you have 2 open job\(s\) and may have at most 2 at once\. Wait for one to finish \(get_job\) or cancel one \(cancel_job\), then retry\./,
        "COMFY_MCP_USER_MAX_OPEN_JOBS",
      );

    const usage = (await mallory.call("get_queue_status")).structuredContent.your_usage;
    expect(usage.open_jobs).toBe(2);
    expect(usage.limits.open_jobs).toEqual({ value: 2, variable: "COMFY_MCP_USER_MAX_OPEN_JOBS" });
    expect(usage.limits.jobs_per_minute).toEqual({ value: 10, variable: "COMFY_MCP_USER_MAX_JOBS_PER_MINUTE" });

    // The owner is not held by mallory's limit: its job is accepted behind mallory's and completes.
    const mine = await owner.call("generate_image", {
      prompt: "the owner's",
      width: 64,
      height: 64,
      steps: 2,
      wait_seconds: 0,
    });
    expect(mine.isError, text(mine)).toBeFalsy();
    for (const result of accepted) {
      const cancelled = await mallory.call("cancel_job", { prompt_id: result.structuredContent.prompt_id });
      expect(cancelled.structuredContent.status, text(cancelled)).toBe("cancelled");
    }
    const done = await owner.call("get_job", { prompt_id: mine.structuredContent.prompt_id, wait_seconds: 30 });
    expect(done.structuredContent.status, text(done)).toBe("completed");
    expect((await mallory.call("get_queue_status")).structuredContent.your_usage.open_jobs).toBe(0);
  });

  it("refuses a non-owner's oversize image, steps, video and input image, naming the variable", async () => {
    refusedWith(
      await mallory.call("generate_image", { prompt: "huge", width: 8192, height: 8192, wait_seconds: 0 }),
      /^Limit exceeded: width × height = 8192 × 8192 \(67\.11 megapixels\) is more than the 4 megapixels you may render per image\./,
      "COMFY_MCP_USER_MAX_MEGAPIXELS",
    );
    refusedWith(
      await mallory.call("run_workflow", {
        workflow_id: "generate_image",
        overrides: { prompt: "long", steps: 200 },
        wait_seconds: 0,
      }),
      /^Limit exceeded: steps = 200 is more than the 150 sampling steps you may use\./,
      "COMFY_MCP_USER_MAX_STEPS",
    );
    refusedWith(
      await mallory.call("generate_video", { prompt: "epic", width: 1920, height: 1920, length: 257, wait_seconds: 0 }),
      /^Limit exceeded: width × height = 1920 × 1920 × 257 frames \(length\) = 947\.4 megapixel-frames is more than the 250 you may render in one video\./,
      "COMFY_MCP_USER_MAX_VIDEO_MEGAPIXEL_FRAMES",
    );
    const wide = encodePng(5000, 10, { type: "solid", rgb: [30, 90, 200] });
    refusedWith(
      await mallory.call("image_to_image", {
        prompt: "wider",
        image: `data:image/png;base64,${wide.toString("base64")}`,
        wait_seconds: 0,
      }),
      /^Limit exceeded: 'image' is 5000 × 10 pixels; an input image may be at most 4096 pixels on its longest side\./,
      "COMFY_MCP_USER_MAX_INPUT_IMAGE_SIDE",
    );
    // Nothing refused here became a job (it would still be open: none asked to wait).
    expect((await mallory.call("get_queue_status")).structuredContent.your_usage.open_jobs).toBe(0);
  });
});
