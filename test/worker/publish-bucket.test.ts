// Publishing to local R2 inside workerd: create-only writes, the manifest under 20 concurrent
// publishes (no lost entry), and a corrupt manifest reported instead of overwritten.
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import {
  PublishError,
  publishConfig,
  putPublished,
  readManifest,
  updateManifest,
  type ManifestEntry,
} from "../../src/publish/bucket";

const bucket = env.ASSETS_BUCKET;
const meta = { contentType: "image/webp", cacheControl: "public, max-age=300", custom: { asset_id: "a1" } };
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
    await putPublished(bucket, "gen/hero.webp", new Uint8Array([1, 2, 3]), meta, true);
    const stored = await bucket.head("gen/hero.webp");
    expect(stored?.httpMetadata?.contentType).toBe("image/webp");
    expect(stored?.httpMetadata?.cacheControl).toBe("public, max-age=300");
    expect(stored?.customMetadata).toEqual({ asset_id: "a1" });
    await expect(putPublished(bucket, "gen/hero.webp", new Uint8Array([9]), meta, false)).rejects.toMatchObject({
      code: "TARGET_EXISTS",
    });
    expect(new Uint8Array(await (await bucket.get("gen/hero.webp"))!.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    await putPublished(bucket, "gen/hero.webp", new Uint8Array([7]), meta, true);
    expect(new Uint8Array(await (await bucket.get("gen/hero.webp"))!.arrayBuffer())).toEqual(new Uint8Array([7]));
  });
});

describe("the manifest", () => {
  it("keeps every entry of 20 parallel publishes (etag-conditional writes with retry)", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) =>
        updateManifest(bucket, "gen/manifest.json", (m) => void (m[`key-${n}`] = entry(n))),
      ),
    );
    const manifest = await readManifest(bucket, "gen/manifest.json");
    expect(Object.keys(manifest).sort()).toEqual(Array.from({ length: 20 }, (_, n) => `key-${n}`).sort());
    expect(manifest["key-7"]).toEqual(entry(7));
    expect(results.some((r) => r.attempts > 1)).toBe(true); // there really was contention
  });

  it("reports a corrupt manifest and leaves it untouched", async () => {
    await bucket.put("gen/manifest.json", "{ broken");
    const attempt = updateManifest(bucket, "gen/manifest.json", (m) => void (m.x = entry(1)));
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
    expect(
      publishConfig({ ...env, PUBLIC_BASE_URL: "https://cdn.example/" } as Env, "https://gw.example").baseUrl,
    ).toBe("https://cdn.example");
  });
});
