// In-memory output/, input/ and temp/ folders, ComfyUI's file naming (§10.2 of the API reference,
// folder_paths.get_save_image_path) and the /view lookup rules (§11).

export const BASE_DIR = "/opt/ComfyUI/user-data"; // the normalised base directory of the recording

/** Python mimetypes answers as recorded (GET_view__*.json); unknown → octet-stream. */
const MIME = {
  png: "image/png",
  webp: "image/webp",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  mp4: "video/mp4",
  webm: "video/webm",
  mkv: "video/x-matroska",
  mp3: "audio/mpeg",
  flac: "audio/flac",
  opus: "audio/ogg",
  ogg: "audio/ogg",
  wav: "audio/x-wav",
  json: "application/json",
  txt: "text/plain",
};
/** 0.3.64 forces these to octet-stream in /view. */
const FORCED_OCTET = new Set(["html", "htm", "xhtml", "js", "mjs", "css"]);

/** @param {string} filename */
export function mimeFor(filename) {
  const ext = filename.includes(".") ? filename.split(".").pop().toLowerCase() : "";
  if (FORCED_OCTET.has(ext)) return "application/octet-stream";
  return MIME[ext] ?? "application/octet-stream";
}

/** posix os.path.normpath */
export function normpath(p) {
  if (p === "") return ".";
  const abs = p.startsWith("/");
  const out = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && out.length > 0 && out.at(-1) !== "..") out.pop();
    else if (part === ".." && abs) continue;
    else out.push(part);
  }
  const s = (abs ? "/" : "") + out.join("/");
  return s || (abs ? "/" : ".");
}

/** True when `sub` (relative to a type's base folder) stays inside it. */
export function subfolderInside(sub) {
  if (sub.startsWith("/")) return false;
  const n = normpath(sub);
  return n !== ".." && !n.startsWith("../");
}

/**
 * @typedef {object} StoredFile
 * @property {Buffer} bytes
 * @property {number} mtimeMs
 * @property {bigint} mtimeNs
 */

export class FileStore {
  constructor() {
    /** @type {Map<string, StoredFile>} key: type \0 subfolder \0 filename */
    this.files = new Map();
  }
  static key(type, subfolder, filename) {
    return `${type}\0${subfolder === "." ? "" : subfolder}\0${filename}`;
  }

  /** @param {"output"|"input"|"temp"} type @param {string} subfolder @param {string} filename @param {Buffer} bytes */
  put(type, subfolder, filename, bytes) {
    const ms = Date.now();
    // aiohttp's Etag is "<mtime_ns hex>-<size hex>"; keep ns distinct per write.
    const ns = BigInt(ms) * 1_000_000n + BigInt(Math.floor((performance.now() % 1) * 1e6));
    this.files.set(FileStore.key(type, subfolder, filename), { bytes, mtimeMs: ms, mtimeNs: ns });
  }
  get(type, subfolder, filename) {
    return this.files.get(FileStore.key(type, subfolder, filename));
  }
  has(type, subfolder, filename) {
    return this.files.has(FileStore.key(type, subfolder, filename));
  }

  /** File names directly inside type/subfolder (what os.listdir would show). */
  names(type, subfolder) {
    const prefix = `${type}\0${subfolder === "." ? "" : subfolder}\0`;
    const out = [];
    for (const k of this.files.keys()) if (k.startsWith(prefix)) out.push(k.slice(prefix.length));
    return out;
  }
  /** Temp is wiped on (re)start, like ComfyUI deleting temp/ at startup. */
  clearType(type) {
    for (const k of [...this.files.keys()]) if (k.startsWith(`${type}\0`)) this.files.delete(k);
  }

  /** @returns {{type: string, subfolder: string, filename: string, bytes: number}[]} */
  list() {
    return [...this.files].map(([k, f]) => {
      const [type, subfolder, filename] = k.split("\0");
      return { type, subfolder, filename, bytes: f.bytes.length };
    });
  }

  /**
   * `folder_paths.get_save_image_path`: split the prefix into subfolder + base name and find the
   * next counter (max existing `<base>_<digits>_…` + 1, per folder and per prefix).
   * @param {string} prefix @param {"output"|"temp"} type @param {number} [width] @param {number} [height]
   * @returns {{subfolder: string, filename: string, counter: number}}
   */
  saveImagePath(prefix, type, width = 0, height = 0) {
    if (prefix.includes("%")) {
      const d = new Date();
      const pad = (n) => String(n).padStart(2, "0");
      prefix = prefix
        .replaceAll("%width%", String(width))
        .replaceAll("%height%", String(height))
        .replaceAll("%year%", String(d.getFullYear()))
        .replaceAll("%month%", pad(d.getMonth() + 1))
        .replaceAll("%day%", pad(d.getDate()))
        .replaceAll("%hour%", pad(d.getHours()))
        .replaceAll("%minute%", pad(d.getMinutes()))
        .replaceAll("%second%", pad(d.getSeconds()));
    }
    const norm = normpath(prefix);
    const slash = norm.lastIndexOf("/");
    const subfolder = slash >= 0 ? norm.slice(0, slash) || "/" : "";
    const filename = slash >= 0 ? norm.slice(slash + 1) : norm;
    const root = `${BASE_DIR}/${type}`;
    if (!subfolderInside(subfolder)) {
      const full = subfolder.startsWith("/") ? subfolder : normpath(`${root}/${subfolder}`);
      const common = commonPath(root, full);
      const err = new Error(
        "**** ERROR: Saving image outside the output folder is not allowed." +
          "\n full_output_folder: " +
          full +
          "\n         output_dir: " +
          root +
          "\n         commonpath: " +
          common,
      );
      /** @type {any} */ (err).pyType = "Exception";
      throw err;
    }
    const baseLen = (prefix.split("/").pop() ?? "").length;
    let max = 0;
    for (const name of this.names(type, subfolder)) {
      const head = name.slice(0, baseLen + 1);
      if (head.slice(0, -1).toLowerCase() !== filename.toLowerCase() || head.at(-1) !== "_") continue;
      const digits = Number.parseInt(name.slice(baseLen + 1).split("_")[0], 10);
      max = Math.max(max, Number.isFinite(digits) && /^\d+$/.test(name.slice(baseLen + 1).split("_")[0]) ? digits : 0);
    }
    return { subfolder, filename, counter: max + 1 };
  }
}

function commonPath(a, b) {
  const pa = a.split("/"),
    pb = b.split("/");
  let i = 0;
  while (i < pa.length && i < pb.length && pa[i] === pb[i]) i++;
  return pa.slice(0, i).join("/") || "/";
}

/** `f"{n:05}"` */
export const pad5 = (n) => String(n).padStart(5, "0");
