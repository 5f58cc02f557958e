/**
 * What every tool gets without asking, applied where tools are registered so none can forget it:
 *
 * - Schemas through portable(): one JSON Schema conversion per schema object and isolate (the
 *   SDK converts on every tools/list, and the output schema again after every tool call), written
 *   so strict clients accept it. The server is rebuilt for every request, so tools build their
 *   schemas once (module constants, or per workflow definition) for this to pay.
 * - Unknown arguments are reported, never silently dropped. The SDK validates with zod, which
 *   strips keys a schema does not name: `stepz: 3` would vanish and the job would run with the
 *   default steps. Each tool advertises its strict schema but validates with a loose copy; the
 *   keys it does not take are removed before the tool runs and come back in the result as
 *   `ignored_arguments` (with the closest real argument when one is near).
 */
import type { CallToolResult, McpServer } from "@modelcontextprotocol/server";
import { portable } from "./json-schema";

interface ToolConfig {
  inputSchema?: object;
  outputSchema?: object;
  [key: string]: unknown;
}
type Handler = (...args: unknown[]) => Promise<CallToolResult> | CallToolResult;
type Register = (name: string, config: ToolConfig, handler: Handler) => unknown;

/** A zod object schema, as far as this file needs it. */
interface ObjectSchema {
  shape: Record<string, unknown>;
  loose(): object;
}

const tolerant = new WeakMap<object, object>();

export function withToolConventions(server: McpServer): McpServer {
  const register = server.registerTool.bind(server) as unknown as Register;
  const conventional: Register = (name, config, handler) => {
    const input = config.inputSchema;
    const output = config.outputSchema && portable(config.outputSchema);
    if (!input || !isObjectSchema(input)) {
      return register(
        name,
        { ...config, ...(input && { inputSchema: portable(input) }), outputSchema: output },
        handler,
      );
    }
    const known = Object.keys(input.shape);
    const reporting: Handler = async (args, ...rest) => {
      const { accepted, ignored } = sortArguments(name, known, (args ?? {}) as Record<string, unknown>);
      const result = await handler(accepted, ...rest);
      return ignored ? withIgnored(result, ignored) : result;
    };
    return register(name, { ...config, inputSchema: tolerantInput(input), outputSchema: output }, reporting);
  };
  server.registerTool = conventional as unknown as McpServer["registerTool"];
  return server;
}

/** Validates like `schema` but keeps unknown keys; advertises `schema` itself. Once per schema. */
function tolerantInput(schema: ObjectSchema): object {
  let loose = tolerant.get(schema);
  if (!loose) {
    loose = portable(schema.loose(), schema);
    tolerant.set(schema, loose);
  }
  return loose;
}

function isObjectSchema(schema: object): schema is ObjectSchema {
  const candidate = schema as Partial<ObjectSchema>;
  return typeof candidate.shape === "object" && candidate.shape !== null && typeof candidate.loose === "function";
}

function sortArguments(
  tool: string,
  known: string[],
  args: Record<string, unknown>,
): { accepted: Record<string, unknown>; ignored?: Record<string, string> } {
  const unknown = Object.keys(args).filter((key) => !known.includes(key));
  if (unknown.length === 0) return { accepted: args };
  const accepted = Object.fromEntries(Object.entries(args).filter(([key]) => known.includes(key)));
  const ignored = Object.fromEntries(
    unknown.map((key) => {
      const near = closest(key, known);
      return [key, `not an argument of ${tool}${near ? `; did you mean '${near}'?` : ""}`];
    }),
  );
  return { accepted, ignored };
}

/** The result, with `ignored_arguments` in its structured content and the same JSON as text. */
function withIgnored(result: CallToolResult, ignored: Record<string, string>): CallToolResult {
  const structured = result.structuredContent;
  const [first, ...others] = result.content ?? [];
  if (!result.isError && structured && typeof structured === "object" && !Array.isArray(structured)) {
    const data = { ...structured, ignored_arguments: ignored };
    const text = first?.type === "text" ? [{ type: "text" as const, text: JSON.stringify(data, null, 2) }] : [];
    return {
      ...result,
      structuredContent: data,
      content: [...text, ...(first?.type === "text" ? others : result.content)],
    };
  }
  const note = `Ignored arguments: ${Object.entries(ignored)
    .map(([key, why]) => `'${key}' (${why})`)
    .join(", ")}.`;
  if (first?.type === "text")
    return { ...result, content: [{ ...first, text: `${first.text}\n\n${note}` }, ...others] };
  return { ...result, content: [{ type: "text", text: note }, ...(result.content ?? [])] };
}

/** The nearest known name within two edits of a mistyped one (`stepz` → `steps`), if any. */
function closest(word: string, names: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const name of names) {
    const distance = editDistance(word.toLowerCase(), name.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [name, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}
