// Prompt validation, a port of ComfyUI 0.3.64 `execution.validate_prompt` / `validate_inputs`,
// driven by the node schemas recorded in GET_object_info.json (samples/object_info.json).
// Error bodies reproduce POST_prompt__error_*.json byte for byte (see selfcheck.mjs).
import { PyFloat, num, pyRepr, pyStr, pyTypeName, floatRepr } from "./pyjson.mjs";

/** A Python exception raised during validation (becomes exception_during_validation). */
class PyError extends Error {
  /** @param {string} type @param {string} message @param {string[]} traceback */
  constructor(type, message, traceback) {
    super(message);
    this.pyType = type;
    this.traceback = traceback;
  }
}

/** @typedef {{type: string, message: string, details: string, extra_info: object}} ComfyError */
/** @typedef {{errors: ComfyError[], dependent_outputs: string[], class_type: string}} NodeError */
/**
 * @typedef {object} ValidationResult
 * @property {boolean} ok
 * @property {ComfyError | null} error
 * @property {string[]} outputs      output node ids that validated (outputs_to_execute)
 * @property {Record<string, NodeError>} nodeErrors
 */

const isLink = (v) => Array.isArray(v);

/** Python int(): returns the value or throws the ValueError/TypeError text. */
function pyInt(v) {
  v = v instanceof PyFloat ? v.value : v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") {
    if (!Number.isFinite(v))
      throw new Error(
        Number.isNaN(v) ? "cannot convert float NaN to integer" : "cannot convert float infinity to integer",
      );
    return Math.trunc(v);
  }
  if (typeof v === "string") {
    const s = v.trim().replace(/(\d)_(?=\d)/g, "$1");
    if (/^[+-]?\d+$/.test(s)) return Number(s);
    throw new Error(`invalid literal for int() with base 10: ${pyRepr(v)}`);
  }
  throw new Error(`int() argument must be a string, a bytes-like object or a real number, not '${pyTypeName(v)}'`);
}

/** Python float(). */
function pyFloat(v) {
  v = v instanceof PyFloat ? v.value : v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    const s = v.trim().replace(/(\d)_(?=\d)/g, "$1");
    if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) return Number(s);
    if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith("-") ? -Infinity : Infinity;
    if (/^[+-]?nan$/i.test(s)) return NaN;
    throw new Error(`could not convert string to float: ${pyRepr(v)}`);
  }
  throw new Error(`float() argument must be a string or a real number, not '${pyTypeName(v)}'`);
}

/** Python truthiness for bool(). */
const pyBool = (v) =>
  !(
    v === null ||
    v === undefined ||
    v === false ||
    v === 0 ||
    v === "" ||
    (v instanceof PyFloat && v.value === 0) ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === "object" && !(v instanceof PyFloat) && !Array.isArray(v) && Object.keys(v).length === 0)
  );

/** Python `==` for combo membership (1 == 1.0, "1" != 1). */
const pyEq = (a, b) => (typeof num(a) === "number" && typeof num(b) === "number" ? num(a) === num(b) : a === b);

/** `validate_node_input`: exact match, "*" wildcard, or comma-separated union overlap. */
function typesMatch(received, expected) {
  if (received === expected) return true;
  if (typeof received !== "string" || typeof expected !== "string") return false;
  const r = new Set(received.split(",").map((t) => t.trim()));
  const e = new Set(expected.split(",").map((t) => t.trim()));
  if (r.has("*") || e.has("*")) return true;
  for (const t of r) if (!e.has(t)) return false;
  return true;
}

/** Format a number the way Python would print it for this input type (FLOAT → "1.0"). */
const fmtNum = (v, type) => (type === "FLOAT" ? floatRepr(num(v)) : pyStr(num(v)));

/**
 * @param {Record<string, any>} prompt         API-format graph (inputs are converted in place, as ComfyUI does)
 * @param {Record<string, any>} objectInfo     /object_info as served (checkpoint list already patched)
 * @param {{partialTargets?: string[] | null, inputFileExists?: (name: string) => boolean,
 *          keyErrorTraceback?: string[]}} [opts]
 * @returns {ValidationResult}
 */
