/**
 * The sign-in guard: one Durable Object for the whole gateway that counts failed sign-ins and
 * failed bearer tokens atomically (a KV read-then-write lets a parallel burst through).
 */
import { DurableObject } from "cloudflare:workers";

export class Guard extends DurableObject<Env> {}
