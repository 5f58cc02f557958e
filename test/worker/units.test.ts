// Pure units, run inside workerd: the PARAM_* grammar, output collection, header probing and
// error rendering, each checked against recorded ComfyUI 0.3.64 data where one exists.
import { describe, expect, it } from "vitest";
import { executionError, validationError } from "../../src/comfy/errors";
import { parseBinaryFrame } from "../../src/comfy/frames";
import { probeDimensions } from "../../src/comfy/media";
import { collectOutputs, mimeTypeOf } from "../../src/comfy/outputs";
import type { ComfyGraph, ExecutionErrorPayload, HistoryEntry } from "../../src/comfy/types";
import { loopbackMode } from "../../src/net/loopback";
import { allowedOrigins, foreignOrigin } from "../../src/net/origin";
import { checkPublicUrl } from "../../src/net/public-url";
import { toJobError } from "../../src/studio/jobs";
import { resolveDefaults } from "../../src/tools/defaults";
import { coerce, discoverParams, parsePlaceholder, randomSeed, renderGraph } from "../../src/workflows/params";
import generateImage from "../../workflows/generate_image.json";
import executionErrorSample from "../fixtures/execution_error.json";
import historyBasic from "../fixtures/history/history.json";
import historyExecutionError from "../fixtures/history/history__execution_error.json";
import historyAudio from "../fixtures/history/history__audio_flac.json";
import historyPreview from "../fixtures/history/history__preview_image.json";
import historyText from "../fixtures/history/history__text_preview_any.json";
import historyVideo from "../fixtures/history/history__video_mp4.json";
import historyWebm from "../fixtures/history/history__webm_vp9.json";
import media from "../fixtures/media.json";
import missingCheckpoint from "../fixtures/prompt-errors/missing_checkpoint.json";
import missingInput from "../fixtures/prompt-errors/missing_input.json";
import unknownClass from "../fixtures/prompt-errors/unknown_class.json";
import wrongType from "../fixtures/prompt-errors/wrong_type.json";

const entryOf = (fixture: { body: Record<string, unknown> }) => Object.values(fixture.body)[0] as HistoryEntry;
const bytes = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

describe("PARAM_* grammar (original-server.md §4.2)", () => {
  it("parses types and normalises names", () => {
    expect(parsePlaceholder("PARAM_INT_SEED")).toEqual({ name: "seed", type: "int" });
    expect(parsePlaceholder("PARAM_PROMPT")).toEqual({ name: "prompt", type: "str" });
    expect(parsePlaceholder("PARAM_TEXT_MY-Thing")).toEqual({ name: "my_thing", type: "str" });
    expect(parsePlaceholder("PARAM_int_seed")).toEqual({ name: "seed", type: "int" });
    expect(parsePlaceholder("PARAM_FOO_BAR")).toEqual({ name: "foo_bar", type: "str" });
    expect(parsePlaceholder("param_int_x")).toBeUndefined();
  });

  it("discovers generate_image's parameters in node order with their bindings", () => {
    const params = discoverParams(generateImage as ComfyGraph);
    expect(params.map((p) => `${p.name}:${p.type}`)).toEqual([
      "seed:int",
      "steps:int",
      "cfg:float",
      "sampler_name:str",
      "scheduler:str",
      "denoise:float",
      "model:str",
      "width:int",
      "height:int",
      "prompt:str",
      "negative_prompt:str",
    ]);
    expect(params.find((p) => p.name === "prompt")!.bindings).toEqual([{ node_id: "6", input: "text" }]);
    expect(params.find((p) => p.name === "negative_prompt")!.bindings).toEqual([{ node_id: "7", input: "text" }]);
  });

  it("renders through bindings and never leaves a placeholder behind", () => {
    const template = generateImage as ComfyGraph;
    const params = discoverParams(template);
    const values = {
      seed: 7,
      steps: "12",
      cfg: 6.5,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: "m.ckpt",
      width: 512,
      height: 768,
      prompt: "a fox",
      negative_prompt: "blurry",
    };
    const graph = renderGraph(template, params, values);
    expect(graph["6"]!.inputs.text).toBe("a fox");
    expect(graph["7"]!.inputs.text).toBe("blurry");
    expect(graph["3"]!.inputs.steps).toBe(12);
    expect(graph["5"]!.inputs.height).toBe(768);
    expect(JSON.stringify(graph)).not.toContain("PARAM_");
    expect(JSON.stringify(template)).toContain("PARAM_PROMPT"); // the template is untouched
    const { prompt: _omitted, ...withoutPrompt } = values;
    expect(() => renderGraph(template, params, withoutPrompt)).toThrow(/prompt/);
  });

  it("coerces strictly", () => {
    expect(coerce({ name: "w", type: "int" }, "640")).toBe(640);
    expect(() => coerce({ name: "w", type: "int" }, 640.7)).toThrow(/integer/);
    expect(() => coerce({ name: "w", type: "int" }, "abc")).toThrow(/integer/);
    expect(coerce({ name: "b", type: "bool" }, "yes")).toBe(true);
  });

  it("random seeds stay exact in JSON (<= 2^53-1) and differ", () => {
    const seeds = Array.from({ length: 200 }, randomSeed);
    for (const seed of seeds) expect(Number.isSafeInteger(seed) && seed >= 0).toBe(true);
    expect(new Set(seeds).size).toBeGreaterThan(195);
  });
});

