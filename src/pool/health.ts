/**
 * What the coordinator knows about one backend: reachable or not (from its WebSocket and periodic
 * `GET /prompt` checks), how many prompts it has queued, and what it can run (node classes and
 * combo values from `/object_info`, read once and refreshed when it rejoins or on demand).
 */
import { ComfyClient } from "../comfy/client";
import { MODEL_FOLDER_OF, parseCombo } from "../workflows/combos";
import type { ActivityKind } from "./activity";
import type { BackendConfig } from "./config";
import type { Candidate, Requirement } from "./routing";
import { ComfySocket } from "../studio/socket";

const CHECK_TIMEOUT_MS = 5_000;
const CAPABILITIES_TIMEOUT_MS = 30_000;
/** A routed job counts towards the queue until ComfyUI's own count shows it, or this long. */
const ROUTED_TTL_MS = 10_000;

export interface BackendStatus {
  name: string;
  state: "up" | "down" | "unknown";
  weight: number;
  tags: string[];
  queue_remaining: number | null;
  last_error: string | null;
  down_since: string | null;
  last_checked_at: string | null;
  node_count: number | null;
  models: Record<string, string[]>;
}

interface Capabilities {
  at: number;
  /** class → combo inputs → allowed values (non-combo inputs are absent). */
  classes: Map<string, Map<string, Set<string>>>;
}

export class BackendHealth {
  readonly client: ComfyClient;
  private readonly socket: ComfySocket;
  state: "up" | "down" | "unknown" = "unknown";
  private queueRemaining: number | null = null;
  private routed: number[] = [];
  private lastError: string | null = null;
  private downSince: number | null = null;
  lastCheckedAt = 0;
  lastChosenAt = 0;
  private capabilities: Capabilities | undefined;
  private loadingCapabilities: Promise<void> | undefined;
  private checking: Promise<void> | undefined;

  constructor(
    readonly config: BackendConfig,
    wantsSocket: () => boolean,
    report: (kind: ActivityKind) => void,
  ) {
    this.client = new ComfyClient(config);
    this.socket = new ComfySocket(this.client, {
      onEvent: (event) => {
        if (event.type !== "status") return;
        const remaining = (event.data.status as { exec_info?: { queue_remaining?: unknown } } | undefined)?.exec_info
          ?.queue_remaining;
        if (typeof remaining === "number") this.observeQueue(remaining);
      },
      onFrame: () => undefined,
      onConnected: (reconnect) => {
        this.markUp();
        if (reconnect) report("reconnect");
      },
      // A dropped socket is the first sign of a backend going away: check at once.
      wantsConnection: () => wantsSocket(),
      onDisconnected: () => {
        report("socket_drop");
        void this.check();
      },
    });
  }

  get name(): string {
    return this.config.name;
  }

