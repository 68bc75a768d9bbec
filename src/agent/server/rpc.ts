/**
 * McpErrors ↔ gRPC statuses. Handlers are plain async functions of the
 * request; `unary` adapts them to grpc-js, and a failure answers with the
 * error's one-line message as details and its McpError code in a trailer, so
 * the CLI can rebuild the same error.
 */
import { Metadata, status, type handleUnaryCall, type ServerErrorResponse } from "@grpc/grpc-js";
import { ERROR_CODE_KEY } from "../../protocol/wire.js";
import { McpError, type McpErrorCode, errorMessage } from "../../util/errors.js";

const STATUS_FOR: Record<McpErrorCode, status> = {
  invalid_definition: status.INVALID_ARGUMENT,
  invalid_config: status.INVALID_ARGUMENT,
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  failed_precondition: status.FAILED_PRECONDITION,
  step_failed: status.ABORTED,
  runtime: status.INTERNAL,
  ports_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  timed_out: status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
};

export function toServiceError(err: unknown): ServerErrorResponse {
  const code: McpErrorCode = err instanceof McpError ? err.code : "internal";
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, code);
  const details = errorMessage(err);
  return Object.assign(new Error(details), { code: STATUS_FOR[code], details, metadata });
}

export function unary<Req, Res>(fn: (req: Req) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err)),
    );
  };
}
