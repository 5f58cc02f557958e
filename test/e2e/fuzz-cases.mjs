// Deterministic generator of malformed and hostile MCP traffic for test/e2e/fuzz.test.mjs (issue 7
// item 3). Tool-call cases are derived from each tool's own `inputSchema` (tools/list): wrong
// types, boundary and out-of-range numbers, huge and unicode strings, nulls, unknown fields,
// invalid ids, missing required fields. Envelope cases are malformed JSON-RPC requests.
//
// Generation tools must stay cheap: every case keeps `wait_seconds: 0` unless that field is the
// one being mutated, and `tame()` caps size-like numbers (width, steps, …) that would otherwise
// be valid but large, so a case that happens to be valid submits only a tiny job.

/** mulberry32: small, fast, seeded PRNG. */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

/** Tools whose valid calls submit a ComfyUI job. */
export const GENERATION_TOOLS = new Set([
  "generate_image",
  "generate_song",
  "generate_video",
  "image_to_image",
  "run_workflow",
  "regenerate",
]);

/** Small values for size-like fields: a valid call stays tiny. */
export const CAPS = {
  width: 64,
  height: 64,
  steps: 2,
  length: 5,
  seconds: 2,
  fps: 8,
  wait_seconds: 0,
  max_dim: 64,
  max_b64_chars: 2000,
  max_bytes: 20000,
  batch_size: 1,
  lyrics_strength: 1,
};

/** Deeply nested array, e.g. `[[[[…]]]]` — JSON text, not an object (built lazily in the body). */
const nested = (depth) => JSON.parse("[".repeat(depth) + "]".repeat(depth));
const protoObject = () => JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');

const HOSTILE_STRINGS = [
  "",
  " ",
  "\t\n\r",
  "\u0000",
  "a\u0000b",
  "\uD800",
  "\uDFFF\uD800",
  "\u202Eevil\u202C",
  "\u200B\u200C\u200D\uFEFF",
  "🦊🔥".repeat(500),
  "e\u0301".repeat(2000),
  "𝕏".repeat(300),
  "Ω≈ç√∫˜µ≤≥÷",
  "ｆｕｌｌｗｉｄｔｈ",
  "日本語のプロンプト",
  "../../../../etc/passwd",
  "..\\..\\windows\\win.ini",
  "/etc/shadow",
  "%2e%2e%2f%2e%2e%2f",
  "file:///etc/passwd",
  "http://169.254.169.254/latest/meta-data/",
  "https://127.0.0.1:1/x.png",
  "data:image/png;base64,!!!!",
  "data:,",
  "iVBORw0KGgo=",
  "' OR 1=1 --",
  "'; DROP TABLE assets; --",
  '"}]}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template-injection probe, sent literally
  "${7*7}",
  "{{7*7}}",
  "<script>alert(1)</script>",
  "\r\n\r\nHTTP/1.1 200 OK",
  "null",
  "undefined",
  "NaN",
  "Infinity",
  "-1",
  "1e309",
  "0x10",
  "true",
  "[]",
  "{}",
  "__proto__",
  "constructor",
  "prototype",
  "a".repeat(201),
  "a".repeat(1001),
  "x".repeat(65_537),
];

const HOSTILE_NUMBERS = [
  0,
  -0,
  -1,
  1,
  0.5,
  -0.5,
  1e-300,
  -1e-300,
  2 ** 31,
  -(2 ** 31),
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  2 ** 64,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  123456789.123,
];

const OTHER_TYPES = () => [
  null,
  true,
  false,
  [],
  [1, "a"],
  [null],
  {},
  { a: 1 },
  protoObject(),
  nested(200),
  "",
  "1",
  7,
  -7,
  3.25,
];

/** Fresh objects each time (cases are mutated by tame()). */
const clone = (value) => (value === undefined ? undefined : structuredClone(value));

