/**
 * A typed, fetch-based client for the ComfyUI routes the gateway uses. Every call has a timeout and
 * honours a caller's AbortSignal; every request carries the Access/bearer headers; every failure is
 * a ComfyError with a message an agent can act on.
 */
import type { ComfyConnection } from "./connection";
import {
  ComfyError,
  accessMisconfigured,
  describeTarget,
  timedOut,
  unauthorized,
  unreachable,
  validationError,
} from "./errors";
import type { ComfyGraph, HistoryEntry, PromptAccepted, QueueState } from "./types";

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 15_000;

export class ComfyClient {
  constructor(readonly connection: ComfyConnection) {}

  get baseUrl(): string {
    return this.connection.baseUrl;
  }

  async systemStats(options?: CallOptions): Promise<Record<string, unknown>> {
    return this.json("GET", "/system_stats", undefined, options);
  }

  /** Submits a graph. 400 → a readable validation error; a 200 may still list dropped outputs. */
  async queuePrompt(
    graph: ComfyGraph,
    clientId: string,
    promptId: string,
    options?: CallOptions,
  ): Promise<PromptAccepted> {
    const response = await this.request(
      "POST",
      "/prompt",
      { prompt: graph, client_id: clientId, prompt_id: promptId },
      options,
    );
    if (response.status === 400) throw validationError(await readJsonLoose(response));
    const body = await this.expectJson<PromptAccepted>(response, "/prompt", options?.timeoutMs);
    if (typeof body.prompt_id !== "string")
      throw new ComfyError("bad_response", "ComfyUI accepted the prompt but returned no prompt_id.");
    return body;
  }

  async queue(options?: CallOptions): Promise<QueueState> {
    const body = await this.json<Partial<QueueState>>("GET", "/queue", undefined, options);
    return { queue_running: body.queue_running ?? [], queue_pending: body.queue_pending ?? [] };
  }

  /** Removes pending prompts. ComfyUI answers an empty-body 200 (POST_queue__delete.json). */
  async deleteFromQueue(promptIds: string[], options?: CallOptions): Promise<void> {
    await this.empty("POST", "/queue", { delete: promptIds }, options);
  }

  /** Interrupts the running prompt only if it is `promptId` (a no-op otherwise); empty-body 200. */
  async interrupt(promptId: string, options?: CallOptions): Promise<void> {
    await this.empty("POST", "/interrupt", { prompt_id: promptId }, options);
  }

  /** `undefined` while the prompt is pending, running, unknown or forgotten (`{}` from ComfyUI). */
  async history(promptId: string, options?: CallOptions): Promise<HistoryEntry | undefined> {
    const body = await this.json<Record<string, HistoryEntry>>(
      "GET",
      `/history/${encodeURIComponent(promptId)}`,
      undefined,
      options,
    );
    return body[promptId];
  }

