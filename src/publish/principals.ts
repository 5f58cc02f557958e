/**
 * Whose published file is whose. Every object a principal writes records it in R2 custom metadata
 * (`principal`); objects written before that (no principal recorded) belong to the owner.
 *
 * Key layout: the owner keeps the URLs it always had (`<prefix><name>`, `PUBLISH_MANIFEST_KEY`);
 * any other principal publishes under `<prefix>users/<principal>/` with its own
 * `<prefix>users/<principal>/manifest.json`. This cannot collide: published names never contain a
 * slash (target_filename and library names are `[a-z0-9._-]`), so no owner key can fall inside
 * `users/…/` and no principal's key can be an owner key; principal names are `[A-Za-z0-9_-]`
 * (MCP_TOKENS), so one principal's folder is never inside another's. User folders sit under the
 * publish prefix, so the gateway's `/published/` route and a bucket's custom domain serve them as
 * they serve the owner's files.
 */
import { OWNER } from "../auth/owner";
import { type PublishConfig, PublishError } from "./bucket";

const USERS_FOLDER = "users/";
const MANIFEST_NAME = "manifest.json";
const PRINCIPAL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** One principal's corner of the bucket. */
export interface Namespace {
  principal: string;
  /** Keys of this principal's files start with this; the rest of the key is a plain name. */
  prefix: string;
  manifestKey: string;
}

export function namespaceOf(config: PublishConfig, principal: string): Namespace {
  if (principal === OWNER) return { principal, prefix: config.prefix, manifestKey: config.manifestKey };
  if (!PRINCIPAL_NAME.test(principal))
    throw new PublishError(
      "PUBLISH_NOT_AVAILABLE",
      "Publishing needs a user name of letters, digits, '_' and '-' (as in MCP_TOKENS); connect with such a token.",
    );
  const prefix = `${config.prefix}${USERS_FOLDER}${principal}/`;
  return { principal, prefix, manifestKey: `${prefix}${MANIFEST_NAME}` };
}

/** A file of this namespace: directly inside its prefix (a user's folder is not the owner's file). */
export function inNamespace(namespace: Namespace, key: string): boolean {
  return (
    key.startsWith(namespace.prefix) &&
    key.length > namespace.prefix.length &&
    !key.slice(namespace.prefix.length).includes("/")
  );
}

/** Any principal's manifest: never listed as a file, never deleted by unpublish, never a publish target. */
export function isManifestKey(config: PublishConfig, key: string): boolean {
  if (key === config.manifestKey) return true;
  if (!key.startsWith(`${config.prefix}${USERS_FOLDER}`)) return false;
  const [principal, name, ...rest] = key.slice(config.prefix.length + USERS_FOLDER.length).split("/");
  return rest.length === 0 && name === MANIFEST_NAME && PRINCIPAL_NAME.test(principal ?? "");
}
