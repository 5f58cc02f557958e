/**
 * Worker entry. With OWNER_PASSWORD set, the OAuth provider fronts everything: /mcp needs an
 * OAuth token (hosted agents: claude.ai, ChatGPT…), and the owner signs in and consents at
 * /authorize. /mcp-key takes static tokens from MCP_TOKENS (CLIs, IDEs) and never advertises
 * OAuth. Without any of that, MCP is served only in loopback mode (`npm start`, this machine,
 * no proxy: src/net/loopback.ts); everything else fails closed.
 */
import OAuthProvider from "@cloudflare/workers-oauth-provider";
import { Hono } from "hono";
import { streamAsset, verifyDownload } from "./assets/downloads";
import { OWNER } from "./auth/owner";
import { SCOPES, registerOwnerRoutes } from "./auth/routes";
import { tokenIdentity } from "./auth/tokens";
import { readConfig } from "./config";
import { serveMcp } from "./mcp/serve";
import { loopbackMode } from "./net/loopback";
import { Backends } from "./pool/backends";
import { healthz } from "./pool/healthz";
import { publishConfig } from "./publish/bucket";
import { registerStudioPage } from "./view/page";

export { Studio } from "./studio/studio";
export { Pool } from "./pool/coordinator";
export { Guard } from "./auth/guard";

const ALL_SCOPES: ReadonlySet<string> = new Set(SCOPES);

const app = new Hono<{ Bindings: Env }>();

/** Public: ok or degraded; details for token holders and loopback mode (src/pool/healthz.ts). */
app.get("/healthz", (c) => healthz(c.req.raw, c.env));

/** Full-size downloads behind signed, expiring URLs (tool results carry them). */
app.on(["GET", "HEAD"], "/assets/:id", async (c) => {
  const id = c.req.param("id");
  const check = await verifyDownload(c.env, id, new URL(c.req.url).searchParams);
  if (!check.ok) return c.json({ error: "forbidden", message: check.message }, check.status);
  const studio = c.env.STUDIO.get(c.env.STUDIO.idFromName(check.principal));
  const asset = await studio.getAsset(id);
  if (!asset)
    return c.json(
      { error: "not_found", message: `Asset ${id} no longer exists (assets are kept ASSET_TTL_HOURS).` },
      404,
    );
  const comfy = new Backends(readConfig(c.env), c.env).find(asset.backend);
  if (!comfy)
    return c.json(
      { error: "gone", message: `Asset ${id} was made on backend '${asset.backend}', which is no longer configured.` },
      410,
    );
  return streamAsset(comfy, asset, c.req.raw);
});

/**
 * Published files, when no PUBLIC_BASE_URL (custom domain or public bucket) serves them: they are
 * public by intent, so no signature; only keys under the publish prefix are reachable.
 */
app.on(["GET", "HEAD"], "/published/*", async (c) => {
  const config = publishConfig(c.env, readConfig(c.env).publicUrl);
  const key = decodeURIComponent(new URL(c.req.url).pathname.slice("/published/".length));
  if (!config.bucket || !key.startsWith(config.prefix) || key.includes(".."))
    return c.json({ error: "not_found", message: "No such published file." }, 404);
  const object = await config.bucket.get(key);
  if (!object) return c.json({ error: "not_found", message: `Nothing is published at ${key}.` }, 404);
  const headers = new Headers({ ETag: object.httpEtag, "X-Content-Type-Options": "nosniff" });
  object.writeHttpMetadata(headers);
  headers.set("Content-Length", String(object.size));
  return new Response(c.req.method === "HEAD" ? null : object.body, { headers });
});

registerOwnerRoutes(app);
registerStudioPage(app);

/** Static tokens for CLIs and IDEs; no OAuth discovery here, because Cursor ignores headers on OAuth routes. */
app.all("/mcp-key", async (c) => {
  const identity = await tokenIdentity(c.env, c.req.raw);
  if (identity instanceof Response) return identity;
  return serveMcp(c.req.raw, c.env, c.executionCtx as ExecutionContext, identity);
});

let warned = false;

/** Reached only without OAuth: local development, or a misconfigured deployment (fail closed). */
app.all("/mcp", async (c) => {
  const local = loopbackMode(c.req.raw, c.env);
  if (local.local) {
    if (!warned) {
      console.warn(
        "WARNING: serving MCP WITHOUT AUTHENTICATION to this machine (ALLOW_UNAUTHENTICATED_LOCAL=true, loopback mode). Never deploy like this.",
      );
      warned = true;
    }
    return serveMcp(c.req.raw, c.env, c.executionCtx as ExecutionContext, { principal: OWNER, scopes: ALL_SCOPES });
  }
  return c.json(
    {
      error: "authentication_not_configured",
      message:
        `This gateway has no authentication configured, so it refuses to serve MCP: unauthenticated local mode does not apply (${local.reason}). ` +
        "Set the OWNER_PASSWORD secret for OAuth (claude.ai, ChatGPT, Cursor…) and/or MCP_TOKENS for static tokens on /mcp-key " +
        "(Claude Code, CLIs); see README, 'Deploying safely'. For local development, `npm start` serves " +
        "http://127.0.0.1:8787/mcp without auth to this machine only, never through a proxy.",
    },
    503,
  );
});

app.notFound((c) =>
  c.json(
    { error: "not_found", message: `No route ${c.req.method} ${new URL(c.req.url).pathname}. MCP is served at /mcp.` },
    404,
  ),
);

app.onError((error, c) => {
  console.error("request failed:", error.message);
  return c.json(
    {
      error: "internal",
      message: "The gateway hit an unexpected error; retry, and check the gateway logs if it persists.",
    },
    500,
  );
});

/** The OAuth-protected MCP route: the provider has verified the token; its props name the user. */
const oauthMcp = {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const props = ((ctx as unknown as { props?: { user?: string; scopes?: string[] } }).props ?? {}) as {
      user?: string;
      scopes?: string[];
    };
    return serveMcp(request, env, ctx, { principal: props.user ?? OWNER, scopes: new Set(props.scopes ?? []) });
  },
};

let provider: { publicUrl: string; instance: OAuthProvider } | undefined;

function oauthProvider(env: Env): OAuthProvider {
  const { publicUrl } = readConfig(env);
  if (provider?.publicUrl !== publicUrl) {
    provider = {
      publicUrl,
      instance: new OAuthProvider({
        apiRoute: "/mcp",
        apiHandler: oauthMcp,
        defaultHandler: { fetch: (request, env2, ctx) => app.fetch(request, env2, ctx) },
        authorizeEndpoint: "/authorize",
        tokenEndpoint: "/oauth/token",
        clientRegistrationEndpoint: "/oauth/register",
        scopesSupported: [...SCOPES],
        accessTokenTTL: 3600,
        // Needs the global_fetch_strictly_public flag (production only: it blocks 127.0.0.1, see README).
        clientIdMetadataDocumentEnabled: true,
        resourceMetadata: { resource: `${publicUrl}/mcp` },
      }),
    };
  }
  return provider.instance;
}

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
    if (env.OWNER_PASSWORD) return oauthProvider(env).fetch(request, env, ctx);
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