export function validatePrompt(prompt, objectInfo, opts = {}) {
  const outputs = [];
  for (const [id, node] of Object.entries(prompt)) {
    if (node === null || typeof node !== "object" || !("class_type" in node)) {
      return fail({
        type: "invalid_prompt",
        message: "Cannot execute because a node is missing the class_type property.",
        details: `Node ID '#${id}'`,
        extra_info: {},
      });
    }
    const info = objectInfo[node.class_type];
    if (!info) {
      // 0.3.64 wording [POST_prompt__error_unknown_class.json]; newer servers say missing_node_type.
      return fail({
        type: "invalid_prompt",
        message: `Cannot execute because node ${node.class_type} does not exist.`,
        details: `Node ID '#${id}'`,
        extra_info: {},
      });
    }
    if (info.output_node === true && (!opts.partialTargets || opts.partialTargets.includes(id))) outputs.push(id);
  }
  if (outputs.length === 0) {
    return fail({ type: "prompt_no_outputs", message: "Prompt has no outputs", details: "", extra_info: {} });
  }

  /** @type {Map<string, [boolean, ComfyError[]]>} */
  const validated = new Map();
  const good = [];
  const failedOutputs = [];
  /** @type {Record<string, NodeError>} */
  const nodeErrors = {};

  for (const o of outputs) {
    let valid, reasons;
    try {
      [valid, reasons] = validateInputs(prompt, o, validated, objectInfo, opts);
    } catch (ex) {
      if (!(ex instanceof PyError)) throw ex;
      valid = false;
      reasons = [
        {
          type: "exception_during_validation",
          message: "Exception when validating node",
          details: ex.message,
          extra_info: { exception_type: ex.pyType, traceback: ex.traceback },
        },
      ];
      validated.set(o, [false, reasons]);
    }
    if (valid) {
      good.push(o);
      continue;
    }
    failedOutputs.push([o, reasons]);
    // Nodes that are invalid only because something upstream failed carry no reasons and are not listed.
    for (const [nodeId, [ok, rs]] of validated) {
      if (ok || rs.length === 0) continue;
      nodeErrors[nodeId] ??= { errors: rs, dependent_outputs: [], class_type: prompt[nodeId].class_type };
      nodeErrors[nodeId].dependent_outputs.push(o);
    }
  }

  if (good.length === 0) {
    // details only lists the output nodes' own reasons: "" when the failure is upstream
    // [POST_prompt__error_missing_input.json], filled for the bad-link exception [POST_prompt__error_bad_link.json].
    const details = failedOutputs.flatMap(([, rs]) => rs.map((e) => `${e.message}: ${e.details}`)).join("\n");
    return {
      ok: false,
      error: {
        type: "prompt_outputs_failed_validation",
        message: "Prompt outputs failed validation",
        details,
        extra_info: {},
      },
      outputs: [],
      nodeErrors,
    };
  }
  return { ok: true, error: null, outputs: good, nodeErrors };

  function fail(error) {
    return { ok: false, error, outputs: [], nodeErrors: {} };
  }
}

/**
 * Split an /object_info input spec into [type, extra_info].
 * V1 combo: [["a","b"], {...}] → type is the list; V3 combo: ["COMBO", {options: [...]}].
 */
function inputInfo(spec) {
  return [spec[0], spec[1] ?? {}];
}

