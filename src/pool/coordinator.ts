/**
 * The pool's coordinator: one Durable Object for the whole gateway that keeps every backend's
 * health, queue length and capabilities, and routes jobs. Studios (one per user) and tools ask it
 * where a job should run; it answers from memory, checking a backend first when what it knows is
 * stale. It checks every backend each COMFY_MCP_HEALTH_SECONDS while the gateway is in use and
 * goes quiet (sockets closed, no alarm) after ten idle minutes, so an unused gateway costs nothing.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../config";
import { Activity, type ActivityKind, type LastHour } from "./activity";
import { BackendHealth, type BackendStatus } from "./health";
import { chooseBackend, type RouteDecision, type RouteRequest } from "./routing";

const ACTIVE_WINDOW_MS = 10 * 60_000;
/** Capabilities (node classes, model lists) are re-read at most this often unless a job needs more. */
const CAPABILITIES_MAX_AGE_MS = 10 * 60_000;
/** When no backend has what a job needs, look again (a model may just have been installed). */
const CAPABILITIES_RETRY_AGE_MS = 15_000;

export class Pool extends DurableObject<Env> {
  private readonly backends: BackendHealth[];
  private readonly activity: Activity;
  private readonly healthMs: number;
  private lastActivity = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const config = readConfig(env);
    this.healthMs = config.healthMs;
    this.activity = new Activity(ctx.storage.sql);
    this.backends = config.backends.map(
      (backend) =>
        new BackendHealth(
          backend,
          () => this.active(),
          (kind) => this.record(backend.name, kind),
        ),
    );
  }

  /** Picks a backend for a job (see routing.ts), or says why none can take it. */
  async route(request: RouteRequest): Promise<RouteDecision> {
    await this.upToDate();
    let decision = chooseBackend(this.candidates(request), request);
    if (!decision.ok && decision.kind === "no_backend") {
      await Promise.all(this.backends.map((b) => b.ensureCapabilities(CAPABILITIES_RETRY_AGE_MS, true)));
      decision = chooseBackend(this.candidates(request), request);
    }
    if (decision.ok) this.backends.find((b) => b.name === decision.backend)!.chosen();
    return decision;
  }

  /** Every backend's state and last hour, for list_backends. */
  async status(): Promise<Array<BackendStatus & { last_hour: LastHour }>> {
    await this.upToDate();
    const lastHour = this.lastHour();
    return this.backends.map((b) => ({ ...b.status(), last_hour: lastHour[b.name]! }));
  }

  /** Socket and completion counts per backend over the last hour (cheap: no backend is asked). */
  lastHour(): Record<string, LastHour> {
    return this.activity.lastHour(this.backends.map((b) => b.name));
  }

  /** A studio (or this coordinator's own socket) saw something worth counting on a backend. */
  record(backend: string, kind: ActivityKind): void {
    this.activity.record(backend, kind);
  }

  /** A tool or studio saw a backend fail (or recover): check it now rather than at the next tick. */
  async suspect(name: string): Promise<void> {
    await this.backends.find((b) => b.name === name)?.check();
  }

  override async alarm(): Promise<void> {
    if (!this.active()) {
      for (const backend of this.backends) backend.close();
      return;
    }
    await Promise.all(this.backends.map((b) => b.check()));
    await this.ctx.storage.setAlarm(Date.now() + this.healthMs);
  }

  /** Before answering: keep the checks going, check what is stale, and know what each backend has. */
  private async upToDate(): Promise<void> {
    await this.touch();
    await this.refreshStale();
    await Promise.all(this.backends.map((b) => b.ensureCapabilities(CAPABILITIES_MAX_AGE_MS)));
  }

  private candidates(request: RouteRequest) {
    return this.backends.map((b) => b.candidate(request.requirements));
  }

  /**
   * Checks backends not heard from within a health interval (e.g. right after waking up). A backend
   * already known to be down is re-checked in the background: a dead tunnel must not slow routing.
   */
  private async refreshStale(): Promise<void> {
    const stale = this.backends.filter((b) => Date.now() - b.lastCheckedAt > this.healthMs);
    for (const backend of stale.filter((b) => b.state === "down")) this.ctx.waitUntil(backend.check());
    await Promise.all(stale.filter((b) => b.state !== "down").map((b) => b.check()));
  }

  private active(): boolean {
    return Date.now() - this.lastActivity < ACTIVE_WINDOW_MS;
  }

  private async touch(): Promise<void> {
    this.lastActivity = Date.now();
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + this.healthMs);
  }
}
