// Scopes and per-user limits inside workerd (issue #13, findings 3 and 4): every tool and the
// comfy://assets resources refuse a caller without the scope they need, whatever else it was
// granted; a non-owner's generation is checked against its limits (pixels, frames, steps, input
// image sides) after defaults and overrides, and its open jobs and jobs per minute are counted
// by its studio at submission. The MCP requests go through serveMcp with a chosen identity, as
// /mcp and /mcp-key call it once the caller is authenticated.
import { env } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import { readConfig } from "../../src/config";
import type { JobView } from "../../src/studio/records";
// @ts-expect-error plain JavaScript module without type declarations
import { encodePng } from "../fake-comfyui/png.mjs";
import { imageJob } from "../support/image-job";
import { rpc } from "../support/mcp-rpc";

const fakeUrl = `http://127.0.0.1:${inject("comfyPort")}`;

const call = async (principal: string, scopes: string[], name: string, args: Record<string, unknown> = {}) =>
  (await rpc(principal, scopes, "tools/call", { name, arguments: args })).result as {
    isError?: boolean;
    content: Array<{ type: string; text: string }>;
    structuredContent?: Record<string, unknown>;
  };
const text = (result: { content: Array<{ text: string }> }) => result.content[0]!.text;

const UUID = "00000000-0000-4000-8000-000000000000";
/** Arguments each tool accepts, so the call reaches the tool's body (schema checks come first). */
const VALID_ARGS: Record<string, Record<string, unknown>> = {
  get_job: { prompt_id: UUID },
  cancel_job: { prompt_id: UUID },
  get_asset_metadata: { asset_id: UUID },
  view_image: { asset_id: UUID },
  regenerate: { asset_id: UUID },
  run_workflow: { workflow_id: "generate_image", overrides: { prompt: "x" } },
  generate_image: { prompt: "x" },
  generate_song: { tags: "x", lyrics: "y" },
  generate_video: { prompt: "x" },
  image_to_image: { prompt: "x", image: UUID },
  publish_asset: { asset_id: UUID },
  unpublish: { filename: "x.png" },
  set_defaults: { image: { steps: 20 } },
  add_workflow: { workflow: { "1": { class_type: "SaveImage", inputs: {} } } },
  remove_workflow: { workflow_id: "x" },
};
const scopeRefusal = (scope: string) =>
  new RegExp(`^This connection was not granted the '${scope}' scope\\. Reconnect the app and allow '${scope}'`);

