/**
 * Converts a workflow saved from ComfyUI's editor (the "UI format": nodes, links, widgets_values,
 * reroutes, primitive and note nodes, bypassed and muted nodes, subgraphs) into the API format
 * ComfyUI's /prompt takes, the way the frontend's graphToPrompt does: widget values are mapped to
 * input names through the backend's live /object_info, links are followed through reroutes,
 * bypassed nodes and subgraph boundaries, and virtual nodes disappear. Pure (no I/O) so that both
 * the Worker and Node build scripts use it; anything it cannot convert faithfully is refused with
 * the node (id, class, title) and the reason, never guessed.
 */
import type { ComfyGraph } from "../comfy/types";

// --- /object_info ------------------------------------------------------------------------------

export type InputSpec = [unknown, Record<string, unknown>?];

export interface NodeSchema {
  input?: { required?: Record<string, InputSpec>; optional?: Record<string, InputSpec> };
  input_order?: { required?: string[]; optional?: string[] };
  output?: unknown[];
  output_name?: string[];
  output_node?: boolean;
  display_name?: string;
}

export type ObjectInfo = Record<string, NodeSchema>;

export interface NamedInput {
  name: string;
  type: unknown;
  options: Record<string, unknown>;
  required: boolean;
}

/** A node's inputs in the order the frontend creates its widgets: required, then optional. */
export function inputsOf(schema: NodeSchema): NamedInput[] {
  const inputs: NamedInput[] = [];
  for (const section of ["required", "optional"] as const) {
    const specs = schema.input?.[section] ?? {};
    const order = schema.input_order?.[section] ?? Object.keys(specs);
    for (const name of order) {
      const spec = specs[name];
      if (spec) inputs.push({ name, type: spec[0], options: spec[1] ?? {}, required: section === "required" });
    }
  }
  return inputs;
}

const VALUE_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

/** Inputs the frontend draws as a widget (and so saves in widgets_values), not as a socket. */
export function isWidgetInput(input: Pick<NamedInput, "type" | "options">): boolean {
  if (input.options.forceInput === true) return false;
  return Array.isArray(input.type) || (typeof input.type === "string" && VALUE_TYPES.has(input.type));
}

/** Widgets that only work inside the browser page (camera, microphone, 3D viewport). */
const BROWSER_ONLY_TYPES = new Set(["WEBCAM", "AUDIO_RECORD", "LOAD_3D", "LOAD_3D_ANIMATION"]);

/** Options that make the frontend add an upload button (and for audio a player) after the combo. */
export const UPLOAD_OPTIONS = ["image_upload", "audio_upload", "video_upload", "file_upload"] as const;

const CONTROL_VALUES = new Set(["fixed", "increment", "decrement", "randomize"]);

/** Nodes to which the frontend appends an audio player widget, saved after the real widgets. */
const AUDIO_PLAYER_NODES = new Set(["SaveAudio", "SaveAudioMP3", "SaveAudioOpus", "PreviewAudio"]);

/**
 * LiteGraph's type compatibility: empty and "*" match anything, otherwise the comma-separated
 * lists must share a type (case-insensitive).
 */
export function typesCompatible(a: unknown, b: unknown): boolean {
  if (!a || !b || a === "*" || b === "*" || a === b) return true;
  if (typeof a !== "string" || typeof b !== "string") return false;
  const left = a.toLowerCase().split(",");
  const right = new Set(b.toLowerCase().split(","));
  return left.some((type) => right.has(type) || type === "*");
}

// --- the two formats -----------------------------------------------------------------------------

/** "ui" or "api", or why the JSON is neither; never a silent guess. */
export function detectFormat(json: unknown): "ui" | "api" | { problem: string } {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    return { problem: "not a JSON object: expected a ComfyUI workflow (UI or API format)" };
  const record = json as Record<string, unknown>;
  if ("nodes" in record || "links" in record) {
    if (Array.isArray(record.nodes) && Array.isArray(record.links)) return "ui";
    return { problem: "looks like a UI-format workflow, but 'nodes' and 'links' are not both lists" };
  }
  const entries = Object.entries(record);
  if (entries.length === 0) return { problem: "the workflow is empty" };
  for (const [id, node] of entries) {
    const candidate = node as Record<string, unknown> | null;
    if (typeof candidate !== "object" || candidate === null || typeof candidate.class_type !== "string")
      return {
        problem: `neither format: '${id}' is not an API-format node {class_type, inputs}, and there are no nodes/links lists of a UI-format workflow`,
      };
    if (typeof candidate.inputs !== "object" || candidate.inputs === null || Array.isArray(candidate.inputs))
      return { problem: `API-format node '${id}' (${candidate.class_type}) has no inputs object` };
  }
  return "api";
}

