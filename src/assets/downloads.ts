/**
 * Signed download URLs: `GET /assets/<asset_id>?u=<principal>&exp=<unix>&sig=<hmac>` streams an
 * asset's bytes from ComfyUI through the Worker, so full-size outputs can be fetched by a person or
 * an agent without exposing the tunnel. The HMAC (SHA-256) covers principal, asset and expiry; the
 * key is DOWNLOAD_SIGNING_KEY, or a random key the gateway creates once and keeps in KV.
 */
import type { ComfyClient } from "../comfy/client";
import { ComfyError } from "../comfy/errors";
import { hmacHex, hmacKey, timingSafeEqual } from "../auth/secrets";
import type { AssetView } from "../studio/records";

declare global {
  interface Env {
    /** Secret for signing download URLs; without it a random key is generated and kept in KV. */
    DOWNLOAD_SIGNING_KEY?: string;
  }
}

export async function signedDownloadUrl(
  env: Env,
  publicUrl: string,
  principal: string,
  assetId: string,
  ttlSeconds: number,
): Promise<{ url: string; expires_at: string }> {
  const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
  const sig = await sign(env, `${principal}\n${assetId}\n${exp}`);
  const query = new URLSearchParams({ u: principal, exp: String(exp), sig });
  return {
    url: `${publicUrl}/assets/${encodeURIComponent(assetId)}?${query}`,
    expires_at: new Date(exp * 1000).toISOString(),
  };
}

export type DownloadCheck = { ok: true; principal: string } | { ok: false; status: 403; message: string };

/** Constant-time check of the signature, then of the expiry. */
export async function verifyDownload(env: Env, assetId: string, params: URLSearchParams): Promise<DownloadCheck> {
  const principal = params.get("u") ?? "";
  const exp = Number(params.get("exp"));
  const sig = params.get("sig") ?? "";
  if (!principal || !Number.isInteger(exp) || !/^[0-9a-f]{64}$/.test(sig))
    return {
      ok: false,
      status: 403,
      message:
        "This download link is incomplete. Ask the assistant for a fresh link (tool results include one per asset).",
    };
  const expected = await sign(env, `${principal}\n${assetId}\n${exp}`);
  if (!timingSafeEqual(expected, sig))
    return {
      ok: false,
      status: 403,
      message: "This download link is not valid (it was altered or signed with another key). Ask for a fresh link.",
    };
  if (exp * 1000 < Date.now())
    return {
      ok: false,
      status: 403,
      message: "This download link has expired. Ask for a fresh link (get_asset_metadata returns one).",
    };
  return { ok: true, principal };
}

/** Streams the asset from ComfyUI with its type and length; Range passes through (audio/video seeking). */
export async function streamAsset(comfy: ComfyClient, asset: AssetView, request: Request): Promise<Response> {
  const range = request.headers.get("Range") ?? undefined;
  let upstream: Response;
  try {
    upstream = await comfy.view(
      { filename: asset.filename, subfolder: asset.subfolder, type: asset.folder_type },
      { range, timeoutMs: 30_000 },
    );
  } catch (error) {
    const message = error instanceof ComfyError ? error.message : "ComfyUI could not be reached.";
    return Response.json(
      { error: "upstream", message },
      { status: error instanceof ComfyError && /404/.test(message) ? 404 : 502 },
    );
  }
  const headers = new Headers({
    "Content-Type": asset.mime_type,
    "Content-Disposition": `inline; filename="${asset.filename.replace(/["\\\r\n]/g, "_")}"`,
    "Accept-Ranges": "bytes",
    "Cache-Control": "private, max-age=300",
    "X-Content-Type-Options": "nosniff",
  });
  for (const name of ["Content-Length", "Content-Range", "ETag", "Last-Modified"]) {
    const value = upstream.headers.get(name);
    if (value) headers.set(name, value);
  }
  return new Response(request.method === "HEAD" ? null : upstream.body, { status: upstream.status, headers });
}

async function sign(env: Env, message: string): Promise<string> {
  return hmacHex(await hmacKey(env, "download-signing-key", env.DOWNLOAD_SIGNING_KEY), message);
}
