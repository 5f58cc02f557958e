/** Shapes of ComfyUI's HTTP and WebSocket API (reference/comfyui-api.md), as far as we read them. */

export type ComfyGraph = Record<
  string,
  { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }
>;

export interface ComfyErrorDetail {
  type: string;
  message: string;
  details: string;
  extra_info?: Record<string, unknown>;
}

export interface ComfyNodeError {
  errors: ComfyErrorDetail[];
  dependent_outputs: string[];
  class_type: string;
}

/** 200 body of POST /prompt. `node_errors` can be non-empty: a partial graph was queued. */
export interface PromptAccepted {
  prompt_id: string;
  number: number;
  node_errors: Record<string, ComfyNodeError>;
}

/** Queue items are `[number, prompt_id, prompt, extra_data, outputs_to_execute]`. */
export type QueueItem = [number, string, ComfyGraph, Record<string, unknown>, string[], ...unknown[]];

export interface QueueState {
  queue_running: QueueItem[];
  queue_pending: QueueItem[];
}

export interface OutputFile {
  filename: string;
  subfolder: string;
  type: string;
  [extra: string]: unknown;
}

/** One node's UI output: `images` (also video, with `animated`), `audio`, `gifs`, `latents`, `text`… */
export type NodeOutput = Record<string, unknown>;

export interface HistoryEntry {
  prompt: [number, string, ComfyGraph, Record<string, unknown>, string[]];
  outputs: Record<string, NodeOutput>;
  status: { status_str: string; completed: boolean; messages: [string, Record<string, unknown>][] } | null;
  meta?: Record<string, unknown>;
}

export interface ExecutionErrorPayload {
  prompt_id: string;
  node_id: string;
  node_type: string;
  exception_message: string;
  exception_type: string;
  traceback?: string[];
}

/** A WebSocket text frame: `{"type": "<event>", "data": {...}}`. */
export interface ComfyEvent {
  type: string;
  data: Record<string, unknown>;
}
