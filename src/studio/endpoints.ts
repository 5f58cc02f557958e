/**
 * The studio's line to each backend: a ComfyUI client, one event socket under a clientId that this
 * studio keeps for that backend for good (stored, so a restarted studio reconnects under the same id
 * and still hears the jobs it submitted before), and what it has seen of the backend's reachability.
 */
import { ComfyClient } from "../comfy/client";
import type { BinaryFrame } from "../comfy/frames";
import type { ComfyEvent } from "../comfy/types";
import type { BackendConfig } from "../pool/config";
import { ComfySocket, newClientId } from "./socket";

type QueueSnapshot = Awaited<ReturnType<ComfyClient["queue"]>>;

export interface Endpoint {
  name: string;
  client: ComfyClient;
  socket: ComfySocket;
  /** Since when every call to it failed (unset while it answers). */
  unreachableSince?: number;
  lastError?: string;
  lastOrphanCheck: number;
  /** When a job was last open (or submitted) here: the socket lingers a while after, for the next one. */
  lastBusyAt: number;
  recentQueue?: { at: number; value: Promise<QueueSnapshot> };
}

export interface EndpointHooks {
  onEvent(backend: string, event: ComfyEvent): void;
  onFrame(backend: string, frame: BinaryFrame): void;
  /** After every connect; `reconnect` when the socket had been open before. */
  onConnected(backend: string, reconnect: boolean): void;
  onDropped(backend: string): void;
  /** Whether the socket is still wanted (jobs are open there). */
  wanted(backend: string): boolean;
}

export class Endpoints {
  private readonly lines = new Map<string, Endpoint>();

  constructor(
    private readonly sql: SqlStorage,
    private readonly backends: BackendConfig[],
    private readonly hooks: EndpointHooks,
  ) {}

  /** The line to a backend, opened on first use; undefined when no such backend is configured. */
  get(name: string): Endpoint | undefined {
    let endpoint = this.lines.get(name);
    if (endpoint) return endpoint;
    const config = this.backends.find((b) => b.name === name);
    if (!config) return undefined;
    const client = new ComfyClient(config);
    const socket = new ComfySocket(
      client,
      {
        onEvent: (event) => this.hooks.onEvent(name, event),
        onFrame: (frame) => this.hooks.onFrame(name, frame),
        onConnected: (reconnect) => this.hooks.onConnected(name, reconnect),
        onDisconnected: () => this.hooks.onDropped(name),
        wantsConnection: () => this.hooks.wanted(name),
      },
      this.clientIdOf(name),
    );
    endpoint = { name, client, socket, lastOrphanCheck: 0, lastBusyAt: Date.now() };
    this.lines.set(name, endpoint);
    return endpoint;
  }

  /** The lines opened so far. */
  all(): Endpoint[] {
    return [...this.lines.values()];
  }

  /**
   * The clientId to submit with. It is the socket's for good, so a prompt submitted while the socket
   * is down still has its events delivered once it reconnects. A connection is attempted first
   * (ComfyUI drops events sent while no socket is registered) unless the socket is backing off, so
   * submissions never add connection attempts to a refusing ComfyUI.
   */
  async clientIdFor(endpoint: Endpoint): Promise<string> {
    endpoint.lastBusyAt = Date.now();
    if (!endpoint.socket.clientId && !endpoint.socket.backingOff)
      await endpoint.socket.connect().catch(() => undefined);
    return endpoint.socket.id;
  }

  private clientIdOf(backend: string): string {
    const stored = this.sql
      .exec<{ client_id: string }>("SELECT client_id FROM socket_ids WHERE backend = ?", backend)
      .toArray()[0];
    if (stored) return stored.client_id;
    const id = newClientId();
    this.sql.exec("INSERT INTO socket_ids (backend, client_id) VALUES (?, ?)", backend, id);
    return id;
  }
}