describe("output collection (comfyui-api.md §10.1)", () => {
  it("reads images from the basic history sample (GET_history_prompt_id.json)", () => {
    const items = collectOutputs(entryOf(historyBasic).outputs);
    expect(items).toMatchObject([
      { filename: "gw_test_00001_.png", type: "output", kind: "image", mime_type: "image/png", node_id: "2" },
    ]);
  });

  it("finds video under `images` with `animated` (GET_history_prompt_id__video_mp4.json, __webm_vp9.json)", () => {
    expect(collectOutputs(entryOf(historyVideo).outputs)).toMatchObject([
      { filename: "gw_video_00001_.mp4", subfolder: "video", kind: "video", mime_type: "video/mp4", animated: true },
    ]);
    expect(collectOutputs(entryOf(historyWebm).outputs)).toMatchObject([{ kind: "video", mime_type: "video/webm" }]);
  });

  it("finds audio under `audio` (GET_history_prompt_id__audio_flac.json)", () => {
    expect(collectOutputs(entryOf(historyAudio).outputs)).toMatchObject([
      { subfolder: "audio", kind: "audio", mime_type: "audio/flac" },
    ]);
  });

  it("keeps every item of a batch, temp previews as temp (GET_history_prompt_id__preview_image.json)", () => {
    const items = collectOutputs(entryOf(historyPreview).outputs);
    expect(items.map((i) => [i.filename, i.type])).toEqual([
      ["ComfyUI_temp_mlaqf_00001_.png", "temp"],
      ["ComfyUI_temp_mlaqf_00002_.png", "temp"],
    ]);
  });

  it("ignores text-only outputs (GET_history_prompt_id__text_preview_any.json)", () => {
    expect(collectOutputs(entryOf(historyText).outputs)).toEqual([]);
  });

  it("takes mime types from the file name", () => {
    expect(mimeTypeOf("x.MP3")).toBe("audio/mpeg");
    expect(mimeTypeOf("x.opus")).toBe("audio/ogg");
    expect(mimeTypeOf("x.latent")).toBe("application/octet-stream");
  });
});

describe("dimensions from the bytes", () => {
  it("reads PNG IHDR of a recorded 512x512 output (files/gw_test_00001_.png)", () => {
    expect(probeDimensions(bytes(media.png_512))).toEqual({ width: 512, height: 512 });
  });
  it("reads an animated WebP's VP8X canvas (files/animated_webp__gw_anim_00001_.webp)", () => {
    expect(probeDimensions(bytes(media.webp_animated))).toEqual({ width: 128, height: 128 });
  });
  it("reads a JPEG SOF0 after an APP0 segment", () => {
    const jpeg = new Uint8Array([
      0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0x2c, 0x02, 0x58, 0x03, 0, 0,
      0, 0, 0, 0,
    ]);
    expect(probeDimensions(jpeg)).toEqual({ width: 600, height: 300 });
  });
  it("says nothing about non-images", () => {
    expect(probeDimensions(new TextEncoder().encode("not an image at all, no header here"))).toBeUndefined();
  });
});

