/**
 * A workflow's parameters as a zod input schema, so every workflow tool advertises real JSON
 * types, descriptions, defaults and constraints (the original left numbers untyped), and bad
 * arguments come back as tool errors the model can correct.
 */
import * as z from "zod/v4";
import type { ParamSpec, Scalar } from "./definition.ts";

/** The transport caps a request at 4 MiB, so inline base64 media must stay well below it. */
export const MAX_INLINE_MEDIA_CHARS = 3_500_000;
const MAX_TEXT = 100_000;

export function paramField(spec: ParamSpec): z.ZodType {
  const field = baseField(spec).describe(describeParam(spec));
  return spec.required ? field : field.optional();
}

/**
 * The parameter's description, plus its default unless the text already gives one. Range and step
 * are not repeated here: the JSON Schema says them (minimum, maximum, multipleOf), and every word
 * goes into every agent's context on every turn. A long default (a model file, a negative prompt)
 * is left to get_defaults and list_models, which show it; the parameter is optional either way.
 */
export function describeParam(spec: ParamSpec): string {
  const text = spec.description.trim();
  if (spec.default === undefined || /\bdefault\b/i.test(text)) return text;
  const shown = JSON.stringify(spec.default);
  return shown.length <= SHORT_DEFAULT ? `${text} Default: ${shown}.` : text;
}

const SHORT_DEFAULT = 24;

function baseField(spec: ParamSpec): z.ZodType {
  if (spec.enum) return enumField(spec.enum);
  switch (spec.type) {
    case "int": {
      let field = z.number().int();
      if (/seed$/.test(spec.name)) field = field.min(spec.min ?? 0).max(spec.max ?? Number.MAX_SAFE_INTEGER);
      else {
        if (spec.min !== undefined) field = field.min(spec.min);
        if (spec.max !== undefined) field = field.max(spec.max);
      }
      if (spec.step !== undefined && Number.isInteger(spec.step)) field = field.multipleOf(spec.step);
      return field;
    }
    case "float": {
      let field = z.number();
      if (spec.min !== undefined) field = field.min(spec.min);
      if (spec.max !== undefined) field = field.max(spec.max);
      return field;
    }
    case "bool":
      return z.boolean();
    case "image":
    case "audio":
    case "video":
      return z
        .string()
        .min(1, `${spec.name} is empty: pass an asset_id, an https URL or base64 data`)
        .max(
          MAX_INLINE_MEDIA_CHARS,
          `${spec.name} is too large to send inline; pass an https URL or an asset_id instead`,
        );
    default:
      return spec.required ? z.string().trim().min(1, `${spec.name} is empty`).max(MAX_TEXT) : z.string().max(MAX_TEXT);
  }
}

function enumField(values: Scalar[]): z.ZodType {
  if (values.every((value): value is string => typeof value === "string"))
    return z.enum(values as [string, ...string[]]);
  const literals = values.map((value) => z.literal(value));
  return literals.length === 1
    ? literals[0]!
    : z.union(literals as unknown as [z.ZodLiteral<Scalar>, z.ZodLiteral<Scalar>]);
}
