// Publishing to local R2 inside workerd: create-only writes, each object's principal and who may
// replace it, the key layout per principal, the manifest under 20 concurrent publishes (no lost
// entry), a corrupt manifest reported instead of overwritten, and source reads that stop at the budget.
import { env } from "cloudflare:test";
import type { CallToolResult, McpServer } from "@modelcontextprotocol/server";
import { afterEach, describe, expect, it } from "vitest";
import {
  MAX_PUBLISH_BYTES,
  ownerOf,
  PublishError,
  publishConfig,
  putPublished,
  readManifest,
  updateManifest,
  type ManifestEntry,
} from "../../src/publish/bucket";
import { inNamespace, isManifestKey, namespaceOf } from "../../src/publish/principals";
import { readAtMost } from "../../src/publish/source";
import type { ToolContext } from "../../src/tools/context";
import { registerPublishTools } from "../../src/tools/publish";

const bucket = env.ASSETS_BUCKET;
const meta = { contentType: "image/webp", cacheControl: "public, max-age=300", custom: { asset_id: "a1" } };
const asOwner = (overwrite: boolean) => ({ overwrite, principal: "owner" });
const asMallory = (overwrite: boolean) => ({ overwrite, principal: "mallory" });
const config = publishConfig(env as Env, "https://gw.example");
const entry = (n: number): ManifestEntry => ({
  url: `https://cdn.example/gen/f${n}.webp`,
  filename: `f${n}.webp`,
  width: 8,
  height: 8,
  bytes: 10,
  format: "webp",
  asset_id: `a${n}`,
  published_at: new Date(0).toISOString(),
});

afterEach(async () => {
  const listed = await bucket.list();
  for (const object of listed.objects) await bucket.delete(object.key);
});