interface UiSlot {
  name: string;
  type?: unknown;
  link?: number | null;
  links?: number[] | null;
  widget?: { name: string };
}

interface UiNode {
  id: number | string;
  type: string;
  title?: string;
  mode?: number;
  inputs?: UiSlot[];
  outputs?: UiSlot[];
  widgets_values?: unknown[] | Record<string, unknown>;
}

interface UiLink {
  id: number;
  origin_id: number | string;
  origin_slot: number;
  target_id: number | string;
  target_slot: number;
  type?: unknown;
}

interface SubgraphDefinition {
  id: string;
  name?: string;
  nodes: UiNode[];
  links: unknown[];
  inputs?: UiSlot[];
  outputs?: UiSlot[];
  definitions?: { subgraphs?: SubgraphDefinition[] };
}

export interface NodeRefusal {
  node_id: string;
  class_type: string;
  title?: string;
  reason: string;
}

export type ConversionResult =
  | { ok: true; graph: ComfyGraph; notes: string[] }
  | { ok: false; problem: string; refusals: NodeRefusal[] };

const MODE_MUTED = 2;
const MODE_BYPASSED = 4;
/** Ids of a subgraph's own input and output boundary nodes inside its links. */
const SUBGRAPH_INPUT_NODE = -10;
const SUBGRAPH_OUTPUT_NODE = -20;
/** Frontend-only nodes: never sent to the backend. */
const NOTE_TYPES = new Set(["Note", "MarkdownNote"]);
const MAX_SUBGRAPH_DEPTH = 16;

/** One graph level: the root workflow, or one subgraph instance's definition. */
interface Scope {
  nodes: Map<string, UiNode>;
  links: Map<number, UiLink>;
  /** Execution-id prefix: the ids of the subgraph instances from the root down to this level. */
  path: string[];
  parent?: { scope: Scope; instance: UiNode; definition: SubgraphDefinition; widgetValues: InstanceValues };
}

/** A subgraph instance's promoted widget inputs, and the values it saved for them. */
interface InstanceValues {
  saved: Map<string, unknown>;
  promoted: ReadonlySet<string>;
}

/** A link's source after resolution: a node output, a literal value, or nothing at all. */
type Source =
  | { kind: "output"; id: string; slot: number }
  | { kind: "value"; value: unknown }
  | { kind: "removed" }
  /** A promoted widget the subgraph instance saved no value for: the inner widget's own value stands. */
  | { kind: "own" }
  | undefined;

export function convertUiWorkflow(ui: unknown, objectInfo: ObjectInfo): ConversionResult {
  const format = detectFormat(ui);
  if (format !== "ui")
    return refuse(typeof format === "string" ? "this is already an API-format workflow" : format.problem, []);
  const workflow = ui as { nodes: UiNode[]; links: unknown[]; definitions?: { subgraphs?: SubgraphDefinition[] } };
  const definitions = new Map<string, SubgraphDefinition>();
  collectDefinitions(workflow.definitions?.subgraphs, definitions);

  const converter = new Converter(objectInfo, definitions);
  const root: Scope = { nodes: indexNodes(workflow.nodes), links: indexLinks(workflow.links), path: [] };
  converter.convertScope(root, 0);
  return converter.finish();
}

class Converter {
  readonly graph: ComfyGraph = {};
  readonly notes: string[] = [];
  readonly refusals: NodeRefusal[] = [];
  /** Inputs that lost their link because the source was muted or a bypass found no match. */
  readonly droppedLinks = new Map<string, Set<string>>();
  readonly instances = new Map<string, InstanceValues | undefined>();

  readonly objectInfo: ObjectInfo;
  readonly definitions: Map<string, SubgraphDefinition>;