function validValue(name, schema, ctx) {
  if (schema.enum) return schema.enum[0];
  switch (schema.type) {
    case "string": {
      if (/asset_id/.test(name)) return ctx.assetId;
      if (name === "image") return ctx.assetId;
      if (name === "prompt_id") return ctx.promptId;
      if (name === "workflow_id") return "generate_image";
      if (name === "filename" || name === "target_filename") return "fuzz.webp";
      if (name === "manifest_key") return "fuzz-key";
      return "a small fox";
    }
    case "integer":
    case "number": {
      const min = schema.minimum ?? 0;
      const max = schema.maximum ?? Number.MAX_SAFE_INTEGER;
      let value = Math.min(max, Math.max(min, CAPS[name] ?? min));
      if (schema.multipleOf && value % schema.multipleOf !== 0)
        value = Math.ceil(value / schema.multipleOf) * schema.multipleOf;
      return value;
    }
    case "boolean":
      return false;
    case "object":
      return {};
    case "array":
      return [];
    default:
      return null;
  }
}

/** A valid, cheap base call: required fields, plus wait_seconds 0 where the tool takes it. */
export function baseArgs(tool, ctx) {
  const props = tool.inputSchema?.properties ?? {};
  const args = {};
  for (const name of tool.inputSchema?.required ?? []) args[name] = validValue(name, props[name], ctx);
  if ("wait_seconds" in props) args.wait_seconds = 0;
  for (const name of ["width", "height", "steps", "length", "seconds"])
    if (name in props) args[name] = validValue(name, props[name], ctx);
  if (tool.name === "run_workflow") args.overrides = { prompt: "a fox", width: 64, height: 64, steps: 1 };
  return args;
}

/** Schema-aware hostile values for one property, each labelled. */
function mutationsFor(_name, schema, rng) {
  const out = [];
  const add = (label, value) => out.push({ label, value });
  for (const value of OTHER_TYPES()) {
    const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
    if (
      type === schema.type ||
      (type === "number" && (schema.type === "integer" || schema.type === "number") && Number.isInteger(value))
    )
      continue;
    add(`type:${type}:${JSON.stringify(value)?.slice(0, 20)}`, value);
  }
  if (schema.type === "string") {
    const max = schema.maxLength ?? 100_000;
    add("maxLength+1", "m".repeat(max + 1));
    if (max <= 1000) add("maxLength", "m".repeat(max));
    add("huge-unicode", "字".repeat(Math.min(max + 1, 200_001)));
    if (schema.minLength) add("below-minLength", "");
    for (let i = 0; i < 8; i++) {
      const value = rng.pick(HOSTILE_STRINGS);
      add(`str:${JSON.stringify(value).slice(0, 24)}`, value);
    }
    if (schema.enum) {
      add("enum-upper", String(schema.enum[0]).toUpperCase());
      add("enum-padded", ` ${schema.enum[0]} `);
      add("enum-unknown", "definitely_not_a_kind");
      for (const value of schema.enum) add(`enum:${value}`, value);
    }
  }
  if (schema.type === "integer" || schema.type === "number") {
    const { minimum: min, maximum: max, multipleOf: step } = schema;
    if (min !== undefined) {
      add("min-1", min - 1);
      add("min-0.001", min - 0.001);
      add("min", min);
    }
    if (max !== undefined) {
      add("max+1", max + 1);
      add("max+0.001", max + 0.001);
      add("max", max);
    }
    if (schema.type === "integer") add("fraction", (min ?? 0) + 1.5);
    if (step && step > 1) add("not-multipleOf", (min ?? 0) + step + 1);
    for (let i = 0; i < 6; i++) {
      const value = rng.pick(HOSTILE_NUMBERS);
      add(`num:${value}`, value);
    }
    add("numeric-string", String(min ?? 1));
  }
  if (schema.type === "boolean") {
    add("bool-string", "true");
    add("bool-number", 1);
  }
  if (schema.type === "object") {
    add("key-empty", { "": 1 });
    add("key-long", { ["k".repeat(65)]: 1 });
    add("key-proto", protoObject());
    add("key-unicode", { "🦊\u0000\u202E": "v" });
    add("many-keys", Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])));
    add("nested-deep", { a: nested(500) });
    add("values-hostile", {
      prompt: null,
      steps: -1,
      width: 1e308,
      seed: "x",
      cfg: [],
      model: "../../x.ckpt",
      wait_seconds: 99,
    });
    add("values-wrong", { steps: "twenty", width: 63, height: 8193, denoise: 2, sampler_name: "nope", scheduler: 7 });
    add("values-unknown", { not_a_param: 1, another: "x" });
    add("value-long", { prompt: "p".repeat(1001), model: "m".repeat(1001) });
    add("values-valid-small", { steps: 1, width: 64, height: 64, seed: 1 });
  }
  return out;
}