describe("published files", () => {
  it("writes with type, cache policy and provenance; overwrite=false refuses to replace", async () => {
    await putPublished(bucket, "gen/hero.webp", new Uint8Array([1, 2, 3]), meta, asOwner(true));
    const stored = await bucket.head("gen/hero.webp");
    expect(stored?.httpMetadata?.contentType).toBe("image/webp");
    expect(stored?.httpMetadata?.cacheControl).toBe("public, max-age=300");
    expect(stored?.customMetadata).toEqual({ asset_id: "a1", principal: "owner" });
    await expect(
      putPublished(bucket, "gen/hero.webp", new Uint8Array([9]), meta, asOwner(false)),
    ).rejects.toMatchObject({
      code: "TARGET_EXISTS",
    });
    expect(new Uint8Array(await (await bucket.get("gen/hero.webp"))!.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    await putPublished(bucket, "gen/hero.webp", new Uint8Array([7]), meta, asOwner(true));
    expect(new Uint8Array(await (await bucket.get("gen/hero.webp"))!.arrayBuffer())).toEqual(new Uint8Array([7]));
  });

  it("another principal cannot replace a file, even with overwrite=true; one with no principal recorded is the owner's", async () => {
    await putPublished(bucket, "gen/users/mallory/hero.webp", new Uint8Array([1]), meta, asMallory(true));
    await expect(
      putPublished(bucket, "gen/users/mallory/hero.webp", new Uint8Array([2]), meta, asOwner(true)),
    ).rejects.toMatchObject({
      code: "NOT_YOUR_FILE",
      message: expect.stringMatching(/was published by another user; you can replace or unpublish only your own files/),
    });
    await bucket.put("gen/legacy.png", new Uint8Array([5])); // written before principals were recorded
    expect(ownerOf((await bucket.head("gen/legacy.png"))!)).toBe("owner");
    await expect(
      putPublished(bucket, "gen/legacy.png", new Uint8Array([6]), meta, asMallory(true)),
    ).rejects.toMatchObject({ code: "NOT_YOUR_FILE" });
    expect(new Uint8Array(await (await bucket.get("gen/legacy.png"))!.arrayBuffer())).toEqual(new Uint8Array([5]));
    await putPublished(bucket, "gen/legacy.png", new Uint8Array([6]), meta, asOwner(true));
    expect((await bucket.head("gen/legacy.png"))?.customMetadata?.principal).toBe("owner");
  });

  it("concurrent replacements by the owner all land (each write is conditional on the etag it checked)", async () => {
    await putPublished(bucket, "gen/busy.webp", new Uint8Array([0]), meta, asOwner(true));
    await Promise.all(
      Array.from({ length: 6 }, (_, n) =>
        putPublished(bucket, "gen/busy.webp", new Uint8Array([n + 1]), meta, asOwner(true)),
      ),
    );
    expect((await bucket.head("gen/busy.webp"))?.customMetadata?.principal).toBe("owner");
  });
});

describe("key layout per principal", () => {
  it("the owner keeps the publish prefix and its manifest; others get users/<principal>/ and their own manifest", () => {
    expect(namespaceOf(config, "owner")).toEqual({
      principal: "owner",
      prefix: "gen/",
      manifestKey: "gen/manifest.json",
    });
    expect(namespaceOf(config, "mallory")).toEqual({
      principal: "mallory",
      prefix: "gen/users/mallory/",
      manifestKey: "gen/users/mallory/manifest.json",
    });
    expect(() => namespaceOf(config, "a/b")).toThrow(/letters, digits/);
  });

  it("a user's folder is not the owner's file, manifests of every principal are recognised", () => {
    const owner = namespaceOf(config, "owner");
    const mallory = namespaceOf(config, "mallory");
    expect(inNamespace(owner, "gen/hero.png")).toBe(true);
    expect(inNamespace(owner, "gen/users/mallory/hero.png")).toBe(false);
    expect(inNamespace(mallory, "gen/users/mallory/hero.png")).toBe(true);
    expect(inNamespace(mallory, "gen/hero.png")).toBe(false);
    expect(inNamespace(mallory, "gen/users/mallory2/hero.png")).toBe(false);
    for (const key of ["gen/manifest.json", "gen/users/mallory/manifest.json", "gen/users/bob/manifest.json"])
      expect(isManifestKey(config, key)).toBe(true);
    for (const key of [
      "gen/hero.png",
      "gen/users/mallory/hero.png",
      "gen/users/manifest.json",
      "gen/x/y/manifest.json",
    ])
      expect(isManifestKey(config, key)).toBe(false);
  });
});

describe("the manifest", () => {
  it("keeps every entry of 20 parallel publishes (etag-conditional writes with retry)", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) =>
        updateManifest(bucket, "gen/manifest.json", "owner", (m) => void (m[`key-${n}`] = entry(n))),
      ),
    );
    const manifest = await readManifest(bucket, "gen/manifest.json");
    expect(Object.keys(manifest).sort()).toEqual(Array.from({ length: 20 }, (_, n) => `key-${n}`).sort());
    expect(manifest["key-7"]).toEqual(entry(7));
    expect(results.some((r) => r.attempts > 1)).toBe(true); // there really was contention
  });

  it("records its principal; another principal cannot write it; one from before belongs to the owner", async () => {
    await updateManifest(bucket, "gen/users/mallory/manifest.json", "mallory", (m) => void (m.a = entry(1)));
    expect((await bucket.head("gen/users/mallory/manifest.json"))?.customMetadata).toEqual({ principal: "mallory" });
    await expect(
      updateManifest(bucket, "gen/users/mallory/manifest.json", "owner", (m) => void (m.b = entry(2))),
    ).rejects.toMatchObject({ code: "NOT_YOUR_FILE" });
    await bucket.put("gen/manifest.json", JSON.stringify({ old: entry(3) }));
    await expect(
      updateManifest(bucket, "gen/manifest.json", "mallory", (m) => void (m.c = entry(4))),
    ).rejects.toMatchObject({ code: "NOT_YOUR_FILE" });
    await updateManifest(bucket, "gen/manifest.json", "owner", (m) => void (m.d = entry(5)));
    expect(Object.keys(await readManifest(bucket, "gen/manifest.json")).sort()).toEqual(["d", "old"]);
  });

  it("reports a corrupt manifest and leaves it untouched", async () => {
    await bucket.put("gen/manifest.json", "{ broken");
    const attempt = updateManifest(bucket, "gen/manifest.json", "owner", (m) => void (m.x = entry(1)));
    await expect(attempt).rejects.toBeInstanceOf(PublishError);
    await expect(attempt).rejects.toMatchObject({ code: "MANIFEST_CORRUPT" });
    expect(await (await bucket.get("gen/manifest.json"))!.text()).toBe("{ broken");
  });

  it("derives its configuration: prefix, manifest key, gateway fallback URL", () => {
    const config = publishConfig({ ...env, PUBLISH_PREFIX: "site/img" } as Env, "https://gw.example");
    expect(config).toMatchObject({
      prefix: "site/img/",
      manifestKey: "site/img/manifest.json",
      baseUrl: "https://gw.example/published",
      baseUrlConfigured: false,
      maxBytes: 600_000,
    });
    expect(publishConfig({ ...env, PUBLISH_MAX_BYTES: "900000000" } as Env, "https://gw.example").maxBytes).toBe(
      MAX_PUBLISH_BYTES,
    );
    expect(
      publishConfig({ ...env, PUBLIC_BASE_URL: "https://cdn.example/" } as Env, "https://gw.example").baseUrl,
    ).toBe("https://cdn.example");
  });
});

