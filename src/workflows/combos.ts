/**
 * The allowed values of ComfyUI combo inputs (samplers, schedulers, model files…), read from the
 * live `/object_info/{class}` and cached briefly, so a wrong value is caught before submission
 * with the list of valid ones. All three combo forms are understood (comfyui-api.md §13.1).
 */
import type { ComfyClient } from "../comfy/client";
import { askAll } from "../pool/ask";

const CACHE_MS = 60_000;
/**
 * Settled answers only: a pending fetch belongs to the request that started it, and another
 * request awaiting it hangs for good once that request ends (workerd forbids cross-request I/O).
 */
const cache = new Map<string, { at: number; value: Record<string, unknown> | undefined }>();

/** Model folder behind a loader input, for hints ("call list_models with kind=…"). */
export const MODEL_FOLDER_OF: Record<string, string> = {
  "CheckpointLoaderSimple.ckpt_name": "checkpoints",
  "UNETLoader.unet_name": "diffusion_models",
  "CLIPLoader.clip_name": "text_encoders",
  "VAELoader.vae_name": "vae",
  "LoraLoader.lora_name": "loras",
  "LoraLoaderModelOnly.lora_name": "loras",
};

/** The options of `classType.input`, or undefined when it is not a combo (or the class is unknown). */
export async function comboOptions(
  comfy: ComfyClient,
  classType: string,
  input: string,
  signal?: AbortSignal,
): Promise<string[] | undefined> {
  const info = await nodeInfo(comfy, classType, signal);
  const inputs = (info?.input ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const spec = inputs.required?.[input] ?? inputs.optional?.[input];
  return Array.isArray(spec) ? parseCombo(spec) : undefined;
}

export function parseCombo(spec: unknown[]): string[] | undefined {
  const [kind, options] = spec as [unknown, Record<string, unknown> | undefined];
  const strings = (list: unknown) =>
    Array.isArray(list)
      ? list.map((item) =>
          typeof item === "object" && item !== null && "key" in item
            ? String((item as { key: unknown }).key)
            : String(item),
        )
      : undefined;
  if (Array.isArray(kind)) return strings(kind); // V1: [["a", "b"], {...}]
  if (kind === "COMBO" || kind === "COMFY_DYNAMICCOMBO_V3") return strings(options?.options) ?? []; // V3 forms
  return undefined;
}

/**
 * The union of a combo's options over several backends, read fresh (a model may just have been
 * installed): a default is valid when any backend can use it. Backends that cannot be asked are
 * skipped; when none can, the first error is thrown.
 */
export async function comboOptionsAnywhere(
  clients: ComfyClient[],
  classType: string,
  input: string,
  signal?: AbortSignal,
): Promise<string[] | undefined> {
  const answers = await askAll(clients, (comfy) => {
    forgetCombos(comfy, classType);
    return comboOptions(comfy, classType, input, signal);
  });
  const lists = answers.flatMap((answer) => (answer.ok && answer.value ? [answer.value] : []));
  return lists.length === 0 ? undefined : [...new Set(lists.flat())];
}

/** Drops a cached class so the next lookup reads ComfyUI again (e.g. a model was just installed). */
export function forgetCombos(comfy: ComfyClient, classType: string): void {
  cache.delete(`${comfy.baseUrl}|${classType}`);
}

async function nodeInfo(
  comfy: ComfyClient,
  classType: string,
  signal?: AbortSignal,
): Promise<Record<string, unknown> | undefined> {
  const key = `${comfy.baseUrl}|${classType}`;
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.value;
  const value = (await comfy.objectInfo(classType, { signal }))[classType] as Record<string, unknown> | undefined;
  cache.set(key, { at: Date.now(), value });
  return value;
}
