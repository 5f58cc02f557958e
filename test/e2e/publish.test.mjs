// Publishing end to end through wrangler dev and local R2: demo and library modes, formats that
// match their extension, byte budgets, overwrite refusal, the manifest under concurrent publishes,
// the public route, list_published and unpublish, and every error code.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { connectV1, connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

let fake;
let gateway;
let client;
const text = (result) => result.content?.find((c) => c.type === "text")?.text ?? "";
const code = (result) => /"error_code": "([A-Z_]+)"/.exec(text(result))?.[1];
const magic = (bytes) =>
  bytes[0] === 0xff && bytes[1] === 0xd8
    ? "jpeg"
    : bytes[0] === 0x89 && bytes[1] === 0x50
      ? "png"
      : String.fromCharCode(...bytes.slice(8, 12)) === "WEBP"
        ? "webp"
        : "other";

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1, nodeDelayMs: 1 });
  gateway = await startGateway({ comfyUrl: fake.url, vars: { COMFY_MCP_WAIT_SECONDS: "30" } });
  client = await connectV2(gateway.mcpUrl);
});

afterAll(async () => {
  await client?.close();
  await gateway?.stop();
  await fake?.close();
});

const image = async (size = 512) =>
  (await client.call("generate_image", { prompt: "a lighthouse at dusk", width: size, height: size, steps: 2 }))
    .structuredContent;

describe("publishing", () => {
  it("get_publish_info says it is ready and what is missing", async () => {
    const info = (await client.call("get_publish_info")).structuredContent;
    expect(info).toMatchObject({
      status: "ready",
      bucket_bound: true,
      prefix: "gen/",
      manifest_key: "gen/manifest.json",
      default_max_bytes: 600000,
      public_base_url_configured: false,
    });
    expect(info.missing.join(" ")).toMatch(/PUBLIC_BASE_URL/);
  });

  it("demo mode writes the format the extension names, within budget, served at the public URL", async () => {
    const source = await image(768);
    for (const [name, format, mime] of [
      ["hero.jpg", "jpeg", "image/jpeg"],
      ["hero.webp", "webp", "image/webp"],
      ["hero.png", "png", "image/png"],
    ]) {
      const result = await client.call("publish_asset", {
        asset_id: source.asset_id,
        target_filename: name,
        max_bytes: 200_000,
      });
      expect(result.isError, text(result)).toBeFalsy();
      const data = result.structuredContent;
      expect(data).toMatchObject({ key: `gen/${name}`, mime_type: mime, format });
      expect(data.bytes_size).toBeLessThanOrEqual(200_000);
      const served = await fetch(data.dest_url);
      expect(served.status).toBe(200);
      expect(served.headers.get("content-type")).toBe(mime);
      const bytes = new Uint8Array(await served.arrayBuffer());
      expect(bytes.length).toBe(data.bytes_size);
      expect(magic(bytes)).toBe(format);
    }
  });

  it("overwrite=false refuses to replace; impossible budgets and bad names give their codes", async () => {
    const source = await image(256);
    await client.call("publish_asset", { asset_id: source.asset_id, target_filename: "once.webp" });
    expect(
      code(
        await client.call("publish_asset", {
          asset_id: source.asset_id,
          target_filename: "once.webp",
          overwrite: false,
        }),
      ),
    ).toBe("TARGET_EXISTS");
    expect(
      code(await client.call("publish_asset", { asset_id: source.asset_id, target_filename: "../etc/passwd.png" })),
    ).toBe("INVALID_TARGET_FILENAME");
    expect(code(await client.call("publish_asset", { asset_id: source.asset_id, target_filename: "Hero.PNG" }))).toBe(
      "INVALID_TARGET_FILENAME",
    );
    expect(code(await client.call("publish_asset", { asset_id: source.asset_id }))).toBe("MANIFEST_KEY_REQUIRED");
    expect(code(await client.call("publish_asset", { asset_id: source.asset_id, manifest_key: "Bad Key" }))).toBe(
      "INVALID_MANIFEST_KEY",
    );
    expect(code(await client.call("publish_asset", { asset_id: "nope", target_filename: "x.png" }))).toBe(
      "ASSET_NOT_FOUND_OR_EXPIRED",
    );
    expect(
      code(
        await client.call("publish_asset", { asset_id: source.asset_id, target_filename: "tiny.png", max_bytes: 1000 }),
      ),
    ).toBe("BUDGET_UNREACHABLE");
    const song = (await client.call("generate_song", { tags: "a", lyrics: "b", seconds: 5, steps: 2 }))
      .structuredContent;
    expect(code(await client.call("publish_asset", { asset_id: song.asset_id, target_filename: "song.png" }))).toBe(
      "UNSUPPORTED_ASSET",
    );
    const mp3 = (await client.call("publish_asset", { asset_id: song.asset_id, manifest_key: "theme-song" }))
      .structuredContent;
    expect(mp3).toMatchObject({ mime_type: "audio/mpeg" });
    expect(mp3.filename).toMatch(/^theme-song\.[0-9a-f]{12}\.mp3$/);
  });

  it("library mode: content-hashed immutable names and a manifest that keeps every concurrent entry", async () => {
    const sources = [];
    for (let i = 0; i < 4; i++) sources.push(await image(128));
    const other = await connectV1(gateway.mcpUrl);
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, n) =>
          (n % 2 ? client : other).call("publish_asset", {
            asset_id: sources[n % 4].asset_id,
            manifest_key: `tile-${n}`,
            web_optimize: true,
          }),
        ),
      );
      for (const result of results) expect(result.isError, text(result)).toBeFalsy();
      const first = results[0].structuredContent;
      expect(first.filename).toMatch(/^tile-0\.[0-9a-f]{12}\.webp$/);
      const manifest = await (await fetch(`${gateway.url}/published/gen/manifest.json`)).json();
      for (let n = 0; n < 10; n++)
        expect(manifest[`tile-${n}`]).toMatchObject({
          format: "webp",
          asset_id: sources[n % 4].asset_id,
          url: expect.stringContaining(`/published/gen/tile-${n}.`),
        });
      const served = await fetch(first.dest_url);
      expect(served.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    } finally {
      await other.close();
    }
  });

  it("list_published shows files with provenance; unpublish deletes the file and its manifest entries", async () => {
    const source = await image(128);
    await client.call("publish_asset", {
      asset_id: source.asset_id,
      target_filename: "gone.png",
      manifest_key: "gone",
    });
    const listed = (await client.call("list_published")).structuredContent;
    const entry = listed.files.find((f) => f.key === "gen/gone.png");
    expect(entry).toMatchObject({ asset_id: source.asset_id, workflow_id: "generate_image", mime_type: "image/png" });
    expect(listed.files.some((f) => f.key === "gen/manifest.json")).toBe(false);
    const removed = (await client.call("unpublish", { filename: "gone.png" })).structuredContent;
    expect(removed).toMatchObject({ key: "gen/gone.png", deleted: true, manifest_entries_removed: ["gone"] });
    expect((await fetch(`${gateway.url}/published/gen/gone.png`)).status).toBe(404);
    expect((await fetch(`${gateway.url}/published/../gen/manifest.json`)).status).toBe(404);
  });
});