/** Caps numbers that are in range but expensive; recurses into override objects. */
export function tame(args, schemaProps = {}) {
  if (!args || typeof args !== "object" || Array.isArray(args)) return args;
  for (const [key, value] of Object.entries(args)) {
    if (typeof value === "number" && key in CAPS) {
      const schema = schemaProps[key] ?? {};
      const max = schema.maximum ?? 10_000;
      const min = schema.minimum ?? -Infinity;
      if (value > CAPS[key] && value <= max && value >= min) args[key] = CAPS[key];
    } else if (
      value &&
      typeof value === "object" &&
      !Array.isArray(value) &&
      ["overrides", "param_overrides", "image", "audio", "video", "options"].includes(key)
    ) {
      tame(value);
    }
  }
  return args;
}

const UNKNOWN_FIELDS = () => [
  { label: "unknown-field", extra: { unexpected_field: "x" } },
  { label: "unknown-null", extra: { also_unknown: null } },
  { label: "unknown-proto", extra: protoObject() },
  { label: "unknown-many", extra: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`u${i}`, "v"])) },
  { label: "unknown-huge-value", extra: { blob: "b".repeat(300_000) } },
  { label: "unknown-unicode-key", extra: { "ключ🦊": "значение" } },
];

const INVALID_IDS = [
  "nope",
  "00000000-0000-0000-0000-000000000000",
  "a_1234567890",
  "../" + "x",
  "%00",
  "id with spaces",
  "ID".repeat(100),
  "' OR '1'='1",
  "\u0000",
  "🦊",
  "asset:../../secret",
  "https://example.com/a.png",
  "null",
  "-1",
];

/**
 * Tool-call cases: `{ tool, label, args }` (args may be any JSON value).
 * @param {Array<{name: string, inputSchema: any}>} tools
 * @param {{ assetId: string, promptId: string, seed?: number, randomCount?: number }} ctx
 */
export function toolCases(tools, ctx) {
  const rng = prng(ctx.seed ?? 0xf022);
  const cases = [];
  const push = (tool, label, args) =>
    cases.push({ tool: tool.name, label, args: tame(args, tool.inputSchema?.properties) });
  for (const tool of tools) {
    const props = tool.inputSchema?.properties ?? {};
    const required = tool.inputSchema?.required ?? [];
    const base = () => clone(baseArgs(tool, ctx));
    push(tool, "base", base());
    push(tool, "empty", {});
    for (const name of required) {
      const args = base();
      delete args[name];
      push(tool, `missing:${name}`, args);
    }
    for (const [name, schema] of Object.entries(props)) {
      for (const { label, value } of mutationsFor(name, schema, rng))
        push(tool, `${name}:${label}`, { ...base(), [name]: value });
      if (schema.type === "string" && /(_id|filename)$/.test(name)) {
        for (const id of INVALID_IDS) push(tool, `${name}:bad-id:${id.slice(0, 16)}`, { ...base(), [name]: id });
      }
    }
    for (const { label, extra } of UNKNOWN_FIELDS()) push(tool, label, { ...base(), ...extra });
  }
  // Random multi-field mutations: 2-4 properties at once, plus an unknown field now and then.
  const randomCount = ctx.randomCount ?? 300;
  for (let i = 0; i < randomCount; i++) {
    const tool = rng.pick(tools);
    const props = Object.entries(tool.inputSchema?.properties ?? {});
    const args = clone(baseArgs(tool, ctx));
    const labels = [];
    const n = 1 + rng.int(4);
    for (let j = 0; j < n && props.length; j++) {
      const [name, schema] = rng.pick(props);
      const options = mutationsFor(name, schema, rng);
      if (rng.next() < 0.15) {
        delete args[name];
        labels.push(`-${name}`);
        continue;
      }
      const { label, value } = rng.pick(options);
      args[name] = value;
      labels.push(`${name}:${label}`);
    }
    if (rng.next() < 0.2) {
      args[`x_${rng.int(1000)}`] = rng.pick(OTHER_TYPES());
      labels.push("+unknown");
    }
    push(tool, `random#${i}:${labels.join(",")}`, args);
  }
  return cases;
}