  /**
   * One cheap request (`GET /prompt` answers the queue length; `/queue` would carry every graph);
   * keeps the event socket open. Concurrent callers share one request.
   */
  check(): Promise<void> {
    this.checking ??= this.probe().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async probe(): Promise<void> {
    try {
      const info = await this.client.promptStatus({ timeoutMs: CHECK_TIMEOUT_MS });
      const remaining = info.exec_info?.queue_remaining;
      this.markUp();
      if (typeof remaining === "number") this.observeQueue(remaining);
      this.socket.ensure();
    } catch (error) {
      this.markDown(error instanceof Error ? error.message : String(error));
    } finally {
      this.lastCheckedAt = Date.now();
    }
  }

  /**
   * Reads `/object_info` when never read (or since a rejoin), or when older than `maxAgeMs`. An old
   * copy keeps serving while a fresh one loads unless `wait` (a real ComfyUI with many custom nodes
   * takes seconds to answer, and routing should not wait for what it mostly knows).
   */
  async ensureCapabilities(maxAgeMs: number, wait = false): Promise<void> {
    if (this.state !== "up" || (this.capabilities && Date.now() - this.capabilities.at < maxAgeMs)) return;
    this.loadingCapabilities ??= this.loadCapabilities().finally(() => (this.loadingCapabilities = undefined));
    if (wait || !this.capabilities) await this.loadingCapabilities;
  }

  /** What the router sees: state, load, and which hard requirements this backend lacks. */
  candidate(requirements: Requirement[]): Candidate {
    this.routed = this.routed.filter((at) => Date.now() - at < ROUTED_TTL_MS);
    const missing: string[] = [];
    let softMissing = 0;
    for (const requirement of requirements) {
      if (!this.capabilities) break;
      const problem = this.lacks(requirement);
      if (problem && requirement.soft) softMissing++;
      else if (problem) missing.push(problem);
    }
    return {
      name: this.name,
      state: this.state,
      weight: this.config.weight,
      tags: this.config.tags,
      load: (this.queueRemaining ?? 0) + this.routed.length,
      lastChosenAt: this.lastChosenAt,
      missing: this.capabilities ? missing : undefined,
      softMissing,
      lastError: this.lastError,
    };
  }

  /** Counts a job towards this backend's queue until ComfyUI reports it (spreads bursts). */
  chosen(): void {
    this.lastChosenAt = Date.now();
    this.routed.push(Date.now());
  }

  forgetCapabilities(): void {
    this.capabilities = undefined;
  }

  close(): void {
    this.socket.close();
  }

  status(): BackendStatus {
    const models: Record<string, string[]> = {};
    // The loader inputs that hint at model folders elsewhere list each folder's files here too.
    for (const [target, folder] of Object.entries(MODEL_FOLDER_OF)) {
      const [classType, input] = target.split(".") as [string, string];
      const values = this.capabilities?.classes.get(classType)?.get(input);
      if (values && !models[folder]) models[folder] = [...values];
    }
    return {
      name: this.name,
      state: this.state,
      weight: this.config.weight,
      tags: this.config.tags,
      queue_remaining: this.state === "up" ? this.queueRemaining : null,
      last_error: this.lastError,
      down_since: this.downSince ? new Date(this.downSince).toISOString() : null,
      last_checked_at: this.lastCheckedAt ? new Date(this.lastCheckedAt).toISOString() : null,
      node_count: this.capabilities?.classes.size ?? null,
      models,
    };
  }

  private lacks(requirement: Requirement): string | undefined {
    const inputs = this.capabilities!.classes.get(requirement.class_type);
    if (!inputs) return `node ${requirement.class_type}`;
    if (requirement.input === undefined || requirement.value === undefined) return undefined;
    const allowed = inputs.get(requirement.input);
    return allowed && !allowed.has(requirement.value)
      ? `${requirement.class_type}.${requirement.input} '${requirement.value}'`
      : undefined;
  }

  private observeQueue(remaining: number): void {
    // Each increase is a prompt ComfyUI now counts: retire that many of our routed estimates.
    const grown = this.queueRemaining === null ? remaining : remaining - this.queueRemaining;
    if (grown > 0) this.routed.splice(0, grown);
    this.queueRemaining = remaining;
  }

  private markUp(): void {
    // Rejoining: its models or custom nodes may have changed while it was away.
    if (this.state === "down") this.capabilities = undefined;
    this.state = "up";
    this.downSince = null;
    this.lastError = null;
  }

  private markDown(reason: string): void {
    if (this.state !== "down") this.downSince = Date.now();
    this.state = "down";
    this.lastError = reason;
    this.queueRemaining = null;
    this.routed = [];
    this.socket.close();
  }

  private async loadCapabilities(): Promise<void> {
    try {
      const body = (await this.client.allObjectInfo({ timeoutMs: CAPABILITIES_TIMEOUT_MS })) as Record<
        string,
        { input?: Record<string, Record<string, unknown> | undefined> }
      >;
      const classes = new Map<string, Map<string, Set<string>>>();
      for (const [classType, spec] of Object.entries(body)) {
        const combos = new Map<string, Set<string>>();
        for (const group of [spec?.input?.required, spec?.input?.optional]) {
          for (const [input, inputSpec] of Object.entries(group ?? {})) {
            const options = Array.isArray(inputSpec) ? parseCombo(inputSpec) : undefined;
            if (options) combos.set(input, new Set(options));
          }
        }
        classes.set(classType, combos);
      }
      this.capabilities = { at: Date.now(), classes };
    } catch {
      // Unknown capabilities rank the backend below those known to qualify; retried next time.
    }
  }
}
