/**
 * GET /healthz. The public answer is one word: `{ok, status: "ok" | "degraded"}`, for uptime
 * monitors; it is cached HEALTH_CACHE_MS per isolate, so a burst of hits does not ask every
 * backend each time.
 * Backend names, versions, errors and the last hour's activity are for authenticated callers only
 * (a valid MCP_TOKENS bearer, or loopback mode under `npm start`), who get a fresh check: raw
 * backend errors can name private infrastructure (an Access team domain, a tunnel hostname).
 * HTTP 200 when every backend answers; 503 when one does not (degraded) or the backend
 * configuration is refused (misconfigured).
 */
import { tokenIdentity } from "../auth/tokens";
import type { ComfyClient } from "../comfy/client";
import { VERSION, readConfig } from "../config";
import { loopbackMode } from "../net/loopback";
import { Backends } from "./backends";

const HEALTH_CACHE_MS = 10_000;
const PROBE_TIMEOUT_MS = 3_000;

interface BackendCheck {
  name: string;
  reachable: boolean;
  version?: unknown;
  error?: string;
}

/**
 * The last finished probe, keyed by the backends it asked. Only settled results are kept: a
 * promise shared between requests would be resolved in another request's context, which the
 * Workers runtime does not support.
 */
let cached: { key: string; at: number; checks: BackendCheck[] } | undefined;

export async function healthz(request: Request, env: Env): Promise<Response> {
  const config = readConfig(env);
  const detailed = await authenticated(request, env);
  const headers = { "Cache-Control": "no-store" };
  if (config.backendError)
    return Response.json(
      detailed
        ? { ok: false, status: "misconfigured", version: VERSION, error: config.backendError }
        : { ok: false, status: "degraded" },
      { status: 503, headers },
    );
  const backends = new Backends(config, env);
  const checks = await probe(backends, { fresh: detailed });
  // "ok" only when every backend answers; one down is already worth a look.
  const ok = checks.every((check) => check.reachable);
  const status = ok ? "ok" : "degraded";
  // A monitor that reads only the status code must see a backend down: 503, not 200.
  const init = { headers, status: ok ? 200 : 503 };
  if (!detailed) return Response.json({ ok, status }, init);
  // Socket and completion counts (a socket that keeps dying shows here); never fails the check.
  const lastHour = await backends.coordinator.lastHour().catch(() => undefined);
  const withActivity = checks.map((check) => ({ ...check, last_hour: lastHour?.[check.name] ?? null }));
  return Response.json({ ok, status, version: VERSION, comfyui: withActivity[0], backends: withActivity }, init);
}

/** Details are for whoever may use the gateway: a static token, or this machine in loopback mode. */
async function authenticated(request: Request, env: Env): Promise<boolean> {
  if (loopbackMode(request, env).local) return true;
  if (!request.headers.has("Authorization")) return false;
  return !((await tokenIdentity(env, request)) instanceof Response);
}

/** Asks every backend for /system_stats, or reuses a probe younger than HEALTH_CACHE_MS. */
async function probe(backends: Backends, { fresh }: { fresh: boolean }): Promise<BackendCheck[]> {
  const clients = backends.all();
  const key = clients.map((comfy) => `${comfy.connection.name}=${comfy.connection.baseUrl}`).join(" ");
  if (!fresh && cached?.key === key && Date.now() - cached.at < HEALTH_CACHE_MS) return cached.checks;
  const checks = await Promise.all(clients.map(check));
  cached = { key, at: Date.now(), checks };
  return checks;
}

async function check(comfy: ComfyClient): Promise<BackendCheck> {
  try {
    const stats = await comfy.systemStats({ timeoutMs: PROBE_TIMEOUT_MS });
    const system = (stats.system ?? {}) as Record<string, unknown>;
    return { name: comfy.connection.name, reachable: true, version: system.comfyui_version ?? null };
  } catch (error) {
    return {
      name: comfy.connection.name,
      reachable: false,
      error: error instanceof Error ? error.message : String(error),
    };
  }
}
