/**
 * Which URLs a tool argument may make the gateway fetch: public https hosts only (SSRF rules,
 * shared by every fetch whose address comes from a caller).
 */
import { ToolFailure } from "../mcp/results";
import type { ParamSpec } from "../workflows/definition";

/** Only public https hosts: no tool argument may make the gateway fetch a private address. */
export function checkPublicUrl(spec: ParamSpec, url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ToolFailure(`'${spec.name}': '${url}' is not a valid URL.`);
  }
  if (parsed.protocol !== "https:")
    throw new ToolFailure(`'${spec.name}': only https URLs are accepted (got ${parsed.protocol}).`);
  if (isPrivateHost(parsed.hostname))
    throw new ToolFailure(
      `'${spec.name}': ${parsed.hostname} is a private or local address; the gateway only fetches public https URLs.`,
    );
}

/**
 * The URL parser has already turned every IPv4 spelling (decimal, hex, octal) into dotted form.
 * IPv6 literals are allowed only in global unicast space (2000::/3), which excludes loopback,
 * IPv4-mapped (::ffff:…), NAT64 (64:ff9b::…), unique-local and link-local addresses.
 */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname
    .replace(/^\[|\]$/g, "")
    .replace(/\.+$/, "")
    .toLowerCase();
  if (host === "" || host === "localhost" || /\.(localhost|internal|local|home\.arpa)$/.test(host)) return true;
  if (host.includes(":")) return !/^[23][0-9a-f]{0,3}:/.test(host) || /^2001:0?db8:/.test(host);
  const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!ipv4) return /^[\d.]+$/.test(host); // a malformed numeric host is refused, names are allowed
  const [a, b] = [Number(ipv4[1]), Number(ipv4[2])];
  return (
    a === 0 ||
    a === 10 ||
    a === 127 ||
    a >= 224 ||
    (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 198 && (b === 18 || b === 19))
  );
}
