/**
 * Every way talking to ComfyUI can fail, turned into one error type whose message tells an agent
 * (and the human behind it) what happened and how to recover. Messages never contain secrets,
 * tracebacks or the tunnel's internals beyond its configured URL.
 */
import type { ComfyErrorDetail, ComfyNodeError, ExecutionErrorPayload } from "./types";

export type ComfyErrorKind =
  | "unreachable" // network failure, DNS, refused, tunnel down
  | "timeout" // ComfyUI did not answer in time
  | "access_misconfigured" // Cloudflare Access (or another proxy) answered instead of ComfyUI
  | "unauthorized" // 401/403 from a proxy
  | "validation" // POST /prompt 400 with node_errors
  | "execution" // the prompt ran and a node failed
  | "interrupted" // the prompt was interrupted
  | "http" // any other unexpected status
  | "bad_response"; // a body that is not what ComfyUI sends

export class ComfyError extends Error {
  override readonly name = "ComfyError";
  constructor(
    readonly kind: ComfyErrorKind,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Which ComfyUI: its address when that is safe to show, and its backend name in a pool. */
export interface Target {
  baseUrl: string;
  name: string;
}

export function unreachable(target: Target, cause: unknown): ComfyError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  const setting = pooled(target) ? `the url of backend '${target.name}' in COMFYUI_BACKENDS` : "COMFYUI_URL";
  return new ComfyError(
    "unreachable",
    `ComfyUI is not reachable at ${describeTarget(target)} (${reason}). Check that ComfyUI is running and that ` +
      `${setting} points at it (for a remote GPU, the Cloudflare Tunnel hostname), then retry.`,
  );
}

/**
 * Where ComfyUI is, as far as a client may know: a local address helps a developer, but a tunnel
 * hostname is a private detail that must not reach remote clients (comfyui-api.md §17.2).
 */
export function describeTarget(target: Target): string {
  const hidden = pooled(target) ? `the configured URL of backend '${target.name}'` : "the configured COMFYUI_URL";
  try {
    const host = new URL(target.baseUrl).hostname;
    const local =
      /^(localhost|127\.\d+\.\d+\.\d+|\[::1\]|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+)$/.test(
        host,
      );
    return local ? `${target.baseUrl}${pooled(target) ? ` (backend '${target.name}')` : ""}` : hidden;
  } catch {
    return hidden;
  }
}

/** A backend of a configured pool (the single COMFYUI_URL is named "default"). */
function pooled(target: Target): boolean {
  return target.name !== "default";
}

export function timedOut(path: string, ms: number): ComfyError {
  return new ComfyError(
    "timeout",
    `ComfyUI did not answer ${path} within ${Math.round(ms / 1000)} s. It may be busy loading a model or the tunnel is slow; retry in a moment.`,
  );
}

/** A 3xx or an HTML page where JSON was expected: Cloudflare Access is in the way (comfyui-api.md §17.2). */
export function accessMisconfigured(status: number, location: string | null): ComfyError {
  const where = location ? ` (redirect to ${safeHost(location)})` : "";
  return new ComfyError(
    "access_misconfigured",
    `Something other than ComfyUI answered (HTTP ${status}${where}): most likely Cloudflare Access ` +
      "is asking for a login. Create an Access service token, add a Service Auth policy that includes it to the " +
      "Access application of the tunnel hostname, and set COMFYUI_ACCESS_CLIENT_ID and COMFYUI_ACCESS_CLIENT_SECRET.",
    { status },
  );
}

export function unauthorized(status: number): ComfyError {
  return new ComfyError(
    "unauthorized",
    `The ComfyUI endpoint refused the gateway (HTTP ${status}). If it sits behind Cloudflare Access, check the ` +
      "service token (COMFYUI_ACCESS_CLIENT_ID/SECRET, not expired, included in a Service Auth policy); behind another " +
      "proxy, check COMFYUI_BEARER_TOKEN.",
    { status },
  );
}

/** Renders POST /prompt's 400 body as readable lines: node, class, input, what is wrong. */
export function validationError(body: unknown): ComfyError {
  const parsed = (body ?? {}) as { error?: Partial<ComfyErrorDetail>; node_errors?: Record<string, ComfyNodeError> };
  const lines: string[] = [];
  for (const [nodeId, nodeError] of Object.entries(parsed.node_errors ?? {})) {
    for (const err of nodeError.errors ?? [])
      lines.push(`node ${nodeId} (${nodeError.class_type}): ${describeNodeError(err)}`);
  }
  const top = parsed.error;
  const head = top?.message
    ? `${top.message}${top.details ? `: ${top.details}` : ""}`
    : "ComfyUI rejected the workflow";
  const message =
    lines.length > 0
      ? `ComfyUI rejected the workflow (${top?.type ?? "invalid"}):\n- ${lines.join("\n- ")}`
      : `${head} (${top?.type ?? "invalid_prompt"})`;
  return new ComfyError("validation", message, { error_type: top?.type, node_errors: parsed.node_errors ?? {} });
}

function describeNodeError(err: ComfyErrorDetail): string {
  const input = typeof err.extra_info?.input_name === "string" ? err.extra_info.input_name : undefined;
  switch (err.type) {
    case "required_input_missing":
      return `required input '${input ?? err.details}' is missing`;
    case "value_not_in_list": {
      // details look like "ckpt_name: 'x' not in ['a', 'b']"; an empty list means nothing is installed.
      return /not in \[\]$/.test(err.details)
        ? `${err.details} (nothing of this kind is installed in ComfyUI)`
        : err.details;
    }
    case "value_smaller_than_min":
    case "value_bigger_than_max":
      return `${input ?? err.details}: ${err.message}`;
    case "invalid_input_type":
      return `${input ?? ""}: ${err.message} (${err.details})`;
    default:
      return `${err.message}${err.details ? `: ${err.details}` : ""}`;
  }
}

/**
 * A node failed at run time: the failing node (id and class) and the first line of ComfyUI's
 * exception, with server paths cut to the file's own name. ComfyUI's exception text can run to
 * many lines (tips, nested errors) and its traceback lists server paths (comfyui-api.md §8.4):
 * neither reaches a client, in the message or in the job error's fields.
 */
export function executionError(payload: Partial<ExecutionErrorPayload>): ComfyError {
  const text = (payload.exception_message ?? "").trim();
  const summary = withoutPaths(firstLine(text)).slice(0, MAX_EXCEPTION_CHARS) || "unknown error";
  const node = payload.node_id ? `node ${payload.node_id} (${payload.node_type ?? "?"})` : "a node";
  const hint = /out of memory/i.test(text)
    ? " Try a smaller width/height or batch, or free VRAM (close other GPU apps) and retry."
    : "";
  return new ComfyError(
    "execution",
    `ComfyUI failed while running ${node}: [${payload.exception_type ?? "Error"}] ${summary}${hint}`,
    {
      node_id: payload.node_id,
      node_type: payload.node_type,
      exception_type: payload.exception_type,
      exception_message: summary,
    },
  );
}

const MAX_EXCEPTION_CHARS = 300;

function firstLine(text: string): string {
  return (text.split("\n").find((line) => line.trim() !== "") ?? "").trim();
}

/**
 * `/opt/ComfyUI/models/x.safetensors` → `…/x.safetensors` (and `C:\ComfyUI\x.ckpt` → `…/x.ckpt`):
 * the name is what a user can act on; the directories are the server's business. URLs are left
 * alone (their slashes follow `:` or `/`).
 */
function withoutPaths(text: string): string {
  return text
    .replace(/(?<![\w.~\-/:])\/(?:[^\s'"`/\\:,;()[\]{}<>]+\/)+([^\s'"`/\\:,;()[\]{}<>]*)/g, "…/$1")
    .replace(/\b[A-Za-z]:[\\/](?:[^\s'"`\\/:,;()[\]{}<>]+[\\/])*([^\s'"`\\/:,;()[\]{}<>]*)/g, "…/$1");
}

function safeHost(location: string): string {
  try {
    return new URL(location).host;
  } catch {
    return "another site";
  }
}
