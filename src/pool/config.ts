/**
 * The ComfyUI backends this gateway drives. One machine is the common case (`COMFYUI_URL`, named
 * "default"); several come from `COMFYUI_BACKENDS` (a JSON array, usually set as a secret because
 * it may hold Access credentials) and/or numbered variables `COMFYUI_BACKEND_<n>_URL` & co. A
 * configuration mistake is reported as a whole, never half-applied: routing jobs to a subset of
 * the machines the owner meant would look like a silent success.
 */
import type { ComfyConnection } from "../comfy/connection";

export interface BackendConfig extends ComfyConnection {
  /** Relative share of the work: a backend of weight 2 is given twice the queue of one of weight 1. */
  weight: number;
  /** Free-form capabilities (`video`, `sdxl`…); workflows may prefer backends that carry theirs. */
  tags: string[];
}

export type BackendsResult = { ok: true; backends: BackendConfig[] } | { ok: false; error: string };

export const DEFAULT_BACKEND = "default";
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const NUMBERED = /^COMFYUI_BACKEND_(\d{1,2})_URL$/;
const JSON_FIELDS = new Set([
  "name",
  "url",
  "weight",
  "tags",
  "access_client_id",
  "access_client_secret",
  "bearer_token",
]);

interface RawBackend {
  name?: unknown;
  url?: unknown;
  weight?: unknown;
  tags?: unknown;
  access_client_id?: unknown;
  access_client_secret?: unknown;
  bearer_token?: unknown;
}

export function readBackends(env: Env): BackendsResult {
  const vars = env as unknown as Record<string, unknown>;
  const raw: Array<{ where: string; value: RawBackend }> = [];
  const json = typeof vars.COMFYUI_BACKENDS === "string" ? vars.COMFYUI_BACKENDS.trim() : "";
  if (json) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      return {
        ok: false,
        error:
          'COMFYUI_BACKENDS is not valid JSON. Set it to an array like [{"name":"desktop","url":"https://comfy.example.com"}].',
      };
    }
    if (!Array.isArray(parsed) || parsed.length === 0)
      return {
        ok: false,
        error:
          "COMFYUI_BACKENDS must be a non-empty JSON array of backends ({name, url, weight?, tags?, access_client_id?, access_client_secret?, bearer_token?}).",
      };
    parsed.forEach((value, index) => {
      raw.push({ where: `COMFYUI_BACKENDS[${index}]`, value: value as RawBackend });
    });
  }
  const numbers = Object.keys(vars)
    .map((key) => NUMBERED.exec(key)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  for (const n of numbers) {
    const get = (suffix: string) => vars[`COMFYUI_BACKEND_${n}_${suffix}`];
    const tags = get("TAGS");
    raw.push({
      where: `COMFYUI_BACKEND_${n}_*`,
      value: {
        name: get("NAME") ?? `backend${n}`,
        url: get("URL"),
        weight: get("WEIGHT") === undefined || get("WEIGHT") === "" ? undefined : Number(get("WEIGHT")),
        tags:
          typeof tags === "string"
            ? tags
                .split(",")
                .map((t) => t.trim())
                .filter(Boolean)
            : undefined,
        access_client_id: get("ACCESS_CLIENT_ID"),
        access_client_secret: get("ACCESS_CLIENT_SECRET"),
        bearer_token: get("BEARER_TOKEN"),
      },
    });
  }
  if (raw.length === 0) {
    return {
      ok: true,
      backends: [
        {
          name: DEFAULT_BACKEND,
          baseUrl: trimSlash(env.COMFYUI_URL || "http://127.0.0.1:8188"),
          headers: credentials(env, {}),
          weight: 1,
          tags: [],
        },
      ],
    };
  }
  const backends: BackendConfig[] = [];
  for (const { where, value } of raw) {
    const checked = checkBackend(env, where, value);
    if (typeof checked === "string") return { ok: false, error: checked };
    if (backends.some((b) => b.name === checked.name))
      return { ok: false, error: `${where}: the backend name '${checked.name}' is used twice; names must be unique.` };
    backends.push(checked);
  }
  return { ok: true, backends };
}

function checkBackend(env: Env, where: string, value: RawBackend): BackendConfig | string {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return `${where} must be an object with at least a name and a url.`;
  const unknown = Object.keys(value).filter((key) => !JSON_FIELDS.has(key));
  if (unknown.length > 0)
    return `${where} has unknown field(s) ${unknown.join(", ")}; allowed: ${[...JSON_FIELDS].join(", ")}.`;
  if (typeof value.name !== "string" || !NAME.test(value.name))
    return `${where}: name must be 1-32 letters, digits, '-' or '_' (starting with a letter or digit).`;
  const label = `${where} ('${value.name}')`;
  if (typeof value.url !== "string" || !/^https?:\/\/[^/]/i.test(value.url))
    return `${label}: url must be an http(s) URL such as https://comfy.example.com.`;
  try {
    new URL(value.url);
  } catch {
    return `${label}: url is not a valid URL.`;
  }
  const weight = value.weight === undefined ? 1 : value.weight;
  if (typeof weight !== "number" || !Number.isFinite(weight) || weight <= 0 || weight > 100)
    return `${label}: weight must be a number above 0 and at most 100.`;
  if (
    value.tags !== undefined &&
    (!Array.isArray(value.tags) || !value.tags.every((t) => typeof t === "string" && NAME.test(t)))
  ) {
    return `${label}: tags must be a list of short words (letters, digits, '-' or '_').`;
  }
  for (const field of ["access_client_id", "access_client_secret", "bearer_token"] as const) {
    if (value[field] !== undefined && typeof value[field] !== "string") return `${label}: ${field} must be a string.`;
  }
  if (Boolean(value.access_client_id) !== Boolean(value.access_client_secret))
    return `${label}: set both access_client_id and access_client_secret, or neither.`;
  return {
    name: value.name,
    baseUrl: trimSlash(value.url),
    headers: credentials(env, value),
    weight,
    tags: ((value.tags as string[] | undefined) ?? []).map((t) => t.toLowerCase()),
  };
}

/**
 * Access and bearer headers: a backend's own, else the gateway-wide secrets, since one Access
 * service token commonly guards every tunnel of an account.
 */
function credentials(env: Env, own: RawBackend): Record<string, string> {
  const headers: Record<string, string> = {};
  const id = (own.access_client_id as string | undefined) || env.COMFYUI_ACCESS_CLIENT_ID;
  const secret = (own.access_client_secret as string | undefined) || env.COMFYUI_ACCESS_CLIENT_SECRET;
  if (id && secret) {
    headers["CF-Access-Client-Id"] = id;
    headers["CF-Access-Client-Secret"] = secret;
  }
  const bearer = (own.bearer_token as string | undefined) || env.COMFYUI_BEARER_TOKEN;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  return headers;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