describe("ComfyUI errors read like instructions", () => {
  it("names the node, class and input of a missing checkpoint (POST_prompt__error_missing_checkpoint.json)", () => {
    const error = validationError(missingCheckpoint.body);
    expect(error.kind).toBe("validation");
    expect(error.message).toContain("node 1 (CheckpointLoaderSimple)");
    expect(error.message).toContain("ckpt_name: 'sd15.safetensors' not in []");
    expect(error.message).toContain("nothing of this kind is installed");
  });
  it("renders a missing input and a wrong type (…__error_missing_input.json, …__error_wrong_type.json)", () => {
    expect(validationError(missingInput.body).message).toMatch(
      /node 1 \(EmptyImage\): required input 'width' is missing/,
    );
    expect(validationError(wrongType.body).message).toMatch(/width: Failed to convert an input value to a INT value/);
  });
  it("keeps the top-level message when no node is to blame (…__error_unknown_class.json)", () => {
    expect(validationError(unknownClass.body).message).toBe(
      "Cannot execute because node NoSuchNode does not exist.: Node ID '#1' (invalid_prompt)",
    );
  });
  it("summarises an execution error without the traceback (WS_ws__execution_error.json)", () => {
    const error = executionError(executionErrorSample.payload);
    expect(error.message).toBe(
      "ComfyUI failed while running node 2 (ImageToMask): [IndexError] index 3 is out of bounds for dimension 3 with size 3",
    );
    expect(error.message).not.toContain("/opt/ComfyUI");
  });
  // The payload of shared/comfyui-samples/GET_history_prompt_id__execution_error.json (the same run
  // as WS_ws__execution_error.json), with ComfyUI's exception text made as long as real ones get:
  // a multi-line message (OOM tips, nested errors) and a server path in its first line.
  const historyPayload = (entryOf(historyExecutionError).status?.messages?.find(
    ([name]) => name === "execution_error",
  )?.[1] ?? {}) as Partial<ExecutionErrorPayload>;
  it("reads the failing node and first line from the history sample (…__execution_error.json)", () => {
    const job = toJobError(executionError(historyPayload));
    expect(job).toEqual({
      kind: "execution",
      message:
        "ComfyUI failed while running node 2 (ImageToMask): [IndexError] index 3 is out of bounds for dimension 3 with size 3",
      node_id: "2",
      node_type: "ImageToMask",
      exception_type: "IndexError",
      exception_message: "index 3 is out of bounds for dimension 3 with size 3",
    });
  });
  it("gives a job error only the first line of the exception, without server paths or tracebacks", () => {
    const job = toJobError(
      executionError({
        ...historyPayload,
        exception_message:
          "Error while loading '/opt/ComfyUI/models/checkpoints/sd/v1-5.ckpt' and C:\\ComfyUI\\custom_nodes\\x.py (see https://docs.comfy.org/a/b)\n" +
          'Traceback (most recent call last):\n  File "/opt/ComfyUI/execution.py", line 496, in execute\n',
      }),
    );
    const expected = "Error while loading '…/v1-5.ckpt' and …/x.py (see https://docs.comfy.org/a/b)";
    expect(job.exception_message).toBe(expected);
    expect(job.message).toBe(`ComfyUI failed while running node 2 (ImageToMask): [IndexError] ${expected}`);
    expect(JSON.stringify(job)).not.toMatch(/\\n|Traceback|\/opt\/|custom_nodes/);
  });
});

