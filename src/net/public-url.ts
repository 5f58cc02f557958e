/**
 * Which URLs a tool argument may make the gateway fetch: public https hosts only (SSRF rules,
 * shared by every fetch whose address comes from a caller). A host written as an address is
 * judged by the address it denotes, in every notation the URL parser accepts; a name is judged by
 * its suffix here, and by the runtime after DNS resolution when the deployment sets
 * global_fetch_strictly_public (wrangler.toml's [env.production]): a Worker cannot resolve names.
 */
import { ToolFailure } from "../mcp/results";
import type { ParamSpec } from "../workflows/definition";

/**
 * Only public https hosts: no tool argument may make the gateway fetch a private address, nor one
 * of its own ComfyUI backends (`backendUrls`: COMFYUI_URL or the pool's urls), which sit behind
 * the gateway's credentials.
 */
export function checkPublicUrl(
  spec: Pick<ParamSpec, "name">,
  url: string,
  backendUrls: readonly string[] = [],
  trustedOrigins: ReadonlySet<string> = new Set(),
): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ToolFailure(`'${spec.name}': '${url}' is not a valid URL.`);
  }
  // The operator named this exact origin (COMFY_MCP_FETCH_ALLOW_ORIGINS): their call, not a caller's.
  if (trustedOrigins.has(parsed.origin)) return;
  if (parsed.protocol !== "https:")
    throw new ToolFailure(`'${spec.name}': only https URLs are accepted (got ${parsed.protocol}).`);
  if (isPrivateHost(parsed.hostname))
    throw new ToolFailure(
      `'${spec.name}': ${parsed.hostname} is a private or local address; the gateway only fetches public https URLs.`,
    );
  if (backendUrls.some((backend) => sameHost(backend, parsed.hostname)))
    throw new ToolFailure(
      `'${spec.name}': ${parsed.hostname} is one of this gateway's ComfyUI backends, which is never fetched as a media URL; pass an asset_id of yours instead.`,
    );
}

/** Names that never denote a public host (RFC 6761, RFC 6762 appendix G, RFC 8375). */
const LOCAL_NAME = /(^|\.)(localhost|local|internal|intranet|private|corp|home|lan|home\.arpa)$/;

/**
 * IPv4 space that is not a public unicast host (IANA special-purpose registry): this network,
 * private, shared (CGNAT), loopback, link-local, IETF protocol assignments, documentation,
 * the 6to4 relay anycast, benchmarking, multicast, reserved and broadcast.
 */
const SPECIAL_V4 = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.88.99.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
].map(cidr);

/**
 * IPv6 is allowed only in global unicast space (2000::/3), which already leaves out loopback,
 * unspecified, IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::/96), NAT64 (64:ff9b::/96,
 * 64:ff9b:1::/48), discard, unique-local, link-local, site-local and multicast. Inside it these
 * are refused too: the IETF protocol block (Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID
 * 2001:10::/28 and 2001:20::/28…) and documentation (2001:db8::/32, 3fff::/20).
 */
const GLOBAL_V6 = cidr("2000::/3");
const SPECIAL_V6 = ["2001::/23", "2001:db8::/32", "3fff::/20"].map(cidr);
/** 6to4 (RFC 3056): the IPv4 address in bits 16–47 is where the packet really goes. */
const SIX_TO_FOUR = cidr("2002::/16");

/** True for anything that is not a public host: private, special, local names, malformed literals. */
export function isPrivateHost(hostname: string): boolean {
  const host = canonicalHost(hostname);
  if (host === undefined || host === "" || LOCAL_NAME.test(host)) return true;
  const address = parseAddress(host);
  if (!address) return /^[\d.]+$/.test(host); // a numeric host the parser did not take is refused; names pass
  if (address.length === 4) return SPECIAL_V4.some((range) => inRange(address, range));
  if (!inRange(address, GLOBAL_V6) || SPECIAL_V6.some((range) => inRange(address, range))) return true;
  return inRange(address, SIX_TO_FOUR) && SPECIAL_V4.some((range) => inRange(address.subarray(2, 6), range));
}

/**
 * The host as fetch() would use it: the URL parser turns every IPv4 spelling (127.1, 0x7f.1,
 * 2130706433, 0177.0.0.1) into dotted form and every IPv6 spelling into its canonical one.
 * Undefined when it is no valid host at all.
 */
function canonicalHost(hostname: string): string | undefined {
  const bare = hostname.trim().replace(/^\[|\]$/g, "");
  try {
    const host = new URL(`https://${bare.includes(":") ? `[${bare}]` : bare}/`).hostname;
    return host.replace(/^\[|\]$/g, "").replace(/\.+$/, "");
  } catch {
    return undefined;
  }
}

function sameHost(url: string, hostname: string): boolean {
  try {
    return canonicalHost(new URL(url).hostname) === canonicalHost(hostname);
  } catch {
    return false;
  }
}

interface Range {
  bytes: Uint8Array;
  prefix: number;
}

function cidr(text: string): Range {
  const [address, prefix] = text.split("/");
  const bytes = parseAddress(address ?? "");
  if (!bytes) throw new Error(`bad CIDR ${text}`);
  return { bytes, prefix: Number(prefix) };
}

function inRange(address: Uint8Array, range: Range): boolean {
  if (address.length !== range.bytes.length) return false;
  for (let bit = 0; bit < range.prefix; bit += 8) {
    const bits = Math.min(8, range.prefix - bit);
    const mask = (0xff << (8 - bits)) & 0xff;
    const i = bit / 8;
    if (((address[i] ?? 0) & mask) !== ((range.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * 4 bytes for dotted IPv4, 16 for an IPv6 literal in hex groups with an optional `::` (the URL
 * parser's canonical form: a dotted tail such as ::ffff:127.0.0.1 arrives as ::ffff:7f00:1).
 */
function parseAddress(host: string): Uint8Array | undefined {
  const v4 = parseIpv4(host);
  if (v4) return v4;
  const halves = host.split("::");
  if (!host.includes(":") || halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves[1] ? halves[1].split(":") : [];
  const zeros = 8 - head.length - tail.length;
  if (halves.length === 1 ? zeros !== 0 : zeros < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? zeros : 0).fill("0"), ...tail];
  if (!groups.every((group) => /^[0-9a-f]{1,4}$/i.test(group))) return undefined;
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const word = Number.parseInt(group, 16);
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

function parseIpv4(host: string): Uint8Array | undefined {
  const parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!parts) return undefined;
  const bytes = parts.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? Uint8Array.from(bytes) : undefined;
}
