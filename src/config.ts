/**
 * Typed view of the Worker's environment. Every knob has a documented default (README,
 * "Configuration reference") so a fresh `npm start` works with nothing configured.
 */

declare global {
  interface Env {
    /** Cloudflare Access service token for the tunnel hostname (secrets). */
    COMFYUI_ACCESS_CLIENT_ID?: string;
    COMFYUI_ACCESS_CLIENT_SECRET?: string;
    /** Bearer token for an authenticating proxy in front of ComfyUI (secret). */
    COMFYUI_BEARER_TOKEN?: string;
  }
}

import { readBackends, type BackendConfig } from "./pool/config";

export const VERSION = "0.1.0";

export interface GatewayConfig {
  /** Every ComfyUI backend, in configuration order; empty when the configuration is broken. */
  backends: BackendConfig[];
  /** Why the backend configuration was refused (MCP then answers 503 with this). */
  backendError: string | null;
  publicUrl: string;
  /** Upper bound of a blocking wait inside one tool call. */
  waitMs: number;
  reconcileMs: number;
  allowUnauthenticatedLocal: boolean;
  /** How long assets stay in the registry; null = until deleted (ASSET_TTL_HOURS=0). */
  assetTtlMs: number | null;
  /** Lifetime of signed download URLs in tool results. */
  downloadTtlSeconds: number;
  /** How often the pool coordinator checks each backend while the gateway is in use. */
  healthMs: number;
  /** How long a backend may stay unreachable before its open jobs are declared lost (or moved). */
  backendGraceMs: number;
}

/** A client-side cap of about 60 s is common; never block longer than this. */
export const MAX_WAIT_SECONDS = 55;

export function readConfig(env: Env): GatewayConfig {
  const pool = readBackends(env);
  return {
    backends: pool.ok ? pool.backends : [],
    backendError: pool.ok ? null : pool.error,
    publicUrl: trimSlash(env.PUBLIC_URL || "http://127.0.0.1:8787"),
    waitMs: clampSeconds(env.COMFY_MCP_WAIT_SECONDS, 45, 0, MAX_WAIT_SECONDS) * 1000,
    reconcileMs: clampSeconds(env.COMFY_MCP_RECONCILE_SECONDS, 5, 0.2, 300) * 1000,
    allowUnauthenticatedLocal: (env.ALLOW_UNAUTHENTICATED_LOCAL ?? "false").toLowerCase() === "true",
    assetTtlMs: assetTtl(env.ASSET_TTL_HOURS),
    downloadTtlSeconds: clampSeconds(env.DOWNLOAD_URL_TTL_SECONDS, 3600, 60, 7 * 24 * 3600),
    healthMs: clampSeconds(env.COMFY_MCP_HEALTH_SECONDS, 10, 0.5, 300) * 1000,
    backendGraceMs: clampSeconds(env.COMFY_MCP_BACKEND_GRACE_SECONDS, 30, 1, 3600) * 1000,
  };
}

/** Hours, fractions allowed (the original crashed on them); 0 keeps assets; nonsense → 24. */
function assetTtl(raw: string | undefined): number | null {
  const hours = raw === undefined || raw.trim() === "" ? 24 : Number(raw);
  if (!Number.isFinite(hours) || hours < 0) return 24 * 3_600_000;
  return hours === 0 ? null : hours * 3_600_000;
}

function clampSeconds(raw: string | undefined, fallback: number, min: number, max: number): number {
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(value)) return fallback;
  return Math.min(max, Math.max(min, value));
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