  /** Raw `/view` response, for streaming or header inspection. 404 → a ComfyError. */
  async view(
    file: { filename: string; subfolder: string; type: string },
    init: CallOptions & { range?: string } = {},
  ): Promise<Response> {
    const query = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder, type: file.type });
    const headers = init.range ? { Range: init.range } : undefined;
    const response = await this.request("GET", `/view?${query}`, undefined, init, headers);
    if (response.status === 404) {
      await response.body?.cancel();
      throw new ComfyError(
        "http",
        `ComfyUI no longer has ${file.type}/${file.subfolder ? `${file.subfolder}/` : ""}${file.filename} (404). Temp files vanish when ComfyUI restarts.`,
      );
    }
    if (response.status !== 200 && response.status !== 206) throw await this.unexpected(response, "/view");
    return response;
  }

  /**
   * Uploads an input file (`POST /upload/image`, multipart; any file type, comfyui-api.md §12.1).
   * Returns the name to put in a LoadImage-style input: `subfolder/name`.
   */
  async uploadInput(
    bytes: Uint8Array,
    filename: string,
    mime: string,
    subfolder: string,
    options?: CallOptions,
  ): Promise<string> {
    const form = new FormData();
    form.append("image", new Blob([bytes], { type: mime }), filename);
    form.append("type", "input");
    form.append("subfolder", subfolder);
    // Names are content hashes, so overwriting only ever rewrites identical bytes.
    form.append("overwrite", "true");
    const response = await this.request("POST", "/upload/image", form, { timeoutMs: 60_000, ...options });
    const body = await this.expectJson<{ name?: unknown; subfolder?: unknown }>(response, "/upload/image", 60_000);
    if (typeof body.name !== "string")
      throw new ComfyError("bad_response", "ComfyUI accepted the upload but did not say where it stored it.");
    return typeof body.subfolder === "string" && body.subfolder ? `${body.subfolder}/${body.name}` : body.name;
  }

  /** `GET /prompt`: the queue length alone, the cheapest liveness check ComfyUI offers. */
  async promptStatus(options?: CallOptions): Promise<{ exec_info?: { queue_remaining?: unknown } }> {
    return this.json("GET", "/prompt", undefined, options);
  }

  /** Every node class's definition (seconds on a ComfyUI with many custom nodes). */
  async allObjectInfo(options?: CallOptions): Promise<Record<string, unknown>> {
    return this.json("GET", "/object_info", undefined, options);
  }

  async objectInfo(nodeClass: string, options?: CallOptions): Promise<Record<string, unknown>> {
    return this.json("GET", `/object_info/${encodeURIComponent(nodeClass)}`, undefined, options);
  }

  /** Model files of one folder (`checkpoints`, `diffusion_models`, `loras`…); unknown folder → []. */
  async models(folder: string, options?: CallOptions): Promise<string[] | undefined> {
    const response = await this.request("GET", `/models/${encodeURIComponent(folder)}`, undefined, options);
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    const body = await this.expectJson<unknown>(response, `/models/${folder}`, options?.timeoutMs);
    return Array.isArray(body) ? body.filter((m): m is string => typeof m === "string") : [];
  }

  async modelFolders(options?: CallOptions): Promise<string[]> {
    const body = await this.json<unknown>("GET", "/models", undefined, options);
    return Array.isArray(body) ? body.filter((m): m is string => typeof m === "string") : [];
  }

  /** Opens the event socket from a Worker/DO: `fetch` + `Upgrade` is the only way to send headers. */
  async openSocket(clientId: string, options?: CallOptions): Promise<WebSocket> {
    const response = await this.request("GET", `/ws?clientId=${encodeURIComponent(clientId)}`, undefined, options, {
      Upgrade: "websocket",
    });
    const socket = response.webSocket;
    if (!socket) {
      await this.classify(response, "/ws");
      throw new ComfyError("http", `ComfyUI refused the WebSocket upgrade (HTTP ${response.status}).`, {
        status: response.status,
      });
    }
    socket.accept();
    return socket;
  }

  // --- plumbing -------------------------------------------------------------------------------

  private async json<T>(method: string, path: string, body: unknown, options?: CallOptions): Promise<T> {
    return this.expectJson<T>(await this.request(method, path, body, options), path, options?.timeoutMs);
  }

  private async empty(method: string, path: string, body: unknown, options?: CallOptions): Promise<void> {
    const response = await this.request(method, path, body, options);
    if (response.status !== 200) throw await this.unexpected(response, path);
    // Never JSON-parse: ComfyUI answers these with Content-Length: 0.
    await response.body?.cancel();
  }

  /**
   * One request. `timeoutMs` bounds connecting and the response headers, and nothing after: a signal
   * handed to `fetch` stays attached to what it returns (the body stream, or the upgraded WebSocket,
   * which workerd closes when the signal fires), so a deadline that outlived the headers closed the
   * event socket 5 s after it opened and would cut a long download mid-stream. Bodies read whole are
   * bounded by `readBytes`/`readText`; a streamed body ends when its reader stops.
   */
  async request(
    method: string,
    path: string,
    body: unknown,
    options: CallOptions = {},
    extraHeaders?: Record<string, string>,
  ): Promise<Response> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
    const headers: Record<string, string> = { ...this.connection.headers, ...extraHeaders };
    const form = body instanceof FormData;
    if (body !== undefined && !form) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(`${this.connection.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
        signal,
        // A redirect is Access's login page, never ComfyUI: see it instead of following it.
        redirect: "manual",
      });
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      if (deadline.signal.aborted) throw timedOut(routeOf(path), timeoutMs);
      throw unreachable(this.connection, error);
    } finally {
      clearTimeout(timer);
    }
    await this.classify(response, path);
    return response;
  }

  /** Throws for answers that cannot come from ComfyUI itself. */
  private async classify(response: Response, path: string): Promise<void> {
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      throw accessMisconfigured(response.status, response.headers.get("Location"));
    }
    if (response.status === 401 || response.status === 403) {
      const html = isHtml(response);
      await response.body?.cancel();
      throw html ? accessMisconfigured(response.status, null) : unauthorized(response.status);
    }
    if (isHtml(response) && !path.startsWith("/view")) {
      await response.body?.cancel();
      throw accessMisconfigured(response.status, null);
    }
    if (
      response.status === 502 ||
      response.status === 503 ||
      response.status === 504 ||
      response.status === 530 ||
      response.status === 1033
    ) {
      await response.body?.cancel();
      throw new ComfyError(
        "unreachable",
        `The tunnel answered HTTP ${response.status}: ComfyUI (or cloudflared) is not running behind ${describeTarget(this.connection)}. Start it and retry.`,
        { status: response.status },
      );
    }
  }

  private async expectJson<T>(response: Response, path: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<T> {
    if (response.status !== 200) throw await this.unexpected(response, path);
    const text = await readText(response, routeOf(path), timeoutMs);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ComfyError(
        "bad_response",
        `ComfyUI answered ${path.split("?")[0]} with something that is not JSON (${text.length} bytes). Is COMFYUI_URL pointing at ComfyUI?`,
      );
    }
  }

  private async unexpected(response: Response, path: string): Promise<ComfyError> {
    const text = (await readText(response, routeOf(path), 5_000).catch(() => "")).slice(0, 200);
    const route = path.split("?")[0];
    if (response.status >= 500) {
      return new ComfyError(
        "http",
        `ComfyUI failed on ${route} (HTTP ${response.status}${text ? `: ${text.split("\n")[0]}` : ""}). Check the ComfyUI console; retry once it is healthy.`,
        { status: response.status },
      );
    }
    return new ComfyError("http", `ComfyUI answered ${route} with HTTP ${response.status}.`, {
      status: response.status,
    });
  }
}

function isHtml(response: Response): boolean {
  return (response.headers.get("Content-Type") ?? "").toLowerCase().includes("text/html");
}

async function readJsonLoose(response: Response): Promise<unknown> {
  const text = await readText(response, "/prompt", DEFAULT_TIMEOUT_MS);
  try {
    return JSON.parse(text);
  } catch {
    return { error: { type: "invalid_prompt", message: text.slice(0, 200) } };
  }
}

function routeOf(path: string): string {
  return path.split("?")[0] ?? path;
}

/** Reads a whole body within `timeoutMs`, cancelling it when time is up (a stalled tunnel). */
export async function readBytes(response: Response, route: string, timeoutMs: number): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      response.body?.cancel().catch(() => undefined);
      reject(timedOut(route, timeoutMs));
    }, timeoutMs);
  });
  try {
    return new Uint8Array(await Promise.race([response.arrayBuffer(), expired]));
  } finally {
    clearTimeout(timer);
  }
}

export async function readText(response: Response, route: string, timeoutMs: number): Promise<string> {
  return new TextDecoder().decode(await readBytes(response, route, timeoutMs));
}
