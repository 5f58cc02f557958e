/**
 * How the view talks to the gateway's tools. Inside an MCP host (claude.ai, ChatGPT, VS Code, the
 * Inspector…) it speaks the MCP Apps protocol (io.modelcontextprotocol/ui, 2026-01-26): JSON-RPC
 * over postMessage with the host, which relays tools/call to the server. As the /studio web page
 * it posts the same tools/call to /studio/mcp, which the signed-in session authorises.
 *
 * The protocol is implemented here rather than with @modelcontextprotocol/ext-apps' `App`: that
 * class pulls in the MCP SDK and zod, 129 KB gzipped (app-with-deps.js), twice the view's budget.
 */

export interface ToolResult {
  content?: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

export interface Bridge {
  readonly mode: "host" | "page";
  callTool(name: string, args: Record<string, unknown>): Promise<ToolResult>;
  /** Full-size media: the host opens links itself (a sandboxed frame cannot navigate). */
  openLink(url: string): void;
}

export interface HostEvents {
  /** The host is running the tool this view belongs to, with these arguments. */
  toolInput(args: Record<string, unknown>): void;
  toolResult(result: ToolResult): void;
  toolCancelled(reason: string): void;
  theme(theme: "light" | "dark"): void;
}

const PROTOCOL_VERSION = "2026-01-26";
const APP_INFO = { name: "comfyui-studio", version: "1.0.0" };

type Message = { jsonrpc: "2.0"; id?: number | string; method?: string; params?: any; result?: any; error?: any };

/** Connects to the host that embeds this frame; resolves once the host has answered ui/initialize. */
export async function connectToHost(events: HostEvents): Promise<Bridge> {
  const host = window.parent;
  const pending = new Map<number | string, { resolve(value: any): void; reject(error: Error): void }>();
  let nextId = 1;
  const send = (message: Omit<Message, "jsonrpc">) => host.postMessage({ jsonrpc: "2.0", ...message }, "*");
  const request = (method: string, params: unknown): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      send({ id, method, params });
    });

  window.addEventListener("message", (event: MessageEvent) => {
    // Only the embedding host speaks to us; anything else (other frames, extensions) is ignored.
    if (event.source !== host) return;
    const message = event.data as Message;
    if (typeof message !== "object" || message === null || message.jsonrpc !== "2.0") return;
    if (message.method === undefined && message.id !== undefined) {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (!waiter) return;
      if (message.error) waiter.reject(new Error(String(message.error.message ?? "The host refused the request.")));
      else waiter.resolve(message.result);
      return;
    }
    const params = message.params ?? {};
    switch (message.method) {
      case "ui/notifications/tool-input":
        events.toolInput(params.arguments ?? {});
        break;
      case "ui/notifications/tool-result":
        events.toolResult(params as ToolResult);
        break;
      case "ui/notifications/tool-cancelled":
        events.toolCancelled(String(params.reason ?? "The host cancelled the tool call."));
        break;
      case "ui/notifications/host-context-changed":
        if (params.theme) events.theme(params.theme);
        break;
      case "ui/resource-teardown":
        if (message.id !== undefined) send({ id: message.id, result: {} });
        break;
      case "ping":
        if (message.id !== undefined) send({ id: message.id, result: {} });
        break;
      default:
        // A request we do not implement gets an answer, so the host never waits on us.
        if (message.id !== undefined) send({ id: message.id, error: { code: -32601, message: "Method not found" } });
    }
  });

  const initialized = await request("ui/initialize", {
    protocolVersion: PROTOCOL_VERSION,
    appInfo: APP_INFO,
    appCapabilities: {},
  });
  if (initialized?.hostContext?.theme) events.theme(initialized.hostContext.theme);
  send({ method: "ui/notifications/initialized", params: {} });
  reportSize((size) => send({ method: "ui/notifications/size-changed", params: size }));

  return {
    mode: "host",
    callTool: (name, args) => request("tools/call", { name, arguments: args }),
    openLink: (url) => {
      request("ui/open-link", { url }).catch(() => window.open(url, "_blank", "noopener"));
    },
  };
}

/** Hosts size the frame to the content: tell them whenever the content's height changes. */
function reportSize(report: (size: { width: number; height: number }) => void): void {
  let last = 0;
  const observer = new ResizeObserver(() => {
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height === last) return;
    last = height;
    report({ width: Math.ceil(document.documentElement.scrollWidth), height });
  });
  observer.observe(document.documentElement);
}

/** The /studio page: the same tools, over the session-authorised endpoint of this origin. */
export function connectToPage(): Bridge {
  let nextId = 1;
  return {
    mode: "page",
    async callTool(name, args) {
      const response = await fetch("/studio/mcp", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method: "tools/call", params: { name, arguments: args } }),
      });
      if (response.status === 401 || response.status === 403) {
        throw new Error("Your sign-in has ended. Reload the page to sign in again.");
      }
      const message = parseRpcBody(await response.text(), response.headers.get("Content-Type") ?? "");
      if (!message) throw new Error(`The gateway answered ${response.status} without a result.`);
      if (message.error) throw new Error(String(message.error.message));
      return message.result as ToolResult;
    },
    openLink: (url) => {
      window.open(url, "_blank", "noopener");
    },
  };
}

/** A JSON-RPC response from a JSON body or from the last `data:` event of an SSE stream. */
function parseRpcBody(body: string, contentType: string): Message | undefined {
  try {
    if (!contentType.includes("event-stream")) return JSON.parse(body) as Message;
    const events = body
      .split(/\r?\n/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => JSON.parse(line.slice(5)) as Message);
    return events.reverse().find((event) => event.id !== undefined && event.method === undefined);
  } catch {
    return undefined;
  }
}
