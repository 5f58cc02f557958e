/**
 * The Worker's view of the pool: a ComfyUI client per configured backend (by name) and the
 * coordinator that routes jobs and knows each backend's health. Records made before the pool
 * existed carry no backend name and belong to the first configured backend.
 */
import { ComfyClient, type CallOptions } from "../comfy/client";
import type { GatewayConfig } from "../config";
import { ToolFailure } from "../mcp/results";
import type { AssetView } from "../studio/records";
import type { Pool } from "./coordinator";

/** The coordinator is one Durable Object for the whole gateway, under this name. */
const POOL_NAME = "pool";

export class Backends {
  private readonly clients = new Map<string, ComfyClient>();

  constructor(
    private readonly config: GatewayConfig,
    private readonly env: Env,
  ) {}

  get names(): string[] {
    return this.config.backends.map((b) => b.name);
  }

  get multiple(): boolean {
    return this.config.backends.length > 1;
  }

  /** The client of a backend by name ("" = the first), or undefined when no such backend is configured. */
  find(name: string): ComfyClient | undefined {
    const config = name === "" ? this.config.backends[0] : this.config.backends.find((b) => b.name === name);
    if (!config) return undefined;
    let client = this.clients.get(config.name);
    if (!client) this.clients.set(config.name, (client = new ComfyClient(config)));
    return client;
  }

  /** Like find, for tools: a name not configured is a ToolFailure saying what exists. */
  client(name: string): ComfyClient {
    const client = this.find(name);
    if (client) return client;
    if (this.config.backendError) throw new ToolFailure(this.config.backendError);
    throw new ToolFailure(
      `There is no backend '${name}' (backends: ${this.names.join(", ")}). Files made on a backend that was removed from COMFYUI_BACKENDS are out of reach until it is restored.`,
    );
  }

  /** Every configured backend's client, in configuration order. */
  all(): ComfyClient[] {
    return this.names.map((name) => this.client(name));
  }

  /** An asset's file, read from the backend that made it. */
  viewAsset(asset: AssetView, options?: CallOptions & { range?: string }): Promise<Response> {
    return this.client(asset.backend).view(
      { filename: asset.filename, subfolder: asset.subfolder, type: asset.folder_type },
      options,
    );
  }

  get coordinator(): DurableObjectStub<Pool> {
    return coordinator(this.env);
  }
}

export function coordinator(env: Env): DurableObjectStub<Pool> {
  return env.POOL.get(env.POOL.idFromName(POOL_NAME));
}
