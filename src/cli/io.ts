/**
 * Where a command writes. Its own module so program.ts needs nothing of
 * context.ts (which loads gRPC) to print help or a failure.
 */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

export const processIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};
