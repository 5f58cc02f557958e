import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { CLIENTS } from "./clients.mjs";
import { putLocalR2Object, startGateway } from "./gateway.mjs";

const OWNER_TOKEN = randomBytes(24).toString("hex");
const MALLORY_TOKEN = randomBytes(24).toString("hex");
const LEGACY_BYTES = Buffer.from("published before principals were recorded");

let fake;
let gateway;
let stateDir;
const text = (result) => result.content?.find((c) => c.type === "text")?.text ?? "";
const code = (result) => /"error_code": "([A-Z_]+)"/.exec(text(result))?.[1];
const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const sha = (bytes) => createHash("sha256").update(bytes).digest("hex");
const served = async (key) => {
  const response = await fetch(`${gateway.url}/published/${key}`);
  return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
};
/** The refusal, matched positively: its code and the sentence that says why. */
const refused = (result, errorCode, why) => {
  expect(result.isError, text(result)).toBe(true);
  expect(code(result)).toBe(errorCode);
  expect(text(result)).toMatch(why);
};

beforeAll(async () => {
  // An object written by the gateway before principals were recorded: no custom metadata at all.
  stateDir = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-principals-"));
  const file = join(stateDir, "legacy.png");
  writeFileSync(file, LEGACY_BYTES);
  await putLocalR2Object(join(stateDir, "state"), "gen/legacy.png", file, "image/png");
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1, nodeDelayMs: 1 });
  gateway = await startGateway({
    comfyUrl: fake.url,
    persistDir: join(stateDir, "state"),
    vars: { COMFY_MCP_WAIT_SECONDS: "30", MCP_TOKENS: `owner:${OWNER_TOKEN},mallory:${MALLORY_TOKEN}` },
  });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await fake?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

