/**
 * The owner's pages (sign-in, consent, connected applications): server-rendered, no scripts,
 * every client-supplied string escaped, and headers that forbid framing and any resource from
 * elsewhere.
 */
import { csrfCookie, newCsrfToken } from "./owner";

export const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'",
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
};

/** An HTML response with the security headers; `extra` may add headers and cookies. */
export function html(body: string, status = 200, extra?: HeadersInit): Response {
  const headers = new Headers({ ...SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8" });
  // The provider's consent headers repeat some of ours: one value each, but every cookie.
  const more = new Headers(extra);
  for (const cookie of more.getSetCookie()) headers.append("Set-Cookie", cookie);
  for (const [name, value] of more) if (name.toLowerCase() !== "set-cookie") headers.set(name, value);
  return new Response(body, { status, headers });
}

/** The login form, leading to `next` after a successful sign-in (with its double-submit CSRF cookie). */
export function signInPage(next: string): Response {
  const csrf = newCsrfToken();
  return html(loginPage({ csrf, next }), 200, { "Set-Cookie": csrfCookie(csrf) });
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem}.error{color:#b00020}.box{border:1px solid #ddd;border-radius:8px;padding:1rem 1.25rem}
button{font:inherit;padding:.5rem 1rem;margin-right:.5rem}ul.grants{padding:0;list-style:none}
ul.grants li{border-top:1px solid #eee;padding:.5rem 0}.muted{color:#666;font-size:.9rem}input[type=password]{font:inherit;width:100%;padding:.4rem;box-sizing:border-box}
code{background:#f4f4f4;padding:0 .2rem}label{display:block;margin:.25rem 0}`;

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${body}</body></html>`;
}

export function loginPage(options: { csrf: string; next: string; error?: string }): string {
  return page(
    "Sign in · ComfyUI gateway",
    `<h1>Sign in to your ComfyUI gateway</h1>
<div class="box"><form method="post" action="/login">
${options.error ? `<p class="error">${escapeHtml(options.error)}</p>` : ""}
<label for="password">Owner password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="csrf" value="${escapeHtml(options.csrf)}">
<input type="hidden" name="next" value="${escapeHtml(options.next)}">
<p><button type="submit">Sign in</button></p>
</form></div>`,
  );
}

export const SCOPE_TEXT: Record<string, string> = {
  generate: "generate images, audio and video on your GPU, and see your assets and jobs",
  publish: "publish your assets to your R2 bucket (public web)",
  admin: "change your generation defaults",
};

export function consentPage(options: {
  clientName: string;
  clientId: string;
  redirectHost: string;
  scopes: string[];
  handle: string;
}): string {
  const scopes = options.scopes
    .map(
      (scope) =>
        `<label><input type="checkbox" name="scope" value="${escapeHtml(scope)}" checked> <code>${escapeHtml(scope)}</code>: ${escapeHtml(SCOPE_TEXT[scope] ?? scope)}</label>`,
    )
    .join("\n");
  return page(
    "Allow access · ComfyUI gateway",
    `<h1>Allow <span class="client">${escapeHtml(options.clientName)}</span> to use your ComfyUI?</h1>
<div class="box"><form method="post" action="/authorize/consent">
<p>It will be sent back to <strong>${escapeHtml(options.redirectHost)}</strong> (client id <code>${escapeHtml(options.clientId)}</code>).</p>
<p>It asks to:</p>
${scopes || "<p>(no specific permissions)</p>"}
<input type="hidden" name="handle" value="${escapeHtml(options.handle)}">
<p><button type="submit" name="decision" value="approve">Allow</button><button type="submit" name="decision" value="deny">Deny</button></p>
</form></div>
<p class="muted">You can see and revoke the applications you allowed at <a href="/grants">/grants</a>.</p>`,
  );
}

export interface GrantRow {
  id: string;
  clientId: string;
  clientName: string;
  scopes: string[];
  createdAt: number;
}

/** The signed-in owner's connected applications, each with a Revoke button, and Sign out. */
export function grantsPage(options: { grants: GrantRow[]; csrf: string; notice?: string }): string {
  const csrf = `<input type="hidden" name="csrf" value="${escapeHtml(options.csrf)}">`;
  const rows = options.grants
    .map(
      (
        grant,
      ) => `<li><strong>${escapeHtml(grant.clientName)}</strong> <span class="muted">(client id <code>${escapeHtml(grant.clientId)}</code>)</span><br>
may ${grant.scopes.length ? grant.scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(", ") : "nothing"}; allowed ${escapeHtml(new Date(grant.createdAt * 1000).toISOString().slice(0, 16).replace("T", " "))} UTC
<form method="post" action="/grants/revoke">${csrf}<input type="hidden" name="grant" value="${escapeHtml(grant.id)}">
<button type="submit">Revoke</button></form></li>`,
    )
    .join("\n");
  return page(
    "Connected applications · ComfyUI gateway",
    `<h1>Applications with access to your ComfyUI</h1>
${options.notice ? `<p>${escapeHtml(options.notice)}</p>` : ""}
<div class="box">${rows ? `<ul class="grants">${rows}</ul>` : "<p>No application has access.</p>"}</div>
<p class="muted">Revoking ends the application's access at once; it must ask you again to come back.
Static tokens (MCP_TOKENS) are not listed: remove them from the secret instead.</p>
<form method="post" action="/logout">${csrf}<button type="submit">Sign out</button></form>`,
  );
}

export function messagePage(title: string, message: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1><p class="error">${escapeHtml(message)}</p>`);
}
