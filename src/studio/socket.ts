/**
 * One WebSocket to one ComfyUI, for as long as it is wanted. It keeps one clientId for its whole
 * life: ComfyUI sends a prompt's execution events only to the client_id the prompt was submitted
 * with (server.py `send_sync(event, data, sid)` looks up `sockets[sid]`), so a reconnect under a
 * fresh id would orphan every job already submitted, while a reconnect under the same id resumes
 * their events (comfyui-api.md §8.1). ComfyUI's registry has one trap: when a replaced socket closes
 * *after* its successor registered, its cleanup unregisters the successor. So the old socket is
 * always closed before the next one opens (teardown, then a backoff of at least 125 ms), and the
 * studio recycles a socket that turns out to be deaf (a job it should have heard finished unheard).
 * A keepalive every 5 s stops Cloudflare closing an idle socket (~100 s) and keeps the path warm:
 * after a long silent node the frames that end a job arrived ~9 ms later on a socket idle for 30 s
 * (measured: 60 s jobs' median notice 34.5 -> 25.7 ms). Reconnects back off exponentially
 * with jitter so a flapping ComfyUI never sees a storm.
 */
import type { ComfyClient } from "../comfy/client";
import { parseBinaryFrame, type BinaryFrame } from "../comfy/frames";
import type { ComfyEvent } from "../comfy/types";

const KEEPALIVE_MS = 5_000;
const CONNECT_TIMEOUT_MS = 5_000;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 30_000;

export interface SocketHooks {
  onEvent(event: ComfyEvent): void;
  /** Binary frames: sampler previews and progress text from nodes. */
  onFrame(frame: BinaryFrame): void;
  /** Called after every connect; `reconnect` when it replaces a connection that dropped. */
  onConnected(reconnect: boolean): void;
  /** Whether a reconnect is still wanted (jobs are pending). */
  wantsConnection(): boolean;
  /** Called when an open socket drops (the peer may be gone). */
  onDisconnected?(): void;
}

/** A clientId as ComfyUI mints them (uuid4 hex, no dashes). */
export function newClientId(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

export class ComfySocket {
  private socket: WebSocket | undefined;
  private connecting: Promise<string> | undefined;
  private keepalive: ReturnType<typeof setInterval> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  lastError: string | undefined;
  /** Connections opened so far (the first one and every reconnect). */
  opens = 0;
  /** The last connection dropped (rather than being closed as no longer wanted). */
  private dropped = false;
  /** When the current connection opened (0 while closed). */
  openedAt = 0;

  constructor(
    private readonly client: ComfyClient,
    private readonly hooks: SocketHooks,
    /** The one clientId of this socket, across reconnects; prompts are submitted with it. */
    readonly id: string = newClientId(),
  ) {}

  /** The clientId while the socket is open, else undefined. */
  get clientId(): string | undefined {
    return this.socket ? this.id : undefined;
  }

  /** Opens the socket if needed and resolves to its clientId; rejects with a ComfyError. */
  connect(): Promise<string> {
    if (this.socket) return Promise.resolve(this.id);
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** True while a reconnect is scheduled: the backoff, not callers, decides when to try again. */
  get backingOff(): boolean {
    return this.reconnectTimer !== undefined;
  }

  /** Connects unless connected or backing off; never throws (the caller falls back to polling). */
  ensure(): void {
    if (this.socket || this.backingOff) return;
    this.connect().catch(() => undefined);
  }

  close(): void {
    this.dropped = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.teardown();
  }

  /** Test hook and fault drill: drop the connection as a network failure would. */
  dropForTest(): void {
    this.socket?.close(4000, "dropped");
  }

  /**
   * Closes the connection and opens a new one under the same id: for a socket that is open but
   * deaf (ComfyUI unregistered it, see the header).
   */
  recycle(reason: string): void {
    if (!this.socket) return;
    this.lost(this.socket, reason);
  }

  private async open(): Promise<string> {
    const clientId = this.id;
    try {
      const socket = await this.client.openSocket(clientId, { timeoutMs: CONNECT_TIMEOUT_MS });
      socket.binaryType = "arraybuffer";
      socket.addEventListener("message", (message) => this.receive(message.data));
      socket.addEventListener("close", () => this.lost(socket, "closed"));
      socket.addEventListener("error", () => this.lost(socket, "error"));
      this.socket = socket;
      this.failures = 0;
      this.lastError = undefined;
      this.openedAt = Date.now();
      this.keepalive = setInterval(() => this.ping(), KEEPALIVE_MS);
      this.opens++;
      const reconnect = this.dropped;
      this.dropped = false;
      this.hooks.onConnected(reconnect);
      return clientId;
    } catch (error) {
      this.failures++;
      this.lastError = error instanceof Error ? error.message : String(error);
      this.scheduleReconnect();
      throw error;
    }
  }

  private receive(data: unknown): void {
    if (data instanceof ArrayBuffer) {
      const frame = parseBinaryFrame(data);
      if (frame) this.hooks.onFrame(frame);
      return;
    }
    if (typeof data !== "string") return;
    let event: ComfyEvent;
    try {
      event = JSON.parse(data) as ComfyEvent;
    } catch {
      return;
    }
    if (event && typeof event.type === "string" && typeof event.data === "object" && event.data !== null)
      this.hooks.onEvent(event);
  }

  private ping(): void {
    try {
      // ComfyUI parses and ignores any message after the first (comfyui-api.md §8.1).
      this.socket?.send(JSON.stringify({ type: "ping" }));
    } catch {
      this.lost(this.socket, "send failed");
    }
  }

  private lost(socket: WebSocket | undefined, reason: string): void {
    if (!socket || socket !== this.socket) return;
    this.lastError = `WebSocket ${reason}`;
    this.dropped = true;
    this.teardown();
    this.scheduleReconnect();
    this.hooks.onDisconnected?.();
  }

  private teardown(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = undefined;
    const socket = this.socket;
    this.socket = undefined;
    this.openedAt = 0;
    try {
      socket?.close(1000, "bye");
    } catch {
      // already closed
    }
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || !this.hooks.wantsConnection()) return;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.failures, 10));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.hooks.wantsConnection()) this.connect().catch(() => undefined);
    }, delay);
  }
}
