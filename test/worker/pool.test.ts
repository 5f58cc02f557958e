// The backend pool's pure parts, inside workerd: reading the configuration (JSON, numbered
// variables, the single COMFYUI_URL, every refusal) and choosing a backend (state, hard and soft
// requirements, pinning, preference, tags, weights, turns), plus the requirements of a graph.
import { describe, expect, it } from "vitest";
import { unreachable } from "../../src/comfy/errors";
import { readBackends } from "../../src/pool/config";
import { chooseBackend, graphRequirements, type Candidate } from "../../src/pool/routing";
import type { ComfyGraph } from "../../src/comfy/types";
import { renderGraph, discoverParams } from "../../src/workflows/params";
import generateImage from "../../workflows/generate_image.json";

const env = (vars: Record<string, string>) => vars as unknown as Env;

describe("pool configuration", () => {
  it("a single COMFYUI_URL is the backend 'default', with the gateway-wide Access headers", () => {
    const result = readBackends(
      env({
        COMFYUI_URL: "https://comfy.example.com/",
        COMFYUI_ACCESS_CLIENT_ID: "id.access",
        COMFYUI_ACCESS_CLIENT_SECRET: "s3cret",
      }),
    );
    expect(result).toEqual({
      ok: true,
      backends: [
        {
          name: "default",
          baseUrl: "https://comfy.example.com",
          headers: { "CF-Access-Client-Id": "id.access", "CF-Access-Client-Secret": "s3cret" },
          weight: 1,
          tags: [],
        },
      ],
    });
    expect(readBackends(env({}))).toMatchObject({
      ok: true,
      backends: [{ name: "default", baseUrl: "http://127.0.0.1:8188" }],
    });
  });

  it("reads COMFYUI_BACKENDS and numbered variables; own credentials win, others inherit the gateway's", () => {
    const result = readBackends(
      env({
        COMFYUI_URL: "http://ignored:8188",
        COMFYUI_BEARER_TOKEN: "shared",
        COMFYUI_BACKENDS: JSON.stringify([
          {
            name: "desktop",
            url: "https://desk.example.com",
            weight: 2,
            tags: ["Video", "sdxl"],
            access_client_id: "d.access",
            access_client_secret: "d",
          },
          { name: "laptop", url: "http://192.168.1.20:8188/" },
        ]),
        COMFYUI_BACKEND_2_URL: "https://cloud.example.com",
        COMFYUI_BACKEND_2_NAME: "cloud",
        COMFYUI_BACKEND_2_WEIGHT: "0.5",
        COMFYUI_BACKEND_2_TAGS: "video, big",
        COMFYUI_BACKEND_2_BEARER_TOKEN: "own",
        COMFYUI_BACKEND_10_URL: "https://ten.example.com",
      }),
    );
    if (!result.ok) throw new Error(result.error);
    expect(result.backends.map((b) => [b.name, b.baseUrl, b.weight, b.tags])).toEqual([
      ["desktop", "https://desk.example.com", 2, ["video", "sdxl"]],
      ["laptop", "http://192.168.1.20:8188", 1, []],
      ["cloud", "https://cloud.example.com", 0.5, ["video", "big"]],
      ["backend10", "https://ten.example.com", 1, []],
    ]);
    expect(result.backends[0]!.headers).toEqual({
      "CF-Access-Client-Id": "d.access",
      "CF-Access-Client-Secret": "d",
      Authorization: "Bearer shared",
    });
    expect(result.backends[1]!.headers).toEqual({ Authorization: "Bearer shared" });
    expect(result.backends[2]!.headers).toEqual({ Authorization: "Bearer own" });
  });

  it.each([
    ["not JSON", "{", /not valid JSON/],
    ["empty", "[]", /non-empty JSON array/],
    ["an object", '{"name":"a"}', /non-empty JSON array/],
    ["no url", '[{"name":"a"}]', /url must be an http\(s\) URL/],
    ["ftp url", '[{"name":"a","url":"ftp://x"}]', /url must be an http\(s\) URL/],
    ["bad name", '[{"name":"a b","url":"http://x"}]', /name must be 1-32 letters/],
    ["duplicate", '[{"name":"a","url":"http://x"},{"name":"a","url":"http://y"}]', /'a' is used twice/],
    ["zero weight", '[{"name":"a","url":"http://x","weight":0}]', /weight must be a number above 0/],
    ["string weight", '[{"name":"a","url":"http://x","weight":"2"}]', /weight must be a number above 0/],
    ["bad tags", '[{"name":"a","url":"http://x","tags":"video"}]', /tags must be a list/],
    [
      "half Access pair",
      '[{"name":"a","url":"http://x","access_client_id":"i"}]',
      /both access_client_id and access_client_secret/,
    ],
    ["unknown field (a typo)", '[{"name":"a","url":"http://x","wieght":2}]', /unknown field\(s\) wieght/],
  ])("refuses %s, naming the problem and never echoing secrets", (_label, json, message) => {
    const result = readBackends(env({ COMFYUI_BACKENDS: json, COMFYUI_ACCESS_CLIENT_SECRET: "never-shown" }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatch(message);
    expect(result.error).not.toContain("never-shown");
  });

  it("refuses a numbered backend with a bad weight", () => {
    expect(readBackends(env({ COMFYUI_BACKEND_1_URL: "http://x", COMFYUI_BACKEND_1_WEIGHT: "heavy" }))).toMatchObject({
      ok: false,
      error: expect.stringMatching(/COMFYUI_BACKEND_1_\* \('backend1'\): weight/),
    });
  });
});

describe("errors name the backend, never a tunnel hostname", () => {
  it("says which backend and which setting to check", () => {
    const remote = unreachable(
      { baseUrl: "https://comfy-desk.example.com", name: "desktop" },
      new Error("refused"),
    ).message;
    expect(remote).toContain("the configured URL of backend 'desktop'");
    expect(remote).toContain("the url of backend 'desktop' in COMFYUI_BACKENDS");
    expect(remote).not.toContain("example.com");
    const local = unreachable({ baseUrl: "http://127.0.0.1:8190", name: "laptop" }, new Error("refused")).message;
    expect(local).toContain("http://127.0.0.1:8190 (backend 'laptop')");
    const single = unreachable({ baseUrl: "https://comfy.example.com", name: "default" }, new Error("refused")).message;
    expect(single).toContain("the configured COMFYUI_URL");
    expect(single).not.toContain("example.com");
  });
});

const candidate = (name: string, over: Partial<Candidate> = {}): Candidate => ({
  name,
  state: "up",
  weight: 1,
  tags: [],
  load: 0,
  lastChosenAt: 0,
  missing: [],
  softMissing: 0,
  lastError: null,
  ...over,
});

describe("routing", () => {
  it("takes the shortest queue per unit of weight, and equal backends in turn", () => {
    expect(
      chooseBackend([candidate("a", { load: 3 }), candidate("b", { load: 1 }), candidate("c", { load: 2 })], {
        requirements: [],
      }),
    ).toMatchObject({ ok: true, backend: "b" });
    // weight 2 with 3 queued ((3+1)/2 = 2) beats weight 1 with 2 queued (3).
    expect(
      chooseBackend([candidate("a", { load: 2 }), candidate("big", { load: 3, weight: 2 })], { requirements: [] }),
    ).toMatchObject({ backend: "big" });
    expect(
      chooseBackend([candidate("a", { lastChosenAt: 20 }), candidate("b", { lastChosenAt: 10 })], { requirements: [] }),
    ).toMatchObject({ backend: "b" });
  });

  it("never picks a backend that is down, excluded or lacks a hard requirement; says why none can", () => {
    const lacking = candidate("c", { missing: ["CheckpointLoaderSimple.ckpt_name 'x.safetensors'"] });
    expect(
      chooseBackend([candidate("a", { state: "down", lastError: "refused" }), candidate("b"), lacking], {
        requirements: [],
        exclude: ["b"],
      }),
    ).toMatchObject({
      ok: false,
      kind: "no_backend",
      message: expect.stringContaining("'c' lacks CheckpointLoaderSimple.ckpt_name 'x.safetensors'"),
    });
    expect(
      chooseBackend([candidate("a", { state: "down", lastError: "refused" }), candidate("b", { state: "unknown" })], {
        requirements: [],
      }),
    ).toMatchObject({
      ok: false,
      kind: "backend_down",
      message: expect.stringContaining("a (refused)"),
    });
  });

  it("prefers backends with every default and the workflow's tags; capabilities unknown rank last", () => {
    const soft = [candidate("a", { softMissing: 1 }), candidate("b", { load: 5 })];
    expect(chooseBackend(soft, { requirements: [] })).toMatchObject({ backend: "b" });
    expect(
      chooseBackend([candidate("a", { missing: undefined }), candidate("b", { load: 5 })], { requirements: [] }),
    ).toMatchObject({ backend: "b" });
    const tagged = [candidate("a"), candidate("gpu", { tags: ["video"], load: 4 })];
    expect(chooseBackend(tagged, { requirements: [], tags: ["video"] })).toMatchObject({
      backend: "gpu",
      reason: expect.stringContaining("tagged video"),
    });
    expect(chooseBackend(tagged, { requirements: [] })).toMatchObject({ backend: "a" });
  });

  it("honours a pin (or refuses it with the reason) and a preference that qualifies", () => {
    const pool = [
      candidate("a"),
      candidate("b", { load: 9 }),
      candidate("c", { state: "down", lastError: "HTTP 530" }),
      candidate("d", { missing: ["node WanVideo"] }),
    ];
    expect(chooseBackend(pool, { requirements: [], pin: "b" })).toMatchObject({ ok: true, backend: "b" });
    expect(chooseBackend(pool, { requirements: [], pin: "zzz" })).toMatchObject({
      ok: false,
      kind: "unknown_backend",
      message: expect.stringContaining("Backends: a, b, c, d"),
    });
    expect(chooseBackend(pool, { requirements: [], pin: "c" })).toMatchObject({
      ok: false,
      kind: "backend_down",
      message: expect.stringContaining("HTTP 530"),
    });
    expect(chooseBackend(pool, { requirements: [], pin: "d" })).toMatchObject({
      ok: false,
      kind: "no_backend",
      message: expect.stringContaining("node WanVideo"),
    });
    expect(chooseBackend(pool, { requirements: [], prefer: "b" })).toMatchObject({ backend: "b" });
    expect(chooseBackend(pool, { requirements: [], prefer: "c" })).toMatchObject({ backend: "a" });
  });

  it("derives requirements from a rendered graph: classes and literal strings; media skipped; defaults soft", () => {
    const params = discoverParams(generateImage as ComfyGraph);
    const graph = renderGraph(generateImage as ComfyGraph, params, {
      prompt: "a fox",
      negative_prompt: "",
      seed: 1,
      steps: 4,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: "m.safetensors",
      width: 64,
      height: 64,
    });
    const ckpt = Object.entries(graph).find(([, node]) => node.class_type === "CheckpointLoaderSimple")![0];
    const requirements = graphRequirements(graph, new Set(), new Set([`${ckpt}.ckpt_name`]));
    expect(requirements).toContainEqual({
      class_type: "CheckpointLoaderSimple",
      input: "ckpt_name",
      value: "m.safetensors",
      soft: true,
    });
    expect(requirements).toContainEqual({ class_type: "KSampler", input: "sampler_name", value: "euler" });
    expect(requirements).toContainEqual({ class_type: "SaveImage" });
    expect(requirements.some((r) => typeof r.value !== "string" && r.input !== undefined)).toBe(false);
    expect(
      graphRequirements(graph, new Set([`${ckpt}.ckpt_name`]), new Set()).some((r) => r.input === "ckpt_name"),
    ).toBe(false);
  });
});