  constructor(objectInfo: ObjectInfo, definitions: Map<string, SubgraphDefinition>) {
    this.objectInfo = objectInfo;
    this.definitions = definitions;
  }

  convertScope(scope: Scope, depth: number): void {
    for (const node of scope.nodes.values()) {
      const id = executionId(scope, node);
      if (!Array.isArray(node.inputs ?? []) || typeof node.type !== "string") {
        this.refuseNode(id, node, "is not a valid UI node (no type or inputs list)");
        continue;
      }
      if (node.mode === MODE_MUTED || node.mode === MODE_BYPASSED || isVirtual(node)) continue;
      const definition = this.definitions.get(node.type);
      if (definition) {
        if (depth >= MAX_SUBGRAPH_DEPTH) {
          this.refuseNode(
            id,
            node,
            `subgraphs are nested more than ${MAX_SUBGRAPH_DEPTH} deep (a subgraph inside itself?)`,
          );
          continue;
        }
        const widgetValues = this.instanceWidgetValues(id, node, definition);
        if (!widgetValues) continue;
        this.convertScope(
          {
            nodes: indexNodes(definition.nodes),
            links: indexLinks(definition.links),
            path: [...scope.path, String(node.id)],
            parent: { scope, instance: node, definition, widgetValues },
          },
          depth + 1,
        );
        continue;
      }
      if (node.type.startsWith("workflow>") || node.type.startsWith("workflow/")) {
        this.refuseNode(
          id,
          node,
          "is a legacy group node; in ComfyUI convert it to a subgraph (or ungroup it) and save the workflow again",
        );
        continue;
      }
      this.convertNode(scope, node, id);
    }
  }

  convertNode(scope: Scope, node: UiNode, id: string): void {
    const schema = this.objectInfo[node.type];
    if (!schema) {
      this.refuseNode(
        id,
        node,
        `class '${node.type}' does not exist on this backend (a custom node, or a newer ComfyUI)`,
      );
      return;
    }
    const inputs = inputsOf(schema);
    const browserOnly = inputs.find((input) => typeof input.type === "string" && BROWSER_ONLY_TYPES.has(input.type));
    if (browserOnly) {
      this.refuseNode(
        id,
        node,
        `its input '${browserOnly.name}' (${browserOnly.type}) only works inside the ComfyUI page`,
      );
      return;
    }
    const values = this.widgetValues(id, node, inputs);
    if (!values) return;
    const known = new Set(inputs.map((input) => input.name));
    for (const slot of node.inputs ?? []) {
      if (slot.link === null || slot.link === undefined) continue;
      const name = slot.widget?.name ?? slot.name;
      if (!known.has(name)) {
        this.notes.push(
          `${describe(id, node)}: input '${name}' is not an input of ${node.type} here; its link was left out`,
        );
        continue;
      }
      let source: Source;
      try {
        source = this.resolveLink(scope, slot.link, slot.type, new Set());
      } catch (error) {
        if (!(error instanceof ConversionError)) throw error;
        this.refuseNode(id, node, `input '${name}': ${error.message}`);
        return;
      }
      if (source?.kind === "own") continue;
      if (source === undefined || source.kind === "removed") {
        // As the frontend: an input fed by a muted node, or by a bypass that cannot pass it on, is sent absent.
        delete values[name];
        if (!this.droppedLinks.has(id)) this.droppedLinks.set(id, new Set());
        this.droppedLinks.get(id)!.add(name);
      } else if (source.kind === "value") values[name] = wrapArray(source.value);
      else values[name] = [source.id, source.slot];
    }
    this.graph[id] = {
      class_type: node.type,
      inputs: values,
      _meta: { title: node.title ?? schema.display_name ?? node.type },
    };
  }

