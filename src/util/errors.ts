/**
 * Typed errors. Every error MCP raises on purpose is an McpError with a stable
 * `code`, so callers (gRPC handlers, the CLI) can map it to a status or an exit
 * code without parsing messages.
 */
export type McpErrorCode =
  | "invalid_definition" // a service definition failed to parse or validate
  | "invalid_config" // an agent or CLI config file is wrong
  | "invalid_argument" // a request or command argument is wrong
  | "not_found" // an unknown service, component, node, file
  | "failed_precondition" // the request is valid but the state forbids it
  | "step_failed" // a deploy/lifecycle step failed (see StepError)
  | "runtime" // podman failed
  | "ports_exhausted" // the allocator found no free port
  | "unavailable" // a node could not be reached, or did not answer while connecting
  | "timed_out" // a call's deadline passed before its answer: what it asked for may still be happening
  | "internal";

export class McpError extends Error {
  readonly code: McpErrorCode;
  constructor(code: McpErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "McpError";
    this.code = code;
  }
}

/** One problem found in a definition or config file. */
export interface Problem {
  /** Field path such as `components[1].routes[0].mode`, or "" for the whole file. */
  path: string;
  message: string;
  /** 1-based position, for syntax errors. */
  line?: number;
  column?: number;
}

/** Formats a problem as `file:line:col: message` or `file: path: message`. */
export function formatProblem(file: string, p: Problem): string {
  if (p.line !== undefined) return `${file}:${p.line}:${p.column ?? 1}: ${p.message}`;
  return p.path ? `${file}: ${p.path}: ${p.message}` : `${file}: ${p.message}`;
}

/** A file (definition or config) with every problem found in it. */
export class ValidationError extends McpError {
  readonly file: string;
  readonly problems: Problem[];
  constructor(code: "invalid_definition" | "invalid_config", file: string, problems: Problem[]) {
    super(code, problems.map((p) => formatProblem(file, p)).join("\n"));
    this.name = "ValidationError";
    this.file = file;
    this.problems = problems;
  }
}

/** A named step of a deploy or lifecycle operation failed. */
export class StepError extends McpError {
  readonly step: string;
  constructor(step: string, reason: string, options?: { cause?: unknown }) {
    super("step_failed", `${step}: ${reason}`, options);
    this.name = "StepError";
    this.step = step;
  }
}

/** The message of any thrown value, for logs and one-line CLI reasons. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
