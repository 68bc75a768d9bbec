/**
 * The bearer-token check applied to every RPC (reference §1.3, DESIGN "Security").
 *
 * It is a grpc-js server interceptor, installed once in the Server's
 * constructor by startAgentServer: interceptors run for every method, unary and
 * streaming alike, before the handler is even created, so no handler can be
 * registered without it and none can forget it. The decision itself
 * (`authorize`) is a plain function so it is testable without a server.
 *
 * - no / malformed `authorization: Bearer <token>` → UNAUTHENTICATED
 * - unknown token → UNAUTHENTICATED
 * - role `guest` → PERMISSION_DENIED
 * - anything else → the call proceeds; the caller is logged with the method
 *   (audit) and handed to the handler in metadata (see callerIdentity).
 */
import { Metadata, ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "../util/log.js";
import type { Identity, TokenValidator } from "./tokens.js";

export type AuthDecision =
  | { ok: true; identity: Identity }
  | {
      ok: false;
      code: status.UNAUTHENTICATED | status.PERMISSION_DENIED;
      reason: string;
      identity?: Identity;
    };

/** Metadata keys the guard sets for handlers after a successful check. */
export const IDENTITY_NAME_KEY = "x-mcp-identity";
export const IDENTITY_ROLE_KEY = "x-mcp-role";

const BEARER = /^Bearer +([A-Za-z0-9._~+/=-]+)$/i;

/** The token from `authorization: Bearer <token>`, or a reason why there is none. */
export function bearerToken(md: Metadata): { token: string } | { reason: string } {
  const values = md.get("authorization");
  if (values.length === 0) {
    return { reason: 'missing "authorization: Bearer <token>" metadata' };
  }
  const [value] = values;
  if (values.length > 1 || typeof value !== "string") {
    return { reason: "malformed authorization metadata (expected one Bearer token)" };
  }
  const m = BEARER.exec(value.trim());
  if (!m?.[1]) return { reason: 'malformed authorization metadata (expected "Bearer <token>")' };
  return { token: m[1] };
}

/** Decides whether a call with this metadata may proceed. */
export async function authorize(md: Metadata, validator: TokenValidator): Promise<AuthDecision> {
  const bearer = bearerToken(md);
  if ("reason" in bearer) return { ok: false, code: status.UNAUTHENTICATED, reason: bearer.reason };
  const identity = await validator.validate(bearer.token);
  if (!identity) {
    return { ok: false, code: status.UNAUTHENTICATED, reason: "unknown or revoked token" };
  }
  if (identity.role === "guest") {
    return {
      ok: false,
      code: status.PERMISSION_DENIED,
      reason: `${identity.name} has role guest, which may not use the agent`,
      identity,
    };
  }
  return { ok: true, identity };
}

/** The authenticated caller of a call, as set by the guard (undefined if it did not run). */
export function callerIdentity(md: Metadata): Identity | undefined {
  const [name] = md.get(IDENTITY_NAME_KEY);
  const [role] = md.get(IDENTITY_ROLE_KEY);
  if (typeof name !== "string" || typeof role !== "string") return undefined;
  return { name, role };
}

/** The server interceptor enforcing `authorize` on every call. */
export function authInterceptor(validator: TokenValidator, logger: Logger): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          // Holding back `mdNext` holds back the handler: grpc-js queues the
          // request message and half-close until metadata is passed on, and
          // never delivers them if we end the call instead.
          onReceiveMetadata: (md, mdNext) => {
            const audit = { method: method.path, peer: call.getPeer() };
            authorize(md, validator).then(
              (decision) => {
                if (!decision.ok) {
                  logger.warn(
                    { ...audit, caller: decision.identity?.name, reason: decision.reason },
                    "rpc rejected",
                  );
                  call.sendStatus({ code: decision.code, details: decision.reason });
                  return;
                }
                logger.info(
                  { ...audit, caller: decision.identity.name, role: decision.identity.role },
                  "rpc",
                );
                // Handlers see who called, never the secret; `set` also
                // overwrites any identity keys a client tried to send itself.
                md.remove("authorization");
                md.set(IDENTITY_NAME_KEY, decision.identity.name);
                md.set(IDENTITY_ROLE_KEY, decision.identity.role);
                mdNext(md);
              },
              (err: unknown) => {
                logger.error({ ...audit, err }, "token validation failed");
                call.sendStatus({ code: status.INTERNAL, details: "token validation failed" });
              },
            );
          },
        });
      },
    });
}
