/**
 * The interactive half of OAuth: /authorize (sign in, then consent), /login and
 * /authorize/consent. The protocol half (metadata, registration, tokens) is the OAuth provider's.
 * Consent handles are bound to the browser by the provider (its cookie), so a forged or replayed
 * form fails; the login form carries a double-submit CSRF token.
 */
import type { AuthRequest, OAuthHelpers } from "@cloudflare/workers-oauth-provider";
import type { Context, Hono } from "hono";
import {
  CSRF_COOKIE,
  MAX_FAILED_LOGINS,
  OWNER,
  clientAddress,
  csrfCookie,
  failedLogins,
  hasSession,
  newCsrfToken,
  passwordMatches,
  readCookie,
  recordFailedLogin,
  sessionCookie,
} from "./owner";
import { SECURITY_HEADERS, consentPage, loginPage, messagePage } from "./pages";
import { timingSafeEqual } from "./secrets";

declare global {
  interface Env {
    /** Injected by the OAuth provider into the default handler's env. */
    OAUTH_PROVIDER?: OAuthHelpers;
  }
}

export const SCOPES = ["generate", "publish", "admin"] as const;

type AppContext = Context<{ Bindings: Env }>;

function html(body: string, status = 200, extra?: HeadersInit): Response {
  const headers = new Headers({ ...SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8" });
  // The provider's consent headers repeat some of ours: one value each, but every cookie.
  const more = new Headers(extra);
  for (const cookie of more.getSetCookie()) headers.append("Set-Cookie", cookie);
  for (const [name, value] of more) if (name.toLowerCase() !== "set-cookie") headers.set(name, value);
  return new Response(body, { status, headers });
}

export function registerOwnerRoutes(app: Hono<{ Bindings: Env }>): void {
  app.get("/authorize", async (c) => {
    const oauth = c.env.OAUTH_PROVIDER;
    if (!oauth)
      return html(
        messagePage("Sign-in is off", "This gateway has no OWNER_PASSWORD, so it does not offer OAuth sign-in."),
        404,
      );
    let request: AuthRequest;
    try {
      request = await oauth.parseAuthRequest(c.req.raw);
      if (!(await oauth.lookupClient(request.clientId))) throw new Error("unknown client");
    } catch (error) {
      return html(
        messagePage(
          "Invalid authorization request",
          error instanceof Error ? error.message : "The request could not be understood.",
        ),
        400,
      );
    }
    if (!(await hasSession(c.env, c.req.raw))) {
      const csrf = newCsrfToken();
      const next = `/authorize${new URL(c.req.url).search}`;
      return html(loginPage({ csrf, next }), 200, { "Set-Cookie": csrfCookie(csrf) });
    }
    const described = await oauth.describeConsent(request);
    const requested = request.scope.filter((scope) => (SCOPES as readonly string[]).includes(scope));
    const scopes = requested.length > 0 ? requested : ["generate"];
    const consent = await oauth.beginConsent({ ...request, scope: scopes });
    return html(
      consentPage({
        clientName: described.clientName,
        clientId: described.clientId,
        redirectHost: described.redirectHost,
        scopes,
        handle: consent.handle,
      }),
      200,
      consent.headers,
    );
  });

  app.post("/login", async (c) => login(c));

  app.post("/authorize/consent", async (c) => {
    const oauth = c.env.OAUTH_PROVIDER;
    if (!oauth) return html(messagePage("Sign-in is off", "OAuth is not configured."), 404);
    if (!(await hasSession(c.env, c.req.raw)))
      return html(messagePage("Not signed in", "Sign in again from the application that sent you here."), 403);
    const form = await c.req.formData();
    const handle = String(form.get("handle") ?? "");
    try {
      if (form.get("decision") !== "approve") {
        const denied = await oauth.denyConsent(c.req.raw, handle, { description: "The owner declined." });
        return new Response(null, { status: 302, headers: denied.headers });
      }
      const scopes = form
        .getAll("scope")
        .map(String)
        .filter((scope) => (SCOPES as readonly string[]).includes(scope));
      const approved = await oauth.approveConsent(c.req.raw, handle, { scope: scopes });
      const { redirectTo } = await oauth.completeAuthorization({
        request: approved.request,
        userId: OWNER,
        scope: scopes,
        props: { user: OWNER, scopes },
        metadata: { approved_at: new Date().toISOString() },
      });
      const headers = new Headers(approved.headers);
      headers.set("Location", redirectTo);
      return new Response(null, { status: 302, headers });
    } catch (error) {
      return html(
        messagePage(
          "This approval is not valid",
          `${error instanceof Error ? error.message : "Unknown error"}. Start again from the application.`,
        ),
        403,
      );
    }
  });
}

async function login(c: AppContext): Promise<Response> {
  const form = await c.req.formData();
  const csrf = String(form.get("csrf") ?? "");
  const cookie = readCookie(c.req.raw, CSRF_COOKIE) ?? "";
  const next = String(form.get("next") ?? "");
  if (!csrf || !timingSafeEqual(csrf, cookie))
    return html(messagePage("Form expired", "Reload the sign-in page and try again."), 403);
  // Only back to our own authorization endpoint: never an open redirect.
  const target = next.startsWith("/authorize?") ? next : "/";
  const address = clientAddress(c.req.raw);
  if ((await failedLogins(c.env, address)) >= MAX_FAILED_LOGINS) {
    return html(messagePage("Too many attempts", "Too many attempts: wait 15 minutes before trying again."), 429, {
      "Retry-After": "900",
    });
  }
  if (!(await passwordMatches(c.env, String(form.get("password") ?? "")))) {
    const failures = await recordFailedLogin(c.env, address);
    const fresh = newCsrfToken();
    const left = Math.max(0, MAX_FAILED_LOGINS - failures);
    return html(
      loginPage({
        csrf: fresh,
        next: target,
        error: `Wrong password. ${left} attempt${left === 1 ? "" : "s"} left before a 15-minute pause.`,
      }),
      401,
      { "Set-Cookie": csrfCookie(fresh) },
    );
  }
  const headers = new Headers({ Location: target });
  headers.append("Set-Cookie", await sessionCookie(c.env));
  return new Response(null, { status: 303, headers });
}
