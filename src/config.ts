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
    /** Which workflows get a tool of their own: all (default), none, or a list (see GatewayConfig). */
    COMFY_MCP_WORKFLOW_TOOLS?: string;
    COMFY_MCP_FETCH_ALLOW_ORIGINS?: string;
  }
}

import { OWNER } from "./auth/owner";
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
  /**
   * Which workflows are also tools of their own (COMFY_MCP_WORKFLOW_TOOLS): all (default), none,
   * or a list of workflow ids / tool names. Every workflow stays reachable through run_workflow.
   */
  workflowTools: "all" | "none" | ReadonlySet<string>;
  /** What one principal may ask of the GPU: the owner's limits and every other user's. */
  limits: { owner: UserLimits; users: UserLimits };
  /**
   * Origins the operator trusts although the SSRF rules would refuse them (an intranet file
   * server, a test's local server): COMFY_MCP_FETCH_ALLOW_ORIGINS, exact origins only.
   */
  fetchAllowOrigins: ReadonlySet<string>;
}

/** One limit and the variable that sets it, so a refusal can say what raises it. null = unlimited. */
export interface Limit {
  value: number | null;
  variable: string;
}

export interface UserLimits {
  /** Jobs submitted and not yet ended (submitting, queued or running) at once. */
  openJobs: Limit;
  /** Jobs submitted in the last 60 seconds. */
  jobsPerMinute: Limit;
  /** width × height × batch_size of one image latent, in megapixels. */
  megapixels: Limit;
  /** width × height × frames × batch_size of one video latent, in megapixel-frames. */
  videoMegapixelFrames: Limit;
  /** Sampling steps of any sampler or scheduler in the graph. */
  steps: Limit;
  /** Longest side, in pixels, of an input image (img2img and any PARAM_IMAGE_*). */
  inputImageSide: Limit;
  /** Values that could not be read (the default applies instead), for get_queue_status. */
  warnings: string[];
}

/**
 * Defaults for token users other than the owner: enough for ordinary use (a couple of jobs queued,
 * a 2048² image, a few seconds of 720p video), far from monopolising one GPU. The owner has none
 * unless COMFY_MCP_OWNER_* says so: it is the owner's GPU, and a user's limit raised for friends
 * must not quietly throttle the owner too.
 */
const USER_DEFAULTS = {
  OPEN_JOBS: 2,
  JOBS_PER_MINUTE: 10,
  MEGAPIXELS: 4,
  VIDEO_MEGAPIXEL_FRAMES: 250,
  STEPS: 150,
  INPUT_IMAGE_SIDE: 4096,
} as const;
type LimitName = keyof typeof USER_DEFAULTS;

/** A client-side cap of about 60 s is common; never block longer than this. */
export const MAX_WAIT_SECONDS = 55;

/**
 * Configuration is a function of the bindings alone, and one request reads it several times (the
 * loopback check, the Origin check, serveMcp, the tools): parsed once per env object. A test or
 * caller with other variables passes another env object, so it gets its own.
 */
const parsed = new WeakMap<Env, GatewayConfig>();

export function readConfig(env: Env): GatewayConfig {
  let config = parsed.get(env);
  if (!config) parsed.set(env, (config = parseConfig(env)));
  return config;
}

function parseConfig(env: Env): GatewayConfig {
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
    workflowTools: workflowToolsChoice(env.COMFY_MCP_WORKFLOW_TOOLS),
    limits: { owner: readLimits(env, "OWNER"), users: readLimits(env, "USER") },
    fetchAllowOrigins: exactOrigins(env.COMFY_MCP_FETCH_ALLOW_ORIGINS),
  };
}

/**
 * Comma-separated http(s) origins, each kept only if it is exactly an origin (no path, no wildcard).
 * Read on every request, and usually unset: blanks are skipped before any URL parsing (a thrown
 * parse error per request cost 2 ms of every tools/list).
 */
function exactOrigins(raw: string | undefined): ReadonlySet<string> {
  const origins = new Set<string>();
  if (!raw?.trim()) return origins;
  for (const entry of raw.split(",")) {
    const candidate = entry.trim().replace(/\/+$/, "");
    if (!/^https?:\/\/./i.test(candidate)) continue;
    try {
      const url = new URL(candidate);
      if ((url.protocol === "https:" || url.protocol === "http:") && url.origin === candidate) origins.add(url.origin);
    } catch {
      // not a URL: ignored, like any other unreadable entry
    }
  }
  return origins;
}

/** The limits that apply to this principal: the owner's, or those of every other user. */
export function limitsFor(config: GatewayConfig, principal: string): UserLimits {
  return principal === OWNER ? config.limits.owner : config.limits.users;
}

/**
 * COMFY_MCP_<WHO>_MAX_<NAME>: a number ≥ 0 (0 forbids it), or "unlimited". Unset or unreadable
 * means the default: USER_DEFAULTS for users, unlimited for the owner.
 */
function readLimits(env: Env, who: "OWNER" | "USER"): UserLimits {
  const warnings: string[] = [];
  const read = (name: LimitName): Limit => {
    const variable = `COMFY_MCP_${who}_MAX_${name}`;
    const fallback = who === "USER" ? USER_DEFAULTS[name] : null;
    const raw = ((env as unknown as Record<string, unknown>)[variable] ?? "").toString().trim();
    if (raw === "") return { value: fallback, variable };
    if (/^(unlimited|none|off)$/i.test(raw)) return { value: null, variable };
    const value = Number(raw);
    if (Number.isFinite(value) && value >= 0) return { value, variable };
    warnings.push(
      `${variable}=${JSON.stringify(raw)} is not a number ≥ 0 or "unlimited"; using ${fallback ?? "unlimited"}.`,
    );
    return { value: fallback, variable };
  };
  return {
    openJobs: read("OPEN_JOBS"),
    jobsPerMinute: read("JOBS_PER_MINUTE"),
    megapixels: read("MEGAPIXELS"),
    videoMegapixelFrames: read("VIDEO_MEGAPIXEL_FRAMES"),
    steps: read("STEPS"),
    inputImageSide: read("INPUT_IMAGE_SIDE"),
    warnings,
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

/** `all` (or unset), `none`, or names separated by commas or spaces. */
function workflowToolsChoice(raw: string | undefined): GatewayConfig["workflowTools"] {
  const value = (raw ?? "").trim();
  if (value === "" || value.toLowerCase() === "all") return "all";
  if (value.toLowerCase() === "none") return "none";
  return new Set(value.split(/[\s,]+/).filter(Boolean));
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
