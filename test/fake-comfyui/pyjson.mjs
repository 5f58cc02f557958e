// Python-flavoured JSON and repr helpers.
//
// ComfyUI answers with aiohttp's json_response, i.e. Python `json.dumps(obj)` with the default
// separators (", " and ": ") and ensure_ascii=True. Reproducing that byte format keeps our
// Content-Length values equal to the recorded ones (e.g. 85 for the POST_prompt.json answer) and
// lets the self-check compare raw bodies. Python also keeps int vs float apart (`"cfg": 8.0`,
// `"value": 0.0` in progress_state); JavaScript cannot, so floats that must print as floats are
// wrapped in PyFloat.

/** A number that serialises like a Python float (`1` → `1.0`). */
export class PyFloat {
  /** @param {number} value */
  constructor(value) {
    this.value = value;
  }
  valueOf() {
    return this.value;
  }
  toJSON() {
    return this.value;
  }
}

/** @param {unknown} v @returns {number} the plain number behind a PyFloat or number */
export const num = (v) => (v instanceof PyFloat ? v.value : /** @type {number} */ (v));

/** Python float repr for finite numbers (close enough for the values we meet). */
export function floatRepr(n) {
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "Infinity" : "-Infinity";
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return n.toFixed(1);
  return String(n).replace(/e([+-])(\d)$/, "e$10$2"); // 1e-7 → 1e-07 like Python
}

function quote(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += s[i];
  }
  return `${out}"`;
}

/**
 * `json.dumps(value)` as Python would write it.
 * @param {unknown} v
 * @returns {string}
 */
export function pyDumps(v) {
  if (v === null || v === undefined) return "null";
  if (v instanceof PyFloat) return floatRepr(v.value);
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      return Number.isInteger(v) ? String(v) : floatRepr(v);
    case "bigint":
      return String(v);
    case "string":
      return quote(v);
  }
  if (Array.isArray(v)) return `[${v.map(pyDumps).join(", ")}]`;
  // Maps keep insertion order even for numeric-looking keys ("10" after "9"), like Python dicts.
  if (v instanceof Map) return `{${[...v].map(([k, val]) => `${quote(String(k))}: ${pyDumps(val)}`).join(", ")}}`;
  const parts = [];
  for (const [k, val] of Object.entries(/** @type {object} */ (v))) {
    if (val === undefined) continue;
    parts.push(`${quote(k)}: ${pyDumps(val)}`);
  }
  return `{${parts.join(", ")}}`;
}

/** Python `repr()` of a JSON-ish value, used inside validation messages (`['a', 'b']`). */
export function pyRepr(v) {
  if (v === null || v === undefined) return "None";
  if (v instanceof PyFloat) return floatRepr(v.value);
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : floatRepr(v);
  if (typeof v === "string") {
    const q = v.includes("'") && !v.includes('"') ? '"' : "'";
    const body = v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t");
    return q + (q === "'" ? body.replace(/'/g, "\\'") : body) + q;
  }
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(", ")}]`;
  return (
    "{" +
    Object.entries(v)
      .map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`)
      .join(", ") +
    "}"
  );
}

/** Python `str()`: strings stay bare, everything else is repr'd. */
export const pyStr = (v) => (typeof v === "string" ? v : pyRepr(v));

/** Python type name used in TypeError messages (`'NoneType'`, `'dict'`, …). */
export function pyTypeName(v) {
  if (v === null || v === undefined) return "NoneType";
  if (v instanceof PyFloat) return "float";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "string") return "str";
  return Array.isArray(v) ? "list" : "dict";
}