/**
 * Envelope cases: `{ label, body (string|Buffer), headers?, method? }` — malformed JSON-RPC.
 * @param {string[]} toolNames
 */
export function envelopeCases(toolNames, seed = 0xe7e1) {
  const rng = prng(seed);
  const cases = [];
  const raw = (label, body, extra = {}) => cases.push({ label, body, ...extra });
  const json = (label, value, extra = {}) => raw(label, JSON.stringify(value), extra);
  const call = (params, id = 1) => ({ jsonrpc: "2.0", id, method: "tools/call", params });

  // Not JSON at all.
  for (const body of [
    "",
    " ",
    "{",
    "}",
    '{"jsonrpc":',
    "[",
    "nul",
    "{'a':1}",
    '{"a":1,}',
    "{}}",
    '{"id":1}garbage',
    "NaN",
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_assets","arguments":{"limit":NaN}}}',
    '\uFEFF{"jsonrpc":"2.0","id":1,"method":"ping"}',
    "[".repeat(10_000) + "]".repeat(10_000),
    `${" ".repeat(500_000)}{}`,
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_assets","arguments":{"limit":1e999999}}}',
    '"\\ud800"',
    '{"a":"\\u00"}',
  ])
    raw(`bad-json:${JSON.stringify(body.slice(0, 24))}`, body);
  raw("bad-utf8", Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]));
  raw("binary", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) & 0xff)));

  // JSON, but not a request.
  for (const value of [
    null,
    true,
    0,
    -1,
    "str",
    [],
    [1],
    [null],
    {},
    { jsonrpc: "2.0" },
    { id: 1 },
    { method: "ping" },
  ])
    json(`not-request:${JSON.stringify(value)}`, value);
  for (const jsonrpc of [undefined, "1.0", "2", 2, null, "2.0 ", ""])
    json(`jsonrpc:${JSON.stringify(jsonrpc)}`, { jsonrpc, id: 1, method: "tools/list" });

  // Methods.
  const methods = [
    "",
    " ",
    "tools/unknown",
    "TOOLS/CALL",
    "tools/call/",
    "tools//call",
    "rpc.discover",
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
    "initialize",
    "ping",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "notifications/initialized",
    "notifications/cancelled",
    "tasks/list",
    "tasks/get",
    "m".repeat(10_000),
    "🦊",
  ];
  for (const method of methods) {
    json(`method:${method.slice(0, 24)}`, { jsonrpc: "2.0", id: 1, method, params: {} });
    json(`method-bad-params:${method.slice(0, 24)}`, {
      jsonrpc: "2.0",
      id: 2,
      method,
      params: rng.pick([[], "x", 1, null, { uri: 5, name: [] }, { level: "loudest" }]),
    });
  }
  for (const method of [1, null, [], {}, true])
    json(`method-type:${JSON.stringify(method)}`, { jsonrpc: "2.0", id: 1, method, params: {} });
  for (const uri of [
    "",
    "asset://",
    "asset://nope",
    "comfy://../../etc/passwd",
    "file:///etc/passwd",
    "x".repeat(100_000),
    "🦊://x",
    `asset://${"%".repeat(50)}`,
  ]) {
    json(`resources/read:${uri.slice(0, 20)}`, { jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri } });
  }
  json("tools/list-bad-cursor", { jsonrpc: "2.0", id: 1, method: "tools/list", params: { cursor: "garbage" } });
  json("tools/list-cursor-type", { jsonrpc: "2.0", id: 1, method: "tools/list", params: { cursor: 5 } });
  json("initialize-garbage", {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: 12, capabilities: "x", clientInfo: null },
  });
  json("initialize-old-version", {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "1999-01-01", capabilities: {}, clientInfo: { name: "f", version: "0" } },
  });

  // params / name / arguments.
  for (const params of [undefined, null, [], "x", 1, true, [{ name: "list_assets" }]])
    json(`params:${JSON.stringify(params)}`, call(params));
  for (const name of [
    undefined,
    null,
    1,
    true,
    [],
    {},
    "",
    " ",
    "unknown_tool",
    "LIST_ASSETS",
    "list_assets ",
    "list_assets\u0000",
    "__proto__",
    "constructor",
    "toString",
    "../list_assets",
    "n".repeat(100_000),
    "🦊",
    "list-assets",
    "generate_image;rm -rf /",
  ]) {
    json(`name:${JSON.stringify(name)?.slice(0, 24)}`, call({ name, arguments: {} }));
  }
  for (const name of toolNames) {
    for (const args of [null, [], [1, 2], "string", "{}", 0, 1e308, true, false]) {
      json(`arguments:${name}:${JSON.stringify(args)}`, call({ name, arguments: args }));
    }
    json(`arguments-missing:${name}`, call({ name }));
    json(`meta-garbage:${name}`, call({ name, arguments: {}, _meta: { progressToken: { a: [] } } }));
    json(`meta-type:${name}`, call({ name, arguments: {}, _meta: "x" }));
  }

  // ids.
  for (const id of [
    null,
    0,
    -1,
    1.5,
    2 ** 53 + 2,
    1e308,
    -1e308,
    2 ** 64,
    "",
    "s",
    "i".repeat(100_000),
    "🦊",
    [],
    {},
    [1],
    { a: 1 },
    true,
  ]) {
    json(`id:${JSON.stringify(id).slice(0, 24)}`, call({ name: "list_assets", arguments: {} }, id));
  }
  json("id-missing(notification)", {
    jsonrpc: "2.0",
    method: "tools/call",
    params: { name: "list_assets", arguments: {} },
  });
  raw("id-bignum-literal", '{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/list"}');
  raw("duplicate-keys", '{"jsonrpc":"2.0","id":1,"id":"two","method":"ping","method":"tools/list"}');
  json("extra-envelope-fields", {
    jsonrpc: "2.0",
    id: 1,
    method: "tools/list",
    params: {},
    result: {},
    error: { code: 1 },
  });
  json("response-shaped", { jsonrpc: "2.0", id: 1, result: { ok: true } });
  json("error-shaped", { jsonrpc: "2.0", id: 1, error: { code: -32603, message: "x" } });

  // Batches (removed in 2025-06-18).
  json("batch-empty", []);
  json("batch-two", [call({ name: "list_assets", arguments: {} }, 1), call({ name: "list_assets", arguments: {} }, 2)]);
  json("batch-mixed", [call({ name: "list_assets", arguments: {} }, 1), 5, null, "x"]);
  json(
    "batch-100",
    Array.from({ length: 100 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "ping" })),
  );

  // Headers and HTTP methods.
  const ok = JSON.stringify(call({ name: "list_assets", arguments: {} }));
  for (const contentType of [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "",
    "application/json; charset=latin1",
    "application/jsonx",
  ]) {
    raw(`content-type:${contentType}`, ok, { headers: { "Content-Type": contentType } });
  }
  for (const accept of ["", "text/html", "application/json", "text/event-stream", "*/*"])
    raw(`accept:${accept}`, ok, { headers: { Accept: accept } });
  for (const version of ["1999-01-01", "garbage", "2025-06-18", "9999-12-31", "x".repeat(5000)]) {
    raw(`protocol-version:${version.slice(0, 16)}`, ok, { headers: { "MCP-Protocol-Version": version } });
  }
  for (const session of ["nope", "", "s".repeat(5000), "../../x"])
    raw(`session-id:${session.slice(0, 16)}`, ok, { headers: { "Mcp-Session-Id": session } });
  for (const method of ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    raw(`http-${method}`, method === "GET" || method === "HEAD" ? undefined : ok, { method });

  // Random garbled requests: a valid tools/call with bytes cut or flipped.
  for (let i = 0; i < 60; i++) {
    const name = rng.pick(toolNames);
    const text = JSON.stringify(
      call(
        {
          name,
          arguments: { limit: 5, prompt: "a fox", asset_id: "x", wait_seconds: 0, width: 64, height: 64, steps: 1 },
        },
        i,
      ),
    );
    const at = rng.int(text.length);
    const body =
      rng.next() < 0.5 ? text.slice(0, at) : text.slice(0, at) + String.fromCharCode(rng.int(128)) + text.slice(at + 1);
    raw(`garbled#${i}`, body);
  }
  return cases;
}