describe("reading a source for publishing", () => {
  /** A body of `chunks` pieces of `size` bytes that counts how many pieces were pulled. */
  const counted = (chunks: number, size: number) => {
    const state = { pulled: 0, cancelled: false };
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (state.pulled === chunks) return controller.close();
        state.pulled++;
        controller.enqueue(new Uint8Array(size).fill(state.pulled));
      },
      cancel() {
        state.cancelled = true;
      },
    });
    return { body, state };
  };

  it("refuses a declared Content-Length over the limit without reading the body", async () => {
    const { body, state } = counted(100, 1000);
    const response = new Response(body, { headers: { "Content-Length": "100000" } });
    expect(await readAtMost(response, 5000, "/view", 1000)).toBeNull();
    expect(state.pulled).toBeLessThanOrEqual(1); // a stream may prefetch one piece; nothing is drained
    expect(state.cancelled).toBe(true);
  });

  it("stops an undeclared body as soon as it passes the limit", async () => {
    const { body, state } = counted(100, 1000);
    expect(await readAtMost(new Response(body), 5000, "/view", 1000)).toBeNull();
    expect(state.pulled).toBeLessThanOrEqual(7);
    expect(state.cancelled).toBe(true);
  });

  it("returns the whole body when it fits", async () => {
    const { body } = counted(5, 1000);
    const bytes = await readAtMost(new Response(body), 5000, "/view", 1000);
    expect(bytes?.length).toBe(5000);
    expect(bytes?.[4999]).toBe(5);
  });
});

describe("the publish tools", () => {
  type Handler = (args: Record<string, unknown>) => Promise<CallToolResult>;
  /** The tools as registered, called directly with a caller of the given principal and scopes. */
  const toolsFor = (principal: string, scopes: string[]) => {
    const handlers = new Map<string, Handler>();
    const server = {
      registerTool: (name: string, _definition: unknown, handler: Handler) => handlers.set(name, handler),
    };
    const context = { env, config: { publicUrl: "https://gw.example" }, principal, scopes: new Set(scopes) };
    registerPublishTools(server as unknown as McpServer, context as unknown as ToolContext);
    return (name: string, args: Record<string, unknown> = {}) => handlers.get(name)!(args);
  };
  const text = (result: CallToolResult) => (result.content[0] as { text: string }).text;

  it("list_published and get_publish_info need the 'generate' scope", async () => {
    const call = toolsFor("owner", ["publish", "admin"]);
    for (const name of ["list_published", "get_publish_info"]) {
      const result = await call(name);
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/^This connection was not granted the 'generate' scope\. Reconnect the app/);
    }
    expect((await toolsFor("owner", ["generate"])("list_published")).isError).toBeFalsy();
  });

  it("unpublish refuses every manifest key, the owner's included, and deletes nothing", async () => {
    await bucket.put("gen/manifest.json", "{}");
    await bucket.put("gen/users/bob/manifest.json", "{}", { customMetadata: { principal: "bob" } });
    for (const [principal, filename] of [
      ["owner", "manifest.json"],
      ["owner", "gen/users/bob/manifest.json"],
      ["bob", "manifest.json"],
      ["bob", "gen/manifest.json"],
    ] as const) {
      const result = await toolsFor(principal, ["publish"])("unpublish", { filename });
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/ is a manifest; unpublish never deletes one\./);
      expect(text(result)).toMatch(/"error_code": "MANIFEST_PROTECTED"/);
    }
    expect(await bucket.head("gen/manifest.json")).not.toBeNull();
    expect(await bucket.head("gen/users/bob/manifest.json")).not.toBeNull();
  });

  it("unpublish refuses traversal-shaped names as invalid, before looking at the bucket", async () => {
    for (const filename of ["../../etc/passwd", "gen/../../etc/passwd", "/etc/passwd", "gen//hero.png", "Hero.PNG"]) {
      const result = await toolsFor("owner", ["publish"])("unpublish", { filename });
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/is not a published file name; list_published shows yours/);
      expect(text(result)).toMatch(/"error_code": "INVALID_TARGET_FILENAME"/);
    }
  });
});
