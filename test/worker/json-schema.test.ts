// The JSON Schemas tools/list sends (src/mcp/json-schema.ts): converted once per schema object and
// written so that single-type dialects (Gemini's OpenAPI subset, the Inspector's --strict check)
// accept them, without changing what they validate.
import { describe, expect, it } from "vitest";
import * as z from "zod/v4";
import { portable, toPortable } from "../../src/mcp/json-schema";

const convert = (schema: object, io: "input" | "output" = "output") =>
  (schema as { "~standard": { jsonSchema: { [k: string]: (o: unknown) => Record<string, unknown> } } })["~standard"]
    .jsonSchema[io]!({ target: "draft-2020-12" });

describe("portable JSON Schema", () => {
  it("splits a nullable type array into anyOf branches, keeping annotations outside and constraints inside", () => {
    const schema = portable(z.object({ name: z.string().max(5).nullable().describe("A name.") }));
    expect(convert(schema, "input")).toEqual({
      type: "object",
      properties: {
        name: { description: "A name.", anyOf: [{ type: "string", maxLength: 5 }, { type: "null" }] },
      },
      required: ["name"],
    });
  });

  it("declares free-form objects as such and drops what says nothing ($schema, safe-integer bounds, string keys)", () => {
    const json = convert(
      portable(
        z.object({ params: z.record(z.string(), z.unknown()), extra: z.looseObject({}), count: z.number().int() }),
      ),
      "input",
    );
    expect(json).not.toHaveProperty("$schema");
    expect(json.properties).toEqual({
      params: { type: "object", additionalProperties: true },
      extra: { type: "object", additionalProperties: true },
      count: { type: "integer" },
    });
  });

  it("an output schema names what a result holds without forbidding more, and `required` only at the top", () => {
    const json = convert(
      portable(z.object({ job: z.object({ id: z.string() }), extra: z.record(z.string(), z.unknown()) })),
    );
    expect(json).toEqual({
      type: "object",
      properties: {
        job: { type: "object", properties: { id: { type: "string" } } },
        extra: { type: "object" },
      },
      required: ["job", "extra"],
    });
  });

  it("keeps real integer bounds and nested nullable items", () => {
    const json = toPortable({
      type: "object",
      properties: {
        steps: { type: "integer", minimum: 1, maximum: 200 },
        tags: { type: "array", items: { type: ["string", "null"] } },
      },
    });
    expect(json.properties).toEqual({
      steps: { type: "integer", minimum: 1, maximum: 200 },
      tags: { type: "array", items: { anyOf: [{ type: "string" }, { type: "null" }] } },
    });
  });

  it("advertises one schema and validates with another (a tool that accepts unknown arguments to report them)", () => {
    const strict = z.object({ steps: z.number() });
    const tolerant = portable(strict.loose(), strict);
    expect(convert(tolerant, "input")).toEqual(convert(portable(z.object({ steps: z.number() })), "input"));
    expect(tolerant.safeParse({ steps: 3, stepz: 4 }).data).toEqual({ steps: 3, stepz: 4 });
  });

  it("converts once per schema object and still validates with zod", () => {
    const schema = portable(z.object({ n: z.number().int().nullable() }));
    const first = convert(schema);
    expect(convert(schema)).toBe(first);
    expect(convert(schema, "input")).not.toBe(first);
    expect(portable(schema)).toBe(schema);
    expect(schema.safeParse({ n: 3 }).success).toBe(true);
    expect(schema.safeParse({ n: "3" }).success).toBe(false);
  });
});
