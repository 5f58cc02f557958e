/**
 * Turns ComfyUI's per-prompt events into one progress figure per job: nodes done out of nodes to
 * run, refined by the sampler's step value/max inside the current node (comfyui-api.md §8.2-8.3).
 */
import type { BinaryFrame } from "../comfy/frames";
import type { ComfyEvent } from "../comfy/types";
import type { JobProgress } from "./records";

export class ProgressTracker {
  private nodesDone = 0;
  private cached = 0;
  private currentNode: string | undefined;
  private step: number | undefined;
  private steps: number | undefined;
  private queueRemaining: number | undefined;
  private started = false;
  private nodeText: string | undefined;
  private previews = 0;

  constructor(
    private readonly nodeCount: number,
    private readonly classOf: (nodeId: string) => string | undefined,
  ) {}

  /** Applies one event for this job; returns the new progress, or undefined if nothing changed. */
  apply(event: ComfyEvent): JobProgress | undefined {
    const data = event.data;
    switch (event.type) {
      case "status": {
        const remaining = (data.status as { exec_info?: { queue_remaining?: number } } | undefined)?.exec_info
          ?.queue_remaining;
        if (this.started || typeof remaining !== "number") return undefined;
        this.queueRemaining = remaining;
        return this.snapshot();
      }
      case "execution_start":
        this.started = true;
        return this.snapshot();
      case "execution_cached":
        this.cached = Array.isArray(data.nodes) ? data.nodes.length : 0;
        return this.snapshot();
      case "executing": {
        if (typeof data.node !== "string") return undefined;
        if (this.currentNode !== undefined) this.nodesDone++;
        this.started = true;
        this.currentNode = data.node;
        this.step = this.steps = undefined;
        this.nodeText = undefined;
        return this.snapshot();
      }
      case "progress":
        if (typeof data.value !== "number" || typeof data.max !== "number") return undefined;
        this.started = true;
        this.step = data.value;
        this.steps = data.max;
        return this.snapshot();
      default:
        return undefined;
    }
  }

  /** Binary frames: a node's progress text (type 3) or a sampler preview (types 1 and 4). */
  applyFrame(frame: BinaryFrame): JobProgress | undefined {
    if (frame.kind === "text" && frame.node_id === this.currentNode && frame.text.trim()) {
      this.nodeText = frame.text.trim().slice(0, 120);
      return this.snapshot();
    }
    if (frame.kind === "preview") {
      this.previews++;
      return this.snapshot();
    }
    return undefined;
  }

  /** The node currently running, to attribute frames that carry no prompt id. */
  get runningNode(): string | undefined {
    return this.started ? this.currentNode : undefined;
  }

  snapshot(): JobProgress {
    if (!this.started) {
      const ahead = this.queueRemaining !== undefined ? Math.max(0, this.queueRemaining - 1) : undefined;
      return {
        fraction: 0,
        message: ahead ? `queued in ComfyUI (${ahead} job${ahead === 1 ? "" : "s"} ahead)` : "queued in ComfyUI",
        queue_remaining: this.queueRemaining,
      };
    }
    const toRun = Math.max(1, this.nodeCount - this.cached);
    const inNode = this.steps ? (this.step ?? 0) / this.steps : 0;
    const fraction = Math.min(0.99, (this.nodesDone + inNode) / toRun);
    const nodeIndex = Math.min(toRun, this.nodesDone + 1);
    const nodeClass = this.currentNode ? this.classOf(this.currentNode) : undefined;
    const stepText = this.steps ? `, step ${this.step}/${this.steps}` : "";
    const text = this.nodeText ? `: ${this.nodeText}` : "";
    return {
      fraction,
      message: this.currentNode
        ? `running node ${nodeIndex}/${toRun} (${nodeClass ?? this.currentNode})${stepText}${text}`
        : "started",
      node: this.currentNode,
      node_class: nodeClass,
      node_index: nodeIndex,
      node_count: toRun,
      step: this.step,
      steps: this.steps,
      previews: this.previews,
    };
  }
}