describe.each(CLIENTS)("two token users with the %s", (label, connect) => {
  const tag = label.includes("v1") ? "v1" : "v2";
  let owner;
  let mallory;
  let ownerImage;
  let malloryImage;

  beforeAll(async () => {
    owner = await connect(`${gateway.url}/mcp-key`, bearer(OWNER_TOKEN));
    mallory = await connect(`${gateway.url}/mcp-key`, bearer(MALLORY_TOKEN));
    const image = async (client, size) =>
      (await client.call("generate_image", { prompt: "a lighthouse at dusk", width: size, height: size, steps: 2 }))
        .structuredContent;
    ownerImage = await image(owner, 256);
    malloryImage = await image(mallory, 128);
  });

  afterAll(async () => {
    await owner?.close();
    await mallory?.close();
  });

  it("the same file name lands in each user's own place; the owner's URL and bytes are untouched", async () => {
    const name = `hero-${tag}.png`;
    const mine = await owner.call("publish_asset", {
      asset_id: ownerImage.asset_id,
      target_filename: name,
      manifest_key: `hero-${tag}`,
    });
    expect(mine.isError, text(mine)).toBeFalsy();
    expect(mine.structuredContent).toMatchObject({
      key: `gen/${name}`,
      dest_url: `${gateway.url}/published/gen/${name}`,
    });
    const ownerBytes = (await served(`gen/${name}`)).bytes;

    const theirs = await mallory.call("publish_asset", {
      asset_id: malloryImage.asset_id,
      target_filename: name,
      manifest_key: `hero-${tag}`,
    });
    expect(theirs.isError, text(theirs)).toBeFalsy();
    expect(theirs.structuredContent).toMatchObject({
      key: `gen/users/mallory/${name}`,
      dest_url: `${gateway.url}/published/gen/users/mallory/${name}`,
    });
    const owners = await served(`gen/${name}`);
    expect(owners.status).toBe(200);
    expect(sha(owners.bytes)).toBe(sha(ownerBytes));
    const mallorys = await served(`gen/users/mallory/${name}`);
    expect(mallorys.status).toBe(200);
    expect(mallorys.bytes.length).toBe(theirs.structuredContent.bytes_size);

    // Each manifest holds its own user's entry, at the URL it always had for the owner.
    const ownerManifest = JSON.parse((await served("gen/manifest.json")).bytes.toString());
    expect(ownerManifest[`hero-${tag}`]).toMatchObject({ asset_id: ownerImage.asset_id, filename: name });
    const malloryManifest = JSON.parse((await served("gen/users/mallory/manifest.json")).bytes.toString());
    expect(malloryManifest[`hero-${tag}`]).toMatchObject({
      asset_id: malloryImage.asset_id,
      url: `${gateway.url}/published/gen/users/mallory/${name}`,
    });
    expect(Object.values(malloryManifest).map((entry) => entry.asset_id)).not.toContain(ownerImage.asset_id);

    // get_publish_info tells each user where its files go.
    expect((await owner.call("get_publish_info")).structuredContent).toMatchObject({
      prefix: "gen/",
      manifest_key: "gen/manifest.json",
    });
    expect((await mallory.call("get_publish_info")).structuredContent).toMatchObject({
      prefix: "gen/users/mallory/",
      manifest_key: "gen/users/mallory/manifest.json",
    });
  });

  it("list_published shows each user only its own files, never the other's asset ids or the manifests", async () => {
    const ownerList = (await owner.call("list_published")).structuredContent;
    const malloryList = (await mallory.call("list_published")).structuredContent;
    const ownerKeys = ownerList.files.map((f) => f.key);
    const malloryKeys = malloryList.files.map((f) => f.key);
    expect(malloryKeys.filter((key) => !key.startsWith("gen/users/mallory/") || key.endsWith("manifest.json"))).toEqual(
      [],
    );
    expect(ownerKeys.filter((key) => key.startsWith("gen/users/") || key.endsWith("manifest.json"))).toEqual([]);
    expect(JSON.stringify(malloryList)).not.toContain(ownerImage.asset_id);
    expect(JSON.stringify(ownerList)).not.toContain(malloryImage.asset_id);
    expect(ownerKeys).toContain(`gen/hero-${tag}.png`);
    expect(malloryKeys).toContain(`gen/users/mallory/hero-${tag}.png`);
    expect(ownerList.files.every((f) => f.principal === "owner")).toBe(true);
    expect(malloryList.files.every((f) => f.principal === "mallory")).toBe(true);
    expect(ownerList).toMatchObject({ prefix: "gen/", manifest_key: "gen/manifest.json" });
    expect(malloryList).toMatchObject({
      prefix: "gen/users/mallory/",
      manifest_key: "gen/users/mallory/manifest.json",
    });
    // A sub-prefix cannot reach into another user's folder.
    expect((await owner.call("list_published", { prefix: "users/mallory/" })).structuredContent.count).toBe(0);
    expect((await mallory.call("list_published", { prefix: "../" })).structuredContent.count).toBe(0);
  });

  it("neither user can unpublish the other's file, and nobody can unpublish a manifest", async () => {
    const name = `hero-${tag}.png`;
    refused(
      await mallory.call("unpublish", { filename: `gen/${name}` }),
      "NOT_YOUR_FILE",
      /is not under your publish prefix gen\/users\/mallory\/; you can unpublish only your own files/,
    );
    refused(
      await owner.call("unpublish", { filename: `gen/users/mallory/${name}` }),
      "NOT_YOUR_FILE",
      /is not under your publish prefix gen\/; you can unpublish only your own files/,
    );
    refused(
      await owner.call("unpublish", { filename: `users/mallory/${name}` }),
      "NOT_YOUR_FILE",
      /is not under your publish prefix gen\//,
    );
    for (const [client, filename, key] of [
      [mallory, "gen/manifest.json", "gen/manifest.json"],
      [mallory, "manifest.json", "gen/users/mallory/manifest.json"],
      [owner, "manifest.json", "gen/manifest.json"],
      [owner, "gen/users/mallory/manifest.json", "gen/users/mallory/manifest.json"],
    ])
      refused(
        await client.call("unpublish", { filename }),
        "MANIFEST_PROTECTED",
        new RegExp(`^${key.replaceAll(".", "\\.")} is a manifest; unpublish never deletes one`),
      );
    for (const key of [
      `gen/${name}`,
      `gen/users/mallory/${name}`,
      "gen/manifest.json",
      "gen/users/mallory/manifest.json",
    ])
      expect((await served(key)).status, key).toBe(200);

    // Each user can still unpublish its own file, and only its own manifest entry goes with it.
    const gone = (await mallory.call("unpublish", { filename: name })).structuredContent;
    expect(gone).toMatchObject({
      key: `gen/users/mallory/${name}`,
      deleted: true,
      manifest_entries_removed: [`hero-${tag}`],
    });
    expect((await served(`gen/users/mallory/${name}`)).status).toBe(404);
    expect((await served(`gen/${name}`)).status).toBe(200);
    const ownerManifest = JSON.parse((await served("gen/manifest.json")).bytes.toString());
    expect(ownerManifest[`hero-${tag}`]).toMatchObject({ asset_id: ownerImage.asset_id });
  });
});