  /**
   * widgets_values → input names. The frontend saves one value per widget in the order of the
   * node's inputs, plus extra values it added itself: the "control after generate" mode after a
   * seed, and the upload button (and audio player) after a media combo. Linked widget inputs keep
   * their saved value too; the link overrides it later.
   */
  widgetValues(id: string, node: UiNode, inputs: NamedInput[]): Record<string, unknown> | undefined {
    const widgets = inputs.filter(isWidgetInput);
    const saved = node.widgets_values ?? [];
    const values: Record<string, unknown> = {};
    if (!Array.isArray(saved)) {
      // Some nodes save a name → value object instead of a list.
      for (const widget of widgets) if (widget.name in saved) values[widget.name] = wrapArray(saved[widget.name]);
      return values;
    }
    let position = 0;
    const defaulted: string[] = [];
    widgets.forEach((widget, index) => {
      if (position < saved.length) values[widget.name] = wrapArray(saved[position++]);
      else {
        const fallback = defaultOf(widget);
        if (fallback !== undefined) values[widget.name] = fallback;
        defaulted.push(widget.name);
      }
      const remaining = widgets.length - index - 1;
      if (hasControlWidget(widget) && isControlValue(saved[position], saved.length - position > remaining)) position++;
      if (UPLOAD_OPTIONS.some((option) => widget.options[option] === true)) {
        const later = widgets.slice(index + 1);
        const needed = later.length + later.filter(hasControlWidget).length;
        position = Math.max(position, saved.length - needed);
      }
    });
    if (AUDIO_PLAYER_NODES.has(node.type)) position = saved.length;
    if (position < saved.length) {
      this.refuseNode(
        id,
        node,
        `has ${saved.length} saved widget values but ${node.type} on this backend has ${widgets.length} widgets (${widgets.map((w) => w.name).join(", ") || "none"}): the node was saved from a different version`,
      );
      return undefined;
    }
    if (defaulted.length > 0)
      this.notes.push(
        `${describe(id, node)}: no saved value for ${defaulted.join(", ")} (newer inputs than the saved workflow); the backend's defaults are used`,
      );
    return values;
  }

  /** Each instance's values are read (and a mismatch refused) once, however often it is crossed. */
  instanceWidgetValues(id: string, instance: UiNode, definition: SubgraphDefinition): InstanceValues | undefined {
    if (!this.instances.has(id)) this.instances.set(id, this.subgraphWidgetValues(id, instance, definition));
    return this.instances.get(id);
  }

  /**
   * A subgraph instance saves one widget value per subgraph input that feeds an inner widget
   * (a promoted widget), in the order of the subgraph's inputs. As the frontend, a saved value
   * overrides the inner widget's and a missing one leaves it (current templates save none: the
   * values live in the inner nodes); a seed's extra "control after generate" value is skipped.
   */
  subgraphWidgetValues(id: string, instance: UiNode, definition: SubgraphDefinition): InstanceValues | undefined {
    const inner = indexNodes(definition.nodes);
    const links = indexLinks(definition.links);
    const promoted = (definition.inputs ?? []).filter((_input, slot) =>
      [...links.values()].some(
        (link) =>
          Number(link.origin_id) === SUBGRAPH_INPUT_NODE &&
          link.origin_slot === slot &&
          inner.get(String(link.target_id))?.inputs?.[link.target_slot]?.widget !== undefined,
      ),
    );
    let saved = Array.isArray(instance.widgets_values) ? instance.widgets_values : [];
    if (saved.length > promoted.length)
      saved = saved.filter((value, index) => !(isControlValue(value, false) && typeof saved[index - 1] === "number"));
    if (saved.length > promoted.length) {
      this.refuseNode(
        id,
        instance,
        `subgraph '${definition.name ?? definition.id}' has ${promoted.length} widget inputs (${promoted.map((p) => p.name).join(", ") || "none"}) but the instance saved ${saved.length} values`,
      );
      return undefined;
    }
    return {
      saved: new Map(promoted.slice(0, saved.length).map((input, index) => [input.name, saved[index]])),
      promoted: new Set(promoted.map((input) => input.name)),
    };
  }

