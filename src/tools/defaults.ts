/**
 * Generation defaults per namespace: built-in values (the original's, original-server.md §6),
 * overridden per key by `COMFY_MCP_DEFAULT_<NS>_<KEY>` environment variables. Values from the
 * environment are type-checked against the built-in value's type; a bad one is reported by
 * `get_defaults` and ignored, never sent to ComfyUI.
 */

export type Namespace = "image" | "audio" | "video";
export type DefaultValue = string | number | boolean;

export const BUILT_IN_DEFAULTS: Record<Namespace, Record<string, DefaultValue>> = {
  image: {
    width: 512,
    height: 512,
    steps: 20,
    cfg: 8.0,
    sampler_name: "euler",
    scheduler: "normal",
    denoise: 1.0,
    model: "v1-5-pruned-emaonly.ckpt",
    negative_prompt: "text, watermark",
  },
  audio: {
    steps: 50,
    cfg: 5.0,
    sampler_name: "euler",
    scheduler: "simple",
    denoise: 1.0,
    model: "ace_step_v1_3.5b.safetensors",
    seconds: 60,
    lyrics_strength: 0.99,
  },
  video: {
    width: 1280,
    height: 720,
    steps: 20,
    cfg: 8.0,
    sampler_name: "euler",
    scheduler: "normal",
    denoise: 1.0,
    negative_prompt: "text, watermark",
    fps: 16,
  },
};

export interface ResolvedDefault {
  value: DefaultValue;
  source: "env" | "built-in";
}

export interface ResolvedDefaults {
  values: Record<string, DefaultValue>;
  sources: Record<string, ResolvedDefault["source"]>;
  invalid: string[];
}

export function resolveDefaults(env: Env, namespace: Namespace): ResolvedDefaults {
  const values: Record<string, DefaultValue> = {};
  const sources: Record<string, ResolvedDefault["source"]> = {};
  const invalid: string[] = [];
  for (const [key, builtIn] of Object.entries(BUILT_IN_DEFAULTS[namespace])) {
    const variable = `COMFY_MCP_DEFAULT_${namespace.toUpperCase()}_${key.toUpperCase()}` as const;
    const raw = (env as unknown as Record<string, unknown>)[variable];
    const parsed = typeof raw === "string" && raw.trim() !== "" ? parseLike(key, builtIn, raw.trim()) : undefined;
    if (typeof raw === "string" && raw.trim() !== "" && parsed === undefined)
      invalid.push(`${variable}=${JSON.stringify(raw)} is not a valid ${typeof builtIn}`);
    values[key] = parsed ?? builtIn;
    sources[key] = parsed === undefined ? "built-in" : "env";
  }
  return { values, sources, invalid };
}

/** Keys whose values ComfyUI validates as INT (a float would be rejected there). */
const INTEGER_KEYS = new Set(["width", "height", "steps", "seconds", "duration", "fps"]);

function parseLike(key: string, template: DefaultValue, raw: string): DefaultValue | undefined {
  if (typeof template === "string") return raw;
  if (typeof template === "boolean")
    return /^(true|1|yes)$/i.test(raw) ? true : /^(false|0|no)$/i.test(raw) ? false : undefined;
  const number = Number(raw);
  if (!Number.isFinite(number)) return undefined;
  return INTEGER_KEYS.has(key) && !Number.isInteger(number) ? undefined : number;
}