describe("defaults", () => {
  it("layers COMFY_MCP_DEFAULT_IMAGE_<KEY> over built-ins and rejects mistyped values", () => {
    const env = {
      COMFY_MCP_DEFAULT_IMAGE_STEPS: "30",
      COMFY_MCP_DEFAULT_IMAGE_CFG: "6.5",
      COMFY_MCP_DEFAULT_IMAGE_WIDTH: "7.5",
    } as unknown as Env;
    const resolved = resolveDefaults(env, "image");
    expect(resolved.values.steps).toBe(30);
    expect(resolved.sources.steps).toBe("env");
    expect(resolved.values.cfg).toBe(6.5);
    expect(resolved.values.width).toBe(512);
    expect(resolved.invalid).toEqual(['COMFY_MCP_DEFAULT_IMAGE_WIDTH="7.5" is not a valid number']);
  });
});

describe("binary WebSocket frames (comfyui-api.md §8.5)", () => {
  const frame = (type: number, ...parts: Uint8Array[]) => {
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, type);
    const all = [header, ...parts];
    const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of all) {
      out.set(p, at);
      at += p.length;
    }
    return out.buffer;
  };
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };
  const utf8 = (s: string) => new TextEncoder().encode(s);

  it("reads a type 1 preview: format at byte 4, image from byte 8", () => {
    expect(parseBinaryFrame(frame(1, u32(2), new Uint8Array(100)))).toEqual({
      kind: "preview",
      mime: "image/png",
      bytes: 100,
    });
  });
  it("reads type 3 node text", () => {
    expect(parseBinaryFrame(frame(3, u32(2), utf8("12"), utf8("loading model 40%")))).toEqual({
      kind: "text",
      node_id: "12",
      text: "loading model 40%",
    });
  });
  it("reads a type 4 preview with its prompt id", () => {
    const meta = utf8(JSON.stringify({ node_id: "3", prompt_id: "p1", image_type: "image/jpeg" }));
    expect(parseBinaryFrame(frame(4, u32(meta.length), meta, new Uint8Array(10)))).toEqual({
      kind: "preview",
      mime: "image/jpeg",
      bytes: 10,
      prompt_id: "p1",
      node_id: "3",
    });
  });
  it("rejects truncated frames instead of throwing", () => {
    expect(parseBinaryFrame(frame(3, u32(50), utf8("x")))).toBeUndefined();
    expect(parseBinaryFrame(new ArrayBuffer(3))).toBeUndefined();
  });
});