  /** Follows a link to the output that really produces the value (frontend's resolveInput). */
  resolveLink(scope: Scope, linkId: number, type: unknown, visited: Set<string>): Source {
    const key = `${scope.path.join(":")}|L${linkId}`;
    if (visited.has(key)) throw new ConversionError(`link ${linkId} is part of a cycle`);
    visited.add(key);
    const link = scope.links.get(linkId);
    if (!link) throw new ConversionError(`link ${linkId} is used by a node but missing from the links list`);
    if (Number(link.origin_id) === SUBGRAPH_INPUT_NODE && scope.parent) {
      const { parent } = scope;
      const input = parent.definition.inputs?.[link.origin_slot];
      if (!input) throw new ConversionError(`link ${linkId} comes from a missing subgraph input ${link.origin_slot}`);
      const outer = parent.instance.inputs?.find((slot) => slot.name === input.name);
      if (outer?.link !== null && outer?.link !== undefined)
        return this.resolveLink(parent.scope, outer.link, type, visited);
      const { saved, promoted } = parent.widgetValues;
      if (saved.has(input.name)) return { kind: "value", value: saved.get(input.name) };
      return promoted.has(input.name) ? { kind: "own" } : undefined;
    }
    const origin = scope.nodes.get(String(link.origin_id));
    if (!origin) throw new ConversionError(`link ${linkId} comes from node ${link.origin_id}, which does not exist`);
    return this.resolveOutput(scope, origin, link.origin_slot, type, visited);
  }

  resolveOutput(scope: Scope, node: UiNode, slot: number, type: unknown, visited: Set<string>): Source {
    if (node.mode === MODE_BYPASSED) {
      const index = bypassInput(node, slot, type);
      const link = index === -1 ? undefined : node.inputs?.[index]?.link;
      if (link === null || link === undefined) return undefined;
      return this.resolveLink(scope, link, type, visited);
    }
    if (node.mode === MODE_MUTED) return { kind: "removed" };
    if (node.type === "PrimitiveNode") {
      // The frontend copies the primitive's value into every widget it feeds before queueing.
      const saved = node.widgets_values;
      return { kind: "value", value: Array.isArray(saved) ? saved[0] : undefined };
    }
    if (node.type === "Reroute") {
      const link = node.inputs?.[0]?.link;
      return link === null || link === undefined ? undefined : this.resolveLink(scope, link, type, visited);
    }
    const definition = this.definitions.get(node.type);
    if (definition) {
      const inner: Scope = {
        nodes: indexNodes(definition.nodes),
        links: indexLinks(definition.links),
        path: [...scope.path, String(node.id)],
        parent: {
          scope,
          instance: node,
          definition,
          widgetValues: this.instanceWidgetValues(executionId(scope, node), node, definition) ?? {
            saved: new Map(),
            promoted: new Set(),
          },
        },
      };
      const exit = [...inner.links.values()].find(
        (link) => Number(link.target_id) === SUBGRAPH_OUTPUT_NODE && link.target_slot === slot,
      );
      return exit ? this.resolveLink(inner, exit.id, type, visited) : undefined;
    }
    return { kind: "output", id: executionId(scope, node), slot };
  }

  refuseNode(id: string, node: UiNode, reason: string): void {
    this.refusals.push({
      node_id: id,
      class_type: String(node.type),
      ...(node.title !== undefined && { title: node.title }),
      reason,
    });
  }

  finish(): ConversionResult {
    if (this.refusals.length > 0)
      return refuse(
        this.refusals
          .map((r) => `node ${r.node_id} (${r.class_type}${r.title ? `, "${r.title}"` : ""}) ${r.reason}`)
          .join("; "),
        this.refusals,
      );
    this.dropDeadBranches();
    const outputs = Object.values(this.graph).filter((node) => this.objectInfo[node.class_type]?.output_node === true);
    if (outputs.length === 0)
      return refuse("no output node is left to run (every save/preview node is muted, bypassed or missing)", []);
    return { ok: true, graph: this.graph, notes: this.notes };
  }

  /**
   * The frontend sends a node whose required input was fed by a muted node without that input,
   * and ComfyUI then fails every output behind it. We leave such a branch out instead, so that
   * the rest of the workflow runs, and say so.
   */
  dropDeadBranches(): void {
    for (let changed = true; changed; ) {
      changed = false;
      for (const [id, node] of Object.entries(this.graph)) {
        const required = new Set(Object.keys(this.objectInfo[node.class_type]?.input?.required ?? {}));
        const lost = [...required].filter((name) => this.droppedLinks.get(id)?.has(name) && !(name in node.inputs));
        for (const [name, value] of Object.entries(node.inputs)) {
          if (!Array.isArray(value) || value.length !== 2 || String(value[0]) in this.graph) continue;
          // An optional input fed by a left-out node is simply absent, as the frontend sends it.
          if (required.has(name)) lost.push(name);
          else delete node.inputs[name];
        }
        if (lost.length === 0) continue;
        delete this.graph[id];
        changed = true;
        this.notes.push(
          `node ${id} (${node.class_type}) was left out: its input ${lost.join(", ")} comes from a muted, bypassed or left-out node`,
        );
      }
    }
  }
}