describe("scopes on every tool and resource", () => {
  it("refuses every tool to a grant without its scope, naming the scope (none ticked, admin only, publish only)", async () => {
    const { result } = await rpc("scope-test", [], "tools/list");
    const names = (result.tools as Array<{ name: string }>).map((tool) => tool.name);
    expect(names.length).toBeGreaterThanOrEqual(21);
    /** The scope each tool needs: reading and generating need 'generate'. */
    const needs = (name: string) =>
      ["set_defaults", "add_workflow", "remove_workflow"].includes(name)
        ? "admin"
        : name === "publish_asset" || name === "unpublish"
          ? "publish"
          : "generate";
    for (const granted of [[], ["admin"], ["publish"]]) {
      for (const name of names) {
        if (granted.includes(needs(name))) continue;
        const outcome = await call("scope-test", granted, name, VALID_ARGS[name] ?? {});
        expect(outcome.isError, `${name} with [${granted}]`).toBe(true);
        expect(text(outcome), `${name} with [${granted}]`).toMatch(scopeRefusal(needs(name)));
      }
    }
  });

  it("lets a 'generate' grant read: assets, jobs, the queue, workflows, defaults and backends", async () => {
    for (const name of ["list_assets", "get_queue_status", "list_workflows", "get_defaults", "list_backends"]) {
      const outcome = await call("scope-test", ["generate"], name);
      expect(outcome.isError, `${name}: ${text(outcome)}`).toBeFalsy();
    }
    expect(text(await call("scope-test", ["generate"], "get_job", { prompt_id: UUID }))).toMatch(/^No job '/);
  });

  it("refuses reading comfy://assets/* without 'generate' with an MCP error naming the scope, and lists nothing", async () => {
    const owner = "resource-scope-test";
    const job = await env.STUDIO.get(env.STUDIO.idFromName(owner)).submit(imageJob({ steps: 1 }));
    expect(job.ok).toBe(true);
    const studio = env.STUDIO.get(env.STUDIO.idFromName(owner));
    let assets: JobView["assets"] = [];
    for (let i = 0; i < 100 && assets.length === 0; i++) {
      assets = (await studio.getJob(job.ok ? job.job.job_id : ""))?.assets ?? [];
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const uri = `comfy://assets/${assets[0]!.asset_id}`;

    for (const granted of [["admin"], ["publish"], []]) {
      const refused = await rpc(owner, granted, "resources/read", { uri });
      expect(refused.error, `resources/read with [${granted}]`).toMatchObject({ code: -32600 });
      expect(refused.error.message).toMatch(/not granted the 'generate' scope, which reading assets needs/);
      expect(refused.error.data).toMatchObject({ missing_scope: "generate" });
      // No asset is listed; the studio view is (a static document with no user data in it).
      const listed = await rpc(owner, granted, "resources/list");
      expect(listed.result.resources.map((resource: { uri: string }) => resource.uri)).toEqual(["ui://comfy/studio"]);
    }
    const read = await rpc(owner, ["generate"], "resources/read", { uri });
    expect(read.result.contents[0]).toMatchObject({ uri, mimeType: "image/png" });
    expect((await rpc(owner, ["generate"], "resources/list")).result.resources.length).toBeGreaterThan(0);
  });
});

describe("limit configuration", () => {
  it("gives users safe defaults and the owner none, each named by its variable", () => {
    const { limits } = readConfig(env);
    expect(limits.users.openJobs).toEqual({ value: 2, variable: "COMFY_MCP_USER_MAX_OPEN_JOBS" });
    expect(limits.users.jobsPerMinute).toEqual({ value: 10, variable: "COMFY_MCP_USER_MAX_JOBS_PER_MINUTE" });
    expect(limits.users.megapixels).toEqual({ value: 4, variable: "COMFY_MCP_USER_MAX_MEGAPIXELS" });
    expect(limits.users.videoMegapixelFrames.value).toBe(250);
    expect(limits.users.steps.value).toBe(150);
    expect(limits.users.inputImageSide.value).toBe(4096);
    expect(limits.owner.openJobs).toEqual({ value: null, variable: "COMFY_MCP_OWNER_MAX_OPEN_JOBS" });
    expect(limits.owner.steps.value).toBeNull();
  });

  it("reads numbers and 'unlimited', and reports a value it cannot read (keeping the default)", () => {
    const { limits } = readConfig({
      ...env,
      COMFY_MCP_USER_MAX_OPEN_JOBS: "unlimited",
      COMFY_MCP_USER_MAX_STEPS: "lots",
      COMFY_MCP_OWNER_MAX_MEGAPIXELS: "8.5",
    } as Env);
    expect(limits.users.openJobs.value).toBeNull();
    expect(limits.users.steps.value).toBe(150);
    expect(limits.users.warnings).toEqual([
      'COMFY_MCP_USER_MAX_STEPS="lots" is not a number ≥ 0 or "unlimited"; using 150.',
    ]);
    expect(limits.owner.megapixels.value).toBe(8.5);
  });
});

describe("what one generation may ask", () => {
  const USER = "limits-user";
  const refusedWith = (
    outcome: { isError?: boolean; content: Array<{ text: string }> },
    what: RegExp,
    variable: string,
  ) => {
    expect(outcome.isError, text(outcome)).toBe(true);
    expect(text(outcome)).toMatch(what);
    expect(text(outcome)).toMatch(new RegExp(`The gateway's operator can raise this limit with ${variable}\\.`));
  };

  it("refuses a non-owner's oversize image, steps (also as run_workflow overrides or a set default) and video", async () => {
    refusedWith(
      await call(USER, ["generate"], "generate_image", { prompt: "x", width: 4096, height: 4096, wait_seconds: 0 }),
      /^Limit exceeded: width × height = 4096 × 4096 \(16\.78 megapixels\) is more than the 4 megapixels you may render per image\./,
      "COMFY_MCP_USER_MAX_MEGAPIXELS",
    );
    refusedWith(
      await call(USER, ["generate"], "run_workflow", {
        workflow_id: "generate_image",
        overrides: { prompt: "x", steps: 200 },
        wait_seconds: 0,
      }),
      /^Limit exceeded: steps = 200 is more than the 150 sampling steps you may use\./,
      "COMFY_MCP_USER_MAX_STEPS",
    );
    refusedWith(
      await call(USER, ["generate"], "generate_video", {
        prompt: "x",
        width: 1920,
        height: 1920,
        length: 257,
        wait_seconds: 0,
      }),
      /^Limit exceeded: width × height = 1920 × 1920 × 257 frames \(length\) = 947\.4 megapixel-frames is more than the 250 you may render in one video\./,
      "COMFY_MCP_USER_MAX_VIDEO_MEGAPIXEL_FRAMES",
    );
    // A default set by the user is checked like an argument.
    expect((await call(USER, ["admin"], "set_defaults", { image: { steps: 180 } })).isError).toBeFalsy();
    refusedWith(
      await call(USER, ["generate"], "generate_image", { prompt: "x", wait_seconds: 0 }),
      /^Limit exceeded: steps = 180 is more than the 150 sampling steps/,
      "COMFY_MCP_USER_MAX_STEPS",
    );
    await call(USER, ["admin"], "set_defaults", { image: { steps: null } });
    const usage = (await call(USER, ["generate"], "get_queue_status")).structuredContent!.your_usage;
    expect(usage).toMatchObject({ open_jobs: 0, jobs_last_minute: 0 });
  });

  it("refuses a non-owner's input image larger than the limit on a side, from its header", async () => {
    const png = encodePng(5000, 10, { type: "solid", rgb: [200, 40, 40] }) as Uint8Array;
    const image = `data:image/png;base64,${Buffer.from(png).toString("base64")}`;
    refusedWith(
      await call(USER, ["generate"], "image_to_image", { prompt: "x", image, wait_seconds: 0 }),
      /^Limit exceeded: 'image' is 5000 × 10 pixels; an input image may be at most 4096 pixels on its longest side\./,
      "COMFY_MCP_USER_MAX_INPUT_IMAGE_SIDE",
    );
  });

  it("lets the owner past every user limit", async () => {
    const outcome = await call("owner", ["generate"], "generate_image", {
      prompt: "x",
      width: 2304,
      height: 2304,
      steps: 1,
      wait_seconds: 0,
    });
    expect(outcome.isError, text(outcome)).toBeFalsy();
    const usage = (await call("owner", ["generate"], "get_queue_status")).structuredContent!.your_usage as {
      limits: Record<string, { value: number | null; variable: string }>;
    };
    expect(usage.limits.megapixels_per_image).toEqual({ value: null, variable: "COMFY_MCP_OWNER_MAX_MEGAPIXELS" });
  });
});

describe("jobs counted by the studio at submission", () => {
  const studio = (name: string) => env.STUDIO.get(env.STUDIO.idFromName(name));
  const unlimited = (variable: string) => ({ value: null, variable });
  it("refuses parallel submissions past the open-job limit, atomically", async () => {
    const stub = studio(`open-jobs-${crypto.randomUUID()}`);
    const quota = {
      openJobs: { value: 2, variable: "COMFY_MCP_USER_MAX_OPEN_JOBS" },
      jobsPerMinute: unlimited("COMFY_MCP_USER_MAX_JOBS_PER_MINUTE"),
    };
    // Long jobs (400 steps of the fake's 5 ms): none ends while the others are submitted.
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => stub.submit(imageJob({ steps: 400 }), quota)));
    const accepted = outcomes.filter((outcome) => outcome.ok);
    expect(accepted.length).toBe(2);
    for (const outcome of outcomes.filter((o) => !o.ok)) {
      expect(outcome.ok ? null : outcome.error).toMatchObject({
        kind: "limit_open_jobs",
        limit: 2,
        variable: "COMFY_MCP_USER_MAX_OPEN_JOBS",
      });
      expect(outcome.ok ? "" : outcome.error.message).toMatch(
        /^Limit reached: you have 2 open job\(s\) and may have at most 2 at once\. Wait for one to finish \(get_job\) or cancel one \(cancel_job\), then retry\. The gateway's operator can raise this limit with COMFY_MCP_USER_MAX_OPEN_JOBS\.$/,
      );
    }
    expect(await stub.usage()).toEqual({ open_jobs: 2, jobs_last_minute: 2 });
    for (const outcome of accepted) if (outcome.ok) await stub.cancel(outcome.job.job_id);
  });

  it("tells a user at its open-job limit before its input image is uploaded to ComfyUI", async () => {
    const principal = `at-limit-${crypto.randomUUID()}`;
    const stub = studio(principal);
    const open = [await stub.submit(imageJob({ steps: 400 })), await stub.submit(imageJob({ steps: 400 }))];
    const png = encodePng(40 + Math.floor(Math.random() * 200), 24, {
      type: "pattern",
      hash: Date.now(),
    }) as Uint8Array;
    const outcome = await call(principal, ["generate"], "image_to_image", {
      prompt: "x",
      image: `data:image/png;base64,${Buffer.from(png).toString("base64")}`,
      wait_seconds: 0,
    });
    expect(outcome.isError).toBe(true);
    expect(text(outcome)).toMatch(/^Limit reached: you have 2 open job\(s\) and may have at most 2 at once\./);
    expect(text(outcome)).toMatch(/"variable": "COMFY_MCP_USER_MAX_OPEN_JOBS"/);
    const hash = [...new Uint8Array(await crypto.subtle.digest("SHA-256", png))]
      .map((byte) => byte.toString(16).padStart(2, "0"))
      .join("")
      .slice(0, 24);
    const uploaded = await fetch(`${fakeUrl}/view?filename=${hash}.png&subfolder=mcp&type=input`);
    await uploaded.body?.cancel();
    expect(uploaded.status, "the input image reached ComfyUI").toBe(404);
    for (const job of open) if (job.ok) await stub.cancel(job.job.job_id);
  });

  it("refuses a submission past the jobs-per-minute limit, saying when to retry", async () => {
    const stub = studio(`per-minute-${crypto.randomUUID()}`);
    const quota = {
      openJobs: unlimited("COMFY_MCP_USER_MAX_OPEN_JOBS"),
      jobsPerMinute: { value: 3, variable: "COMFY_MCP_USER_MAX_JOBS_PER_MINUTE" },
    };
    for (let i = 0; i < 3; i++) expect((await stub.submit(imageJob({ steps: 1 }), quota)).ok).toBe(true);
    const fourth = await stub.submit(imageJob({ steps: 1 }), quota);
    expect(fourth.ok).toBe(false);
    expect(fourth.ok ? null : fourth.error).toMatchObject({
      kind: "limit_jobs_per_minute",
      variable: "COMFY_MCP_USER_MAX_JOBS_PER_MINUTE",
    });
    expect(fourth.ok ? "" : fourth.error.message).toMatch(
      /^Limit reached: you submitted 3 job\(s\) in the last minute, the most allowed is 3\. Retry in (60|59|58) s\. The gateway's operator can raise this limit with COMFY_MCP_USER_MAX_JOBS_PER_MINUTE\.$/,
    );
  });
});