describe("public-URL check for input media (SSRF)", async () => {
  const { isPrivateHost } = await import("../../src/net/public-url");
  const host = (url: string) => new URL(url).hostname;
  it("refuses every spelling of loopback, private, link-local, mapped and local names", () => {
    for (const url of [
      "https://127.0.0.1/",
      "https://2130706433/",
      "https://0x7f.1/",
      "https://017700000001/",
      "https://127.1/",
      "https://localhost./",
      "https://LOCALHOST/",
      "https://a.localhost/",
      "https://[::1]/",
      "https://[0:0:0:0:0:0:0:1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://[64:ff9b::7f00:1]/",
      "https://[fd00::1]/",
      "https://[fe80::1]/",
      "https://10.1.2.3/",
      "https://172.20.0.1/",
      "https://192.168.1.1/",
      "https://169.254.169.254/",
      "https://100.64.0.1/",
      "https://0.0.0.0/",
      "https://printer.local/",
    ]) {
      expect(isPrivateHost(host(url)), url).toBe(true);
    }
  });
  // Each notation of a private or special address the URL parser accepts, as a host fetch() would use.
  it("refuses IPv6 transition forms of private addresses, in hex and dotted notation", () => {
    for (const url of [
      "https://[::ffff:7f00:1]/", // IPv4-mapped 127.0.0.1, hex
      "https://[0:0:0:0:0:ffff:10.0.0.1]/", // IPv4-mapped, dotted, uncompressed
      "https://[::ffff:a9fe:a9fe]/", // IPv4-mapped metadata address 169.254.169.254
      "https://[::ffff:8.8.8.8]/", // IPv4-mapped: refused whatever it embeds
      "https://[::127.0.0.1]/", // IPv4-compatible ::/96, dotted
      "https://[::a00:1]/", // IPv4-compatible, hex
      "https://[::]/", // unspecified
      "https://[64:ff9b::10.0.0.1]/", // NAT64 well-known prefix, dotted
      "https://[64:ff9b:1::a00:1]/", // NAT64 local-use 64:ff9b:1::/48
      "https://[2002:7f00:1::]/", // 6to4 of 127.0.0.1
      "https://[2002:a00:1::1]/", // 6to4 of 10.0.0.1
      "https://[2002:c0a8:101::]/", // 6to4 of 192.168.1.1
      "https://[2002:a9fe:a9fe::]/", // 6to4 of the metadata address
      "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", // Teredo 2001::/32
      "https://[2001:2::1]/", // benchmarking 2001:2::/48
      "https://[2001:10::1]/", // ORCHID
      "https://[2001:20::1]/", // ORCHIDv2
      "https://[2001:db8::1]/", // documentation
      "https://[3fff::1]/", // documentation (RFC 9637)
      "https://[100::1]/", // discard-only
      "https://[fc00::1]/", // unique local
      "https://[fec0::1]/", // site-local (deprecated)
      "https://[ff02::1]/", // multicast
      "https://[FE80::1]/", // link-local, upper case
    ])
      expect(isPrivateHost(host(url)), url).toBe(true);
  });
  it("refuses special IPv4 ranges: documentation, benchmarking, protocol assignments, multicast, reserved", () => {
    for (const address of [
      "192.0.0.8",
      "192.0.2.1",
      "192.88.99.1",
      "198.18.0.1",
      "198.19.255.254",
      "198.51.100.7",
      "203.0.113.9",
      "224.0.0.1",
      "239.255.255.250",
      "240.0.0.1",
      "255.255.255.255",
      "172.31.255.255",
      "100.127.255.255",
    ])
      expect(isPrivateHost(address), address).toBe(true);
  });
  it("refuses names that are local by convention and malformed numeric hosts", () => {
    for (const name of ["nas.lan", "router.home", "db.internal", "x.intranet", "a.corp", "b.private", "c.home.arpa"])
      expect(isPrivateHost(name), name).toBe(true);
    for (const raw of ["1.2.3.4.5", "999.1.1.1", "::ffff:zz", "1::2::3", ""])
      expect(isPrivateHost(raw), raw).toBe(true);
  });
  it("takes raw (unparsed) spellings too: the check does its own canonicalisation", () => {
    for (const raw of ["127.1", "0x7f000001", "[::1]", "0:0:0:0:0:ffff:7f00:1", "::ffff:127.0.0.1", "2002:0a00:0001::"])
      expect(isPrivateHost(raw), raw).toBe(true);
  });
  it("accepts public names and addresses, including public 6to4", () => {
    for (const url of [
      "https://example.com/",
      "https://cdn.example.org./",
      "https://8.8.8.8/",
      "https://198.20.0.1/",
      "https://192.0.3.1/",
      "https://[2606:4700::1111]/",
      "https://[2001:4860:4860::8888]/",
      "https://[2002:808:808::]/",
    ])
      expect(isPrivateHost(host(url)), url).toBe(false);
  });
  it("refuses the gateway's own ComfyUI backends as media URLs, by hostname", () => {
    const spec = { name: "image" } as Parameters<typeof checkPublicUrl>[0];
    const backends = ["https://comfy.example.com", "https://gpu2.example.net:8443"];
    for (const url of ["https://comfy.example.com/view?filename=x.png", "https://GPU2.example.net./x.png"])
      expect(() => checkPublicUrl(spec, url, backends), url).toThrow(
        /'image': [\w.]+ is one of this gateway's ComfyUI backends, which is never fetched as a media URL; pass an asset_id/,
      );
    expect(() => checkPublicUrl(spec, "https://cdn.example.com/x.png", backends)).not.toThrow();
  });
});

