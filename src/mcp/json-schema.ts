/**
 * The JSON Schemas tools/list sends, made once and made portable.
 *
 * Once: the SDK converts every tool's zod schemas to JSON Schema on every tools/list, and the
 * output schema again on every tools/call (after the tool has finished, so on the path of every
 * result). Our server is rebuilt per request (stateless), so nothing the SDK memoises survives.
 * `portable(schema)` gives a zod schema a `~standard.jsonSchema` that converts once per schema
 * object per isolate; schemas that are module constants (or cached per workflow) then cost one
 * conversion per isolate instead of one per request.
 *
 * Portable: zod writes a nullable field as `type: ["string", "null"]`, and a value of any type as
 * `{}`; both are legal JSON Schema that single-type dialects (Gemini's OpenAPI subset, strict
 * validators) reject or misread. Nullable types become `anyOf` branches with one type each, and a
 * free-form object's `additionalProperties: {}` becomes `true`. What says nothing is dropped, since
 * its bytes would go into every agent's context on every turn: the `$schema` line (2020-12 is
 * MCP's default), zod's safe-integer bounds on every integer, `multipleOf: 1` on an integer, a
 * `maxLength` of 10,000 or more (a guard the server enforces, not guidance),
 * `propertyNames: {type: "string"}` (JSON keys are strings), empty `properties`.
 */

type Json = Record<string, unknown>;
type Converter = (options?: unknown) => Json;
interface StandardJsonSchema {
  "~standard": { jsonSchema?: { input: Converter; output: Converter } } & Record<string, unknown>;
}

/** Keywords that describe a value rather than constrain it: they stay outside `anyOf`. */
const ANNOTATIONS = new Set(["title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"]);

const converted = new WeakSet<object>();
const LARGE_LENGTH = 10_000;

/**
 * `advertised`: the schema whose JSON Schema clients see, when it differs from the one that
 * validates (a tool may accept more than it advertises, to report unknown arguments instead of
 * silently dropping them).
 */
export function portable<T extends object>(schema: T, advertised: object = schema): T {
  if (converted.has(schema)) return schema;
  const standard = (schema as unknown as StandardJsonSchema)["~standard"];
  const convert = (advertised as unknown as StandardJsonSchema)["~standard"].jsonSchema;
  if (!convert) throw new Error("portable() needs a schema that implements StandardJSONSchemaV1 (zod >= 4.2)");
  const memo = new Map<string, Json>();
  const once =
    (io: "input" | "output"): Converter =>
    (options) => {
      const key = `${io}|${JSON.stringify(options ?? null)}`;
      let json = memo.get(key);
      if (!json) {
        json = toPortable(convert[io](options), io);
        memo.set(key, json);
      }
      return json;
    };
  // zod keeps `~standard` as an own property once read; replacing it keeps `validate` and `vendor`.
  (schema as unknown as StandardJsonSchema)["~standard"] = {
    ...standard,
    jsonSchema: { input: once("input"), output: once("output") },
  };
  converted.add(schema);
  return schema;
}

/**
 * Rewrites a converted schema (a fresh object from the converter) into the portable spelling. An
 * output schema also loses `additionalProperties`: a result may carry more than its schema names
 * (`ignored_arguments`, fields added later), and a client has no use for being told it may not.
 */
export function toPortable(schema: Json, io: "input" | "output" = "input"): Json {
  const { $schema: _ignored, ...rest } = schema;
  return rewrite(rest, io, 0) as Json;
}

function rewrite(node: unknown, io: "input" | "output", depth: number): unknown {
  if (Array.isArray(node)) return node.map((item) => rewrite(item, io, depth));
  if (typeof node !== "object" || node === null) return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) {
    if (saysNothing(key, value) || (io === "output" && droppedFromResults(key, depth))) continue;
    if (key === "additionalProperties" && isEmptySchema(value)) out[key] = true;
    else if (key === "properties" || key === "$defs" || key === "patternProperties")
      out[key] = Object.fromEntries(
        Object.entries(value as Json).map(([name, sub]) => [name, rewrite(sub, io, depth + 1)]),
      );
    else out[key] = rewrite(value, io, depth);
  }
  if (out.type === "integer" && out.multipleOf === 1) delete out.multipleOf; // the type says it
  // A length cap this large only guards the server (which still enforces it); it guides no one.
  if (typeof out.maxLength === "number" && out.maxLength >= LARGE_LENGTH) delete out.maxLength;
  return Array.isArray(out.type) ? splitTypes(out) : out;
}

/** `{type: ["string", "null"], maxLength: 5, description}` → `{description, anyOf: [{type: "string", maxLength: 5}, {type: "null"}]}`. */
function splitTypes(node: Json): Json {
  const types = node.type as string[];
  if (types.length === 1) return { ...node, type: types[0] };
  const outer: Json = {};
  const constraints: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "type") continue;
    if (ANNOTATIONS.has(key)) outer[key] = value;
    else constraints[key] = value;
  }
  const branches = types.map((type) => (type === "null" ? { type } : { type, ...constraints }));
  return { ...outer, anyOf: branches };
}

/**
 * In an output schema: `additionalProperties` everywhere (see toPortable), and `required` below the
 * top level: the top level says which fields a result always has; inside them, which nested
 * fields are present is detail the descriptions carry more cheaply.
 */
function droppedFromResults(key: string, depth: number): boolean {
  return key === "additionalProperties" || (key === "required" && depth > 0);
}

function saysNothing(key: string, value: unknown): boolean {
  if (key === "minimum") return value === Number.MIN_SAFE_INTEGER;
  if (key === "maximum") return value === Number.MAX_SAFE_INTEGER;
  if (key === "propertyNames") return JSON.stringify(value) === '{"type":"string"}';
  if (key === "properties") return isEmptySchema(value);
  return false;
}

function isEmptySchema(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0;
}