function validateInputs(prompt, id, validated, objectInfo, opts) {
  if (validated.has(id)) return validated.get(id);
  const node = prompt[id];
  if (!node.inputs || typeof node.inputs !== "object") {
    throw new PyError("KeyError", "'inputs'", []);
  }
  const inputs = node.inputs;
  const classType = node.class_type;
  const info = objectInfo[classType];
  const spec = { ...(info.input?.required ?? {}), ...(info.input?.optional ?? {}) };
  const required = new Set(Object.keys(info.input?.required ?? {}));
  // LoadImage has VALIDATE_INPUTS(image): the combo check is replaced by "file exists in input/".
  const customValidated = classType === "LoadImage" ? new Set(["image"]) : new Set();

  /** @type {ComfyError[]} */
  const errors = [];
  let valid = true;

  for (const [name, s] of Object.entries(spec)) {
    const [type, extra] = inputInfo(s);
    const config = [type, extra];
    if (!(name in inputs)) {
      if (required.has(name)) {
        errors.push({
          type: "required_input_missing",
          message: "Required input is missing",
          details: name,
          extra_info: { input_name: name },
        });
      }
      continue;
    }
    let val = inputs[name];
    if (isLink(val)) {
      if (val.length !== 2) {
        errors.push({
          type: "bad_linked_input",
          message: "Bad linked input, must be a length-2 list of [node_id, slot_index]",
          details: name,
          extra_info: { input_name: name, input_config: config, received_value: val },
        });
        continue;
      }
      const [from, slot] = val;
      if (typeof from !== "string" || !(from in prompt)) {
        // ComfyUI: `prompt[o_id]['class_type']` raises KeyError [POST_prompt__error_bad_link.json].
        throw new PyError("KeyError", pyRepr(from), opts.keyErrorTraceback ?? []);
      }
      const fromInfo = objectInfo[prompt[from].class_type];
      const outputsOfFrom = fromInfo?.output ?? [];
      if (typeof slot !== "number" || !Number.isInteger(slot)) {
        throw new PyError("TypeError", `tuple indices must be integers or slices, not ${pyTypeName(slot)}`, []);
      }
      const received = outputsOfFrom.at(slot);
      if (received === undefined) throw new PyError("IndexError", "tuple index out of range", []);
      if (!typesMatch(received, type)) {
        errors.push({
          type: "return_type_mismatch",
          message: "Return type mismatch between linked nodes",
          details: `${name}, received_type(${received}) mismatch input_type(${type})`,
          extra_info: { input_name: name, input_config: config, received_type: received, linked_node: val },
        });
        continue;
      }
      try {
        const [upstreamOk] = validateInputs(prompt, from, validated, objectInfo, opts);
        if (!upstreamOk) valid = false;
      } catch (ex) {
        if (!(ex instanceof PyError)) throw ex;
        // An exception inside an upstream node is pinned on that node, as ComfyUI does.
        valid = false;
        validated.set(from, [
          false,
          [
            {
              type: "exception_during_inner_validation",
              message: "Exception when validating inner node",
              details: ex.message,
              extra_info: {
                input_name: name,
                input_config: config,
                exception_message: ex.message,
                exception_type: ex.pyType,
                traceback: ex.traceback,
                linked_node: val,
              },
            },
          ],
        ]);
      }
      continue;
    }

    // Literal widget value: unwrap {"__value__": [...]}, then coerce like ComfyUI (and store it back,
    // which is why history shows "cfg": 8.0 for a submitted 8).
    if (val && typeof val === "object" && !(val instanceof PyFloat) && "__value__" in val) {
      val = val.__value__;
      inputs[name] = val;
    }
    try {
      if (type === "INT") inputs[name] = val = pyInt(val);
      else if (type === "FLOAT") inputs[name] = val = new PyFloat(pyFloat(val));
      else if (type === "STRING") inputs[name] = val = pyStr(val);
      else if (type === "BOOLEAN") inputs[name] = val = pyBool(val);
    } catch (ex) {
      const msg = /** @type {Error} */ (ex).message;
      errors.push({
        type: "invalid_input_type",
        message: `Failed to convert an input value to a ${type} value`,
        details: `${name}, ${pyStr(val)}, ${msg}`,
        extra_info: { input_name: name, input_config: config, received_value: val, exception_message: msg },
      });
      continue;
    }
    if (customValidated.has(name)) {
      const exists = opts.inputFileExists ?? (() => false);
      if (!exists(pyStr(val))) {
        errors.push({
          type: "custom_validation_failed",
          message: "Custom validation failed for node",
          details: `${name} - Invalid image file: ${pyStr(val)}`,
          extra_info: { input_name: name },
        });
      }
      continue;
    }
    if ("min" in extra && typeof num(val) === "number" && num(val) < extra.min) {
      errors.push({
        type: "value_smaller_than_min",
        message: `Value ${fmtNum(val, type)} smaller than min of ${fmtNum(extra.min, type)}`,
        details: name,
        extra_info: { input_name: name, input_config: config, received_value: val },
      });
      continue;
    }
    if ("max" in extra && typeof num(val) === "number" && num(val) > extra.max) {
      errors.push({
        type: "value_bigger_than_max",
        message: `Value ${fmtNum(val, type)} bigger than max of ${fmtNum(extra.max, type)}`,
        details: name,
        extra_info: { input_name: name, input_config: config, received_value: val },
      });
      continue;
    }
    if (Array.isArray(type) || type === "COMBO") {
      const options = Array.isArray(type) ? type : (extra.options ?? []);
      if (!options.some((o) => pyEq(o, val))) {
        // 0.3.64 always lists every option (newer servers summarise lists longer than 20).
        errors.push({
          type: "value_not_in_list",
          message: "Value not in list",
          details: `${name}: '${pyStr(val)}' not in ${pyRepr(options)}`,
          extra_info: { input_name: name, input_config: config, received_value: val },
        });
      }
    }
  }

  const ret = /** @type {[boolean, ComfyError[]]} */ (errors.length > 0 || !valid ? [false, errors] : [true, []]);
  validated.set(id, ret);
  return ret;
}