class ConversionError extends Error {}

/** The frontend's choice of input for a bypassed output: same slot if compatible, else by type. */
function bypassInput(node: UiNode, slot: number, type: unknown): number {
  const inputs = node.inputs ?? [];
  const outputType = node.outputs?.[slot]?.type;
  if (type === "*" || type === "" || type === undefined) return inputs.length > slot ? slot : 0;
  const same = inputs[slot];
  if (same && typesCompatible(same.type, outputType) && typesCompatible(same.type, type)) return slot;
  const exact = inputs.findIndex((input) => input.type === type);
  if (exact !== -1) return exact;
  return inputs.findIndex((input) => typesCompatible(input.type, outputType) && typesCompatible(input.type, type));
}

function isVirtual(node: UiNode): boolean {
  return NOTE_TYPES.has(node.type) || node.type === "PrimitiveNode" || node.type === "Reroute";
}

function hasControlWidget(widget: NamedInput): boolean {
  if (widget.options.control_after_generate === true) return true;
  // Older backends did not flag seeds; the frontend added the control to them by name.
  return widget.type === "INT" && (widget.name === "seed" || widget.name === "noise_seed");
}

/**
 * The saved "control after generate" mode; very old workflows saved a boolean "random seed"
 * toggle there instead, recognised only when there is a value to spare for it.
 */
function isControlValue(value: unknown, surplus: boolean): boolean {
  return (typeof value === "string" && CONTROL_VALUES.has(value)) || (typeof value === "boolean" && surplus);
}

/** What a fresh widget of this input holds: its default, or a combo's first option. */
function defaultOf(input: NamedInput): unknown {
  if (input.options.default !== undefined) return input.options.default;
  if (Array.isArray(input.type)) return input.type[0];
  if (Array.isArray(input.options.options)) return input.options.options[0];
  return undefined;
}

/** Lists are reserved for links in the API format; the frontend boxes list values. */
function wrapArray(value: unknown): unknown {
  return Array.isArray(value) ? { __value__: value } : value;
}

function executionId(scope: Scope, node: UiNode): string {
  return [...scope.path, String(node.id)].join(":");
}

function describe(id: string, node: UiNode): string {
  return `node ${id} (${node.type}${node.title ? `, "${node.title}"` : ""})`;
}

function indexNodes(nodes: unknown): Map<string, UiNode> {
  const map = new Map<string, UiNode>();
  for (const node of Array.isArray(nodes) ? nodes : [])
    if (typeof node === "object" && node !== null) map.set(String((node as UiNode).id), node as UiNode);
  return map;
}

/** Root links are `[id, from, from_slot, to, to_slot, type]`; subgraph (and newer) links are objects. */
function indexLinks(links: unknown): Map<number, UiLink> {
  const map = new Map<number, UiLink>();
  for (const link of Array.isArray(links) ? links : []) {
    if (Array.isArray(link)) {
      const [id, origin_id, origin_slot, target_id, target_slot, type] = link as [
        number,
        number,
        number,
        number,
        number,
        unknown,
      ];
      map.set(Number(id), { id: Number(id), origin_id, origin_slot, target_id, target_slot, type });
    } else if (typeof link === "object" && link !== null) map.set(Number((link as UiLink).id), link as UiLink);
  }
  return map;
}

function collectDefinitions(list: SubgraphDefinition[] | undefined, into: Map<string, SubgraphDefinition>): void {
  for (const definition of list ?? []) {
    if (typeof definition?.id !== "string" || into.has(definition.id)) continue;
    into.set(definition.id, definition);
    collectDefinitions(definition.definitions?.subgraphs, into);
  }
}

function refuse(problem: string, refusals: NodeRefusal[]): ConversionResult {
  return { ok: false, problem, refusals };
}
