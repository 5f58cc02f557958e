/**
 * The signed-in owner's pages: GET /grants lists the applications allowed through OAuth, POST
 * /grants/revoke ends one (its tokens stop working at once), POST /logout ends this session.
 * Every POST carries the session's CSRF token (src/auth/owner.ts), and the session cookie is
 * SameSite=Lax, so another site can neither revoke nor sign out on the owner's behalf.
 */
import type { GrantSummary, OAuthHelpers } from "@cloudflare/workers-oauth-provider";
import type { Hono } from "hono";
import {
  CLEAR_SESSION_COOKIE,
  OWNER,
  type OwnerSession,
  endSession,
  ownerSession,
  sessionCsrf,
  validSessionCsrf,
} from "./owner";
import { type GrantRow, grantsPage, html, messagePage, signInPage } from "./pages";

/** Enough for any one owner; the provider lists at most 1000 a page. */
const MAX_GRANTS = 1000;

export function registerSessionRoutes(app: Hono<{ Bindings: Env }>): void {
  app.get("/grants", async (c) => {
    const oauth = c.env.OAUTH_PROVIDER;
    if (!oauth) return signInOff();
    const session = await ownerSession(c.env, c.req.raw);
    if (!session) return signInPage("/grants");
    return grantsResponse(c.env, oauth, session);
  });

  app.post("/grants/revoke", async (c) => {
    const oauth = c.env.OAUTH_PROVIDER;
    if (!oauth) return signInOff();
    const form = await c.req.formData();
    const session = await ownerSession(c.env, c.req.raw);
    if (!session) return notSignedIn();
    if (!(await validSessionCsrf(c.env, session, String(form.get("csrf") ?? "")))) return formExpired();
    const grantId = String(form.get("grant") ?? "");
    const grants = await listGrants(oauth);
    if (!grants.some((grant) => grant.id === grantId))
      return grantsResponse(
        c.env,
        oauth,
        session,
        "That application had no access (any more); nothing was revoked.",
        404,
      );
    await oauth.revokeGrant(grantId, OWNER);
    return new Response(null, { status: 303, headers: { Location: "/grants" } });
  });

  app.post("/logout", async (c) => {
    const form = await c.req.formData();
    const session = await ownerSession(c.env, c.req.raw);
    if (session) {
      if (!(await validSessionCsrf(c.env, session, String(form.get("csrf") ?? "")))) return formExpired();
      await endSession(c.env, session);
    }
    return html(messagePage("Signed out", "You are signed out of this gateway."), 200, {
      "Set-Cookie": CLEAR_SESSION_COOKIE,
    });
  });
}

async function grantsResponse(
  env: Env,
  oauth: OAuthHelpers,
  session: OwnerSession,
  notice?: string,
  status = 200,
): Promise<Response> {
  const grants = await listGrants(oauth);
  const rows: GrantRow[] = await Promise.all(
    grants.map(async (grant) => ({
      id: grant.id,
      clientId: grant.clientId,
      clientName: (await oauth.lookupClient(grant.clientId).catch(() => null))?.clientName ?? "(unnamed application)",
      scopes: grant.scope,
      createdAt: grant.createdAt,
    })),
  );
  rows.sort((a, b) => b.createdAt - a.createdAt);
  return html(grantsPage({ grants: rows, csrf: await sessionCsrf(env, session), notice }), status);
}

async function listGrants(oauth: OAuthHelpers): Promise<GrantSummary[]> {
  const grants: GrantSummary[] = [];
  let cursor: string | undefined;
  do {
    const page = await oauth.listUserGrants(OWNER, { limit: 100, cursor });
    grants.push(...page.items);
    cursor = page.cursor;
  } while (cursor && grants.length < MAX_GRANTS);
  return grants;
}

const signInOff = () =>
  html(messagePage("Sign-in is off", "This gateway has no OWNER_PASSWORD, so it has no OAuth applications."), 404);
const notSignedIn = () => html(messagePage("Not signed in", "Open /grants and sign in again."), 403);
const formExpired = () => html(messagePage("Form expired", "Reload the page and try again."), 403);
