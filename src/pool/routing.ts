/**
 * Choosing a backend for a job, as a pure function of what the coordinator knows, so every rule
 * is testable without a network: only `up` backends; hard requirements (node classes, models and
 * combo values the caller or the workflow fixed) must hold; defaults that only some backend has
 * and the workflow's tags are preferences; then the lowest queue per unit of weight wins, ties
 * going to the backend chosen least recently so equal machines take turns.
 */
import type { ComfyGraph } from "../comfy/types";

/** One thing a graph needs from a backend: a node class, or a value of one of its combo inputs. */
export interface Requirement {
  class_type: string;
  input?: string;
  value?: string;
  /** A default the gateway may swap for an installed one: missing it only lowers a backend's rank. */
  soft?: boolean;
}

export interface RouteRequest {
  requirements: Requirement[];
  /** Tags the workflow prefers (e.g. `video`); backends carrying all of them are tried first. */
  tags?: string[];
  /** A backend the caller insists on. */
  pin?: string;
  /** A backend to use when it qualifies (where the input asset or the original job lives). */
  prefer?: string;
  /** Backends not to use (the one that just went down). */
  exclude?: string[];
}

export interface Candidate {
  name: string;
  state: "up" | "down" | "unknown";
  weight: number;
  tags: string[];
  /** Queued + running prompts, plus jobs routed here that ComfyUI has not reported yet. */
  load: number;
  lastChosenAt: number;
  /** What this backend lacks among the hard requirements; undefined = capabilities unknown. */
  missing: string[] | undefined;
  softMissing: number;
  lastError: string | null;
}

export type RouteDecision =
  | { ok: true; backend: string; reason: string }
  | { ok: false; kind: "unknown_backend" | "backend_down" | "no_backend"; message: string };

export function chooseBackend(candidates: Candidate[], request: RouteRequest): RouteDecision {
  const names = candidates.map((c) => c.name).join(", ");
  if (request.pin !== undefined) {
    const pinned = candidates.find((c) => c.name === request.pin);
    if (!pinned)
      return {
        ok: false,
        kind: "unknown_backend",
        message: `There is no backend named '${request.pin}'. Backends: ${names}. Omit 'backend' to let the gateway choose.`,
      };
    if (pinned.state !== "up") {
      return {
        ok: false,
        kind: "backend_down",
        message: `Backend '${pinned.name}' is down${pinned.lastError ? ` (${pinned.lastError})` : ""}. Omit 'backend' to let the gateway choose another, or retry once it is back (list_backends shows its state).`,
      };
    }
    if (pinned.missing?.length)
      return {
        ok: false,
        kind: "no_backend",
        message: `Backend '${pinned.name}' cannot run this job: it lacks ${describeMissing(pinned.missing)}. Omit 'backend' to let the gateway choose one that can.`,
      };
    return { ok: true, backend: pinned.name, reason: "pinned by the caller" };
  }
  const excluded = new Set(request.exclude ?? []);
  const up = candidates.filter((c) => c.state === "up" && !excluded.has(c.name));
  if (up.length === 0) {
    const down = candidates
      .filter((c) => !excluded.has(c.name))
      .map((c) => `${c.name}${c.lastError ? ` (${c.lastError})` : ""}`);
    return {
      ok: false,
      kind: "backend_down",
      message: `No ComfyUI backend is reachable${down.length ? `: ${down.join("; ")}` : ""}. Start ComfyUI (and its tunnel) and retry; list_backends shows each backend's state.`,
    };
  }
  const able = up.filter((c) => !c.missing?.length);
  if (able.length === 0) {
    const lacks = up.map((c) => `'${c.name}' lacks ${describeMissing(c.missing ?? [])}`).join("; ");
    return {
      ok: false,
      kind: "no_backend",
      message: `No reachable backend can run this job: ${lacks}. Install what is missing (list_models shows each backend's models) or pass values a backend has.`,
    };
  }
  const preferred = request.prefer !== undefined ? able.find((c) => c.name === request.prefer) : undefined;
  if (preferred && preferred.softMissing === 0)
    return { ok: true, backend: preferred.name, reason: "where its input lives" };
  const tags = request.tags ?? [];
  const hasTags = (c: Candidate) => tags.every((t) => c.tags.includes(t));
  // Rank: has every default value (else the gateway would swap a model), then carries the
  // workflow's tags, then the shortest queue for its weight, then whoever waited longest.
  const rank = (c: Candidate) => [
    c.softMissing > 0 || c.missing === undefined ? 1 : 0,
    hasTags(c) ? 0 : 1,
    score(c),
    c.lastChosenAt,
  ];
  const pick = [...able].sort((a, b) => compare(rank(a), rank(b)))[0]!;
  const reason = `${tags.length > 0 && hasTags(pick) ? `tagged ${tags.join(", ")}; ` : ""}shortest queue for its weight (${pick.load} queued, weight ${pick.weight})`;
  return { ok: true, backend: pick.name, reason };
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function score(candidate: Candidate): number {
  return (candidate.load + 1) / candidate.weight;
}

function describeMissing(missing: string[]): string {
  return missing.slice(0, 5).join(", ") + (missing.length > 5 ? ` and ${missing.length - 5} more` : "");
}

/**
 * What a rendered graph needs: every node class, and every literal string input (a model file, a
 * sampler…), which the coordinator checks only where the backend's `/object_info` declares a combo.
 * `skip` holds `node.input` keys the gateway fills per backend (uploaded media); `soft` those whose
 * value is a default the gateway may replace with an installed one.
 */
export function graphRequirements(
  graph: ComfyGraph,
  skip: ReadonlySet<string>,
  soft: ReadonlySet<string>,
): Requirement[] {
  const seen = new Set<string>();
  const out: Requirement[] = [];
  const add = (requirement: Requirement) => {
    const key = JSON.stringify([requirement.class_type, requirement.input, requirement.value]);
    if (seen.has(key)) return;
    seen.add(key);
    out.push(requirement);
  };
  for (const [nodeId, node] of Object.entries(graph)) {
    add({ class_type: node.class_type });
    for (const [input, value] of Object.entries(node.inputs)) {
      const key = `${nodeId}.${input}`;
      if (typeof value !== "string" || skip.has(key)) continue;
      add({ class_type: node.class_type, input, value, ...(soft.has(key) && { soft: true }) });
    }
  }
  return out;
}
