/**
 * The interactive half of OAuth: /authorize (sign in, then consent), /login and
 * /authorize/consent; the signed-in owner's pages (/grants, /logout) are in session-routes.ts.
 * The protocol half (metadata, registration, tokens) is the OAuth provider's.
 * Consent handles are bound to the browser by the provider (its cookie), so a forged or replayed
 * form fails; the login form carries a double-submit CSRF token. Every password attempt is
 * counted by the Guard before it is compared (src/auth/throttle.ts).
 */
import type { AuthRequest, OAuthHelpers } from "@cloudflare/workers-oauth-provider";
import type { Context, Hono } from "hono";
import { SCOPES } from "./credentials";
import { timingSafeEqual } from "./crypto";
import { type SignInVerdict, guardOf } from "./guard";
import {
  CSRF_COOKIE,
  OWNER,
  clientAddress,
  csrfCookie,
  newCsrfToken,
  ownerSession,
  readCookie,
  sessionCookie,
} from "./owner";
import { consentPage, html, loginPage, messagePage, signInPage } from "./pages";
import { registerSessionRoutes } from "./session-routes";
import { throttleLimits } from "./throttle";

declare global {
  interface Env {
    /** Injected by the OAuth provider into the default handler's env. */
    OAUTH_PROVIDER?: OAuthHelpers;
  }
}

export { SCOPES };

type AppContext = Context<{ Bindings: Env }>;

/** Where a successful sign-in may lead: our own pages only, never an open redirect. */
function signInTarget(next: string): string {
  return next.startsWith("/authorize?") || next === "/grants" || next === "/studio" ? next : "/";
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
    if (!(await ownerSession(c.env, c.req.raw))) return signInPage(`/authorize${new URL(c.req.url).search}`);
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
  registerSessionRoutes(app);

  app.post("/authorize/consent", async (c) => {
    const oauth = c.env.OAUTH_PROVIDER;
    if (!oauth) return html(messagePage("Sign-in is off", "OAuth is not configured."), 404);
    if (!(await ownerSession(c.env, c.req.raw)))
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
      // A grant of nothing would look like access to the application and work for nothing.
      if (scopes.length === 0)
        return html(
          messagePage(
            "Nothing was allowed",
            "No permission was ticked, so nothing was granted. Go back, tick at least one permission and press Allow, or press Deny.",
          ),
          400,
        );
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
  if (!csrf || !timingSafeEqual(csrf, cookie))
    return html(messagePage("Form expired", "Reload the sign-in page and try again."), 403);
  const target = signInTarget(String(form.get("next") ?? ""));
  const password = String(form.get("password") ?? "");
  let verdict: SignInVerdict;
  try {
    verdict = await guardOf(c.env).signIn(clientAddress(c.req.raw), password);
  } catch {
    return html(
      messagePage("Try again", "The gateway could not check the password just now; retry in a few seconds."),
      503,
    );
  }
  const window = duration(throttleLimits(c.env).windowMs / 1000);
  if (verdict.status === "throttled") {
    const cause = {
      address: "too many wrong passwords from your address",
      network: "too many wrong passwords from your network",
      everyone: "too many wrong passwords on this gateway lately, from everywhere",
    }[verdict.who];
    return html(
      messagePage(
        "Too many attempts",
        `Too many attempts: ${cause}. No password is checked for ${duration(verdict.retryAfterSeconds)}; try again after that.`,
      ),
      429,
      { "Retry-After": String(verdict.retryAfterSeconds) },
    );
  }
  if (verdict.status === "wrong") {
    const fresh = newCsrfToken();
    return html(
      loginPage({
        csrf: fresh,
        next: target,
        error: `Wrong password. ${verdict.left} attempt${verdict.left === 1 ? "" : "s"} left before sign-in pauses for ${window}.`,
      }),
      401,
      { "Set-Cookie": csrfCookie(fresh) },
    );
  }
  const headers = new Headers({ Location: target });
  headers.append("Set-Cookie", await sessionCookie(c.env));
  return new Response(null, { status: 303, headers });
}

function duration(seconds: number): string {
  if (seconds < 120) return `${Math.ceil(seconds)} seconds`;
  return `${Math.ceil(seconds / 60)} minutes`;
}