describe("an object from before principals were recorded", () => {
  it("belongs to the owner: listed for the owner only, refused to anyone else, replaceable by the owner", async () => {
    const [[, connect]] = CLIENTS;
    const owner = await connect(`${gateway.url}/mcp-key`, bearer(OWNER_TOKEN));
    const mallory = await connect(`${gateway.url}/mcp-key`, bearer(MALLORY_TOKEN));
    try {
      const malloryList = (await mallory.call("list_published")).structuredContent;
      expect(malloryList.files.map((f) => f.key)).not.toContain("gen/legacy.png");
      const listed = (await owner.call("list_published")).structuredContent.files.find(
        (f) => f.key === "gen/legacy.png",
      );
      expect(listed).toMatchObject({ principal: "owner", bytes: LEGACY_BYTES.length });
      refused(
        await mallory.call("unpublish", { filename: "gen/legacy.png" }),
        "NOT_YOUR_FILE",
        /is not under your publish prefix gen\/users\/mallory\//,
      );
      expect(sha((await served("gen/legacy.png")).bytes)).toBe(sha(LEGACY_BYTES));

      const image = (await owner.call("generate_image", { prompt: "an old pier", width: 128, height: 128, steps: 2 }))
        .structuredContent;
      const replaced = await owner.call("publish_asset", { asset_id: image.asset_id, target_filename: "legacy.png" });
      expect(replaced.isError, text(replaced)).toBeFalsy();
      expect(replaced.structuredContent.key).toBe("gen/legacy.png");
      expect((await served("gen/legacy.png")).bytes.length).toBe(replaced.structuredContent.bytes_size);
      const removed = (await owner.call("unpublish", { filename: "legacy.png" })).structuredContent;
      expect(removed).toMatchObject({ key: "gen/legacy.png", deleted: true });
    } finally {
      await owner.close();
      await mallory.close();
    }
  });
});

describe("the byte budget is checked before the source is read", () => {
  it("an audio asset over max_bytes is refused from its recorded size without downloading it", async () => {
    const [, [, connect]] = CLIENTS;
    const mallory = await connect(`${gateway.url}/mcp-key`, bearer(MALLORY_TOKEN));
    // Every whole-file /view the gateway makes now trickles and is counted (ranged probes are not).
    fake.setFaults({ slowViewBodyMs: 20 });
    try {
      const song = (await mallory.call("generate_song", { tags: "a", lyrics: "b", seconds: 5, steps: 2 }))
        .structuredContent;
      expect(song.bytes_size).toBeGreaterThan(5000);
      const before = fake.faultsFired.slowViewBodies;
      const result = await mallory.call("publish_asset", {
        asset_id: song.asset_id,
        manifest_key: "big-song",
        max_bytes: 5000,
      });
      expect(fake.faultsFired.slowViewBodies).toBe(before); // not downloaded
      refused(
        result,
        "BUDGET_UNREACHABLE",
        new RegExp(
          `^Asset ${song.asset_id} is ${song.bytes_size} bytes, over max_bytes 5000; audio files are published as-is, not re-encoded, so it was not downloaded\\. ` +
            "Pass a larger max_bytes \\(at most 50000000\\); the default budget is PUBLISH_MAX_BYTES \\(600000\\)\\.",
        ),
      );

      // The same asset within budget is downloaded once and published: the counter does count downloads.
      const published = await mallory.call("publish_asset", {
        asset_id: song.asset_id,
        manifest_key: "big-song",
        max_bytes: 20_000,
      });
      expect(published.isError, text(published)).toBeFalsy();
      expect(published.structuredContent).toMatchObject({ mime_type: "audio/mpeg", bytes_size: song.bytes_size });
      expect(fake.faultsFired.slowViewBodies).toBe(before + 1);
    } finally {
      fake.setFaults({ slowViewBodyMs: 0 });
      await mallory.close();
    }
  });
});