describe("browser Origins and loopback mode (issue #13, findings 5 and 6)", () => {
  const deployedEnv = { PUBLIC_URL: "https://gw.example.com" } as Env;
  const localEnv = { PUBLIC_URL: "http://127.0.0.1:8787", ALLOW_UNAUTHENTICATED_LOCAL: "true" } as Env;
  const request = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });
  const verdict = (env: Env, url: string, origin: string) => {
    const req = request(url, { Origin: origin });
    return foreignOrigin(req, allowedOrigins(req, env))?.status ?? 200;
  };
  it("matches PUBLIC_URL's origin exactly: scheme, host and port", () => {
    const url = "https://gw.example.com/mcp";
    expect(verdict(deployedEnv, url, "https://gw.example.com")).toBe(200);
    expect(verdict(deployedEnv, url, "https://gw.example.com:443")).toBe(200); // the same origin, spelled out
    for (const origin of [
      "http://gw.example.com",
      "https://gw.example.com:8443",
      "https://evil.gw.example.com",
      "http://localhost:8787",
      "http://127.0.0.1:8787",
      "null",
      "garbage",
    ])
      expect(verdict(deployedEnv, url, origin), origin).toBe(403);
  });
  it("allows this gateway's own loopback origins only in loopback mode, on its port", () => {
    const url = "http://127.0.0.1:8787/mcp";
    for (const origin of ["http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787"])
      expect(verdict(localEnv, url, origin), origin).toBe(200);
    for (const origin of [
      "https://127.0.0.1:8787",
      "http://localhost:3000",
      "http://127.0.0.1",
      "http://127.0.0.2:8787",
    ])
      expect(verdict(localEnv, url, origin), origin).toBe(403);
    // Not loopback mode (through a proxy): the loopback origins other than PUBLIC_URL's are refused.
    const proxied = request(url, { Origin: "http://localhost:8787", "X-Forwarded-For": "203.0.113.7" });
    expect(foreignOrigin(proxied, allowedOrigins(proxied, localEnv))?.status).toBe(403);
  });
  it("lets requests without an Origin through (CLIs, SDKs, server-side agents)", () => {
    const req = request("https://gw.example.com/mcp");
    expect(foreignOrigin(req, allowedOrigins(req, deployedEnv))).toBeUndefined();
  });
  it("turns loopback mode on only with the flag, a loopback PUBLIC_URL, its exact host and port, and no proxy headers", () => {
    const local = (url: string, env = localEnv, headers: Record<string, string> = {}) =>
      loopbackMode(request(url, headers), env);
    expect(local("http://127.0.0.1:8787/mcp").local).toBe(true);
    expect(local("http://[::1]:8787/mcp").local).toBe(true);
    expect(local("http://localhost:8787/mcp", { ...localEnv, ALLOW_UNAUTHENTICATED_LOCAL: "false" })).toEqual({
      local: false,
      reason: "ALLOW_UNAUTHENTICATED_LOCAL is not set (only `npm start` sets it)",
    });
    expect(local("http://127.0.0.1:8787/mcp", { ...localEnv, PUBLIC_URL: "https://gw.example.com" })).toEqual({
      local: false,
      reason: "PUBLIC_URL is not a loopback URL (this looks like a deployment)",
    });
    for (const url of [
      "http://localhost/mcp",
      "http://127.0.0.1:8788/mcp",
      "http://localhost.:8787/mcp",
      "http://[::ffff:7f00:1]:8787/mcp",
    ])
      expect(local(url), url).toMatchObject({
        local: false,
        reason: expect.stringMatching(
          /^the request's host .* is not 127\.0\.0\.1:8787 or localhost:8787 or \[::1\]:8787$/,
        ),
      });
    for (const header of ["X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host"])
      expect(local("http://127.0.0.1:8787/mcp", localEnv, { [header]: "203.0.113.7" }), header).toEqual({
        local: false,
        reason: `the request came through a proxy (it carries ${header.toLowerCase()})`,
      });
    expect(local("http://127.0.0.1:8787/mcp", localEnv, { "CF-Connecting-IP": "127.0.0.1" }).local).toBe(true); // wrangler dev's own
    expect(local("http://127.0.0.1:8787/mcp", localEnv, { "CF-Connecting-IP": "2001:4860::1" })).toEqual({
      local: false,
      reason: "the request came from another machine (CF-Connecting-IP)",
    });
  });
});
