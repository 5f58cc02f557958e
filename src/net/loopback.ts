/**
 * Loopback mode: `npm start` serves MCP without authentication to this machine only. It is on
 * only when ALLOW_UNAUTHENTICATED_LOCAL=true comes from the command line (`npm start` passes it;
 * wrangler.toml's [vars] never holds it, so `wrangler deploy` cannot ship it), and only for a
 * request that (a) names the gateway by one exact loopback host and PUBLIC_URL's port, and
 * (b) carries no header a proxy or Cloudflare adds for a visitor from elsewhere. The Host header
 * alone proves nothing: a reverse proxy on this machine forwards `Host: 127.0.0.1:8787` (nginx's
 * default) for visitors from anywhere.
 */
import { readConfig } from "../config";

declare global {
  interface Env {
    /** "true" turns loopback mode on; passed by `npm start`, never set in [vars]. */
    ALLOW_UNAUTHENTICATED_LOCAL?: string;
  }
}

/**
 * The only spellings of this machine accepted as a loopback host. The runtime has already
 * normalised the Host (127.1, 0x7f.1 and 2130706433 all arrive as 127.0.0.1, `LOCALHOST` as
 * `localhost`); anything else (`localhost.`, 127.0.0.2, [::ffff:7f00:1]…) is not loopback mode.
 */
export const LOOPBACK_HOSTNAMES: readonly string[] = ["127.0.0.1", "localhost", "[::1]"];

/** Headers that mean the request came through a proxy (or Cloudflare) on behalf of someone else. */
const FORWARDING_HEADERS = ["x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host"];

export type LoopbackVerdict = { local: true; origins: ReadonlySet<string> } | { local: false; reason: string };

/**
 * Whether this request may be served in loopback mode, and if so which browser origins are this
 * gateway's own (the loopback hosts on its port). `reason` says why not, for the 503 message.
 */
export function loopbackMode(request: Request, env: Env): LoopbackVerdict {
  if (!readConfig(env).allowUnauthenticatedLocal)
    return { local: false, reason: "ALLOW_UNAUTHENTICATED_LOCAL is not set (only `npm start` sets it)" };
  const own = ownHosts(env);
  if (!own) return { local: false, reason: "PUBLIC_URL is not a loopback URL (this looks like a deployment)" };
  const host = new URL(request.url).host;
  if (!own.includes(host)) return { local: false, reason: `the request's host ${host} is not ${own.join(" or ")}` };
  const forwarded = FORWARDING_HEADERS.find((name) => request.headers.has(name));
  if (forwarded) return { local: false, reason: `the request came through a proxy (it carries ${forwarded})` };
  // wrangler dev sets CF-Connecting-IP to the socket's peer (127.0.0.1); Cloudflare, cloudflared
  // and proxies that imitate it set the visitor's address.
  const visitor = request.headers.get("cf-connecting-ip");
  if (visitor !== null && !isLoopbackAddress(visitor))
    return { local: false, reason: "the request came from another machine (CF-Connecting-IP)" };
  return { local: true, origins: new Set(own.map((hostPort) => `http://${hostPort}`)) };
}

/** Per env: every request asks, and URL parsing is most of the cost of the answer. */
const ownHostsByEnv = new WeakMap<Env, readonly string[] | null>();

/**
 * The gateway's own loopback hosts (`127.0.0.1:8787`, `localhost:8787`, `[::1]:8787`), when
 * PUBLIC_URL is an http URL on a loopback host (as `npm start` has it); else null.
 */
function ownHosts(env: Env): readonly string[] | null {
  let hosts = ownHostsByEnv.get(env);
  if (hosts === undefined) {
    const url = new URL(readConfig(env).publicUrl);
    const loopback = url.protocol === "http:" && LOOPBACK_HOSTNAMES.includes(url.hostname);
    const port = url.port || "80";
    hosts = loopback ? LOOPBACK_HOSTNAMES.map((name) => new URL(`http://${name}:${port}`).host) : null;
    ownHostsByEnv.set(env, hosts);
  }
  return hosts;
}

function isLoopbackAddress(address: string): boolean {
  const value = address.trim().toLowerCase();
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(value) || value === "::1" || value === "::ffff:127.0.0.1";
}
