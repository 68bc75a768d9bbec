/**
 * Fuzzing parseServiceDef, validateServiceDef and validateServiceSpec with
 * generated inputs (test/helpers/servicedef-fuzz.ts): random bytes, token
 * soup, mutated example files, hostile definitions (huge strings, "-"
 * prefixes, NUL, unicode, huge, negative and fractional numbers, deep
 * nesting, duplicate keys), plain objects and random ServiceSpecs.
 *
 * Asserted for every case: no crash (every refusal is a ValidationError with
 * code invalid_definition, or a list of problems), every problem has a
 * line:col, a field path, or concerns the whole file (its size), no problem
 * line is long (echoed values are cut short), accepted definitions
 * round-trip and give containers podman can create (a create body without
 * NUL, an env and command execve takes); and no case is slow: the cases
 * run in a worker, so one that never returns is named, not waited for.
 *
 * Reproduce: FUZZ_SEED=<seed> [FUZZ_CASES=<n>] [FUZZ_ONLY=<index>] node --import tsx --test test/unit/servicedef-fuzz.test.ts
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import {
  makeCase,
  preview,
  runCase,
  type FuzzJob,
  type FuzzReport,
} from "../helpers/servicedef-fuzz.js";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed2024);
const CASES = Number(process.env.FUZZ_CASES ?? 2500);
const ONLY = process.env.FUZZ_ONLY;
/** The slowest single case may take this long (a 1 MiB definition takes ~20 ms). */
const CASE_BOUND_MS = 1000;
/** All cases together, worker start-up included. */
const TOTAL_BOUND_MS = 20_000;
/** A case running this long is taken as a hang (the worker is stopped). */
const HANG_MS = 5_000;

const reproduce = (index?: number) =>
  `FUZZ_SEED=${SEED}${index === undefined ? "" : ` FUZZ_ONLY=${index}`} node --import tsx --test test/unit/servicedef-fuzz.test.ts`;

/** Starts the helper as a worker thread, with tsx's loader registered first. */
function startWorker(job: FuzzJob): Worker {
  const api = import.meta.resolve("tsx/esm/api");
  const entry = new URL("../helpers/servicedef-fuzz.ts", import.meta.url).href;
  const boot = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(entry)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), {
    workerData: job,
  });
}

/** Why the worker was stopped: a case that ran too long, named with how to reproduce it. */
function stuck(job: FuzzJob, index: number, why: string): Error {
  const input = makeCase(job.seed, index);
  return new Error(
    `${why}: stuck at case ${index} (${input.generator}: ${preview(input)}); reproduce: ${reproduce(index)}`,
  );
}

function runInWorker(job: FuzzJob): Promise<FuzzReport> {
  const progress = new Int32Array(job.progress);
  const worker = startWorker(job);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let current = -1;
    let since = Date.now();
    const stop = (err: Error) => {
      clearInterval(poll);
      void worker.terminate();
      reject(err);
    };
    // A case that never returns blocks the worker, not this thread: watch its progress.
    const poll = setInterval(() => {
      const index = Atomics.load(progress, 0);
      if (index !== current) [current, since] = [index, Date.now()];
      else if (Date.now() - since > HANG_MS)
        stop(stuck(job, index, `no progress for ${HANG_MS} ms`));
      if (Date.now() - started > TOTAL_BOUND_MS) {
        stop(stuck(job, index, `fuzzing did not finish in ${TOTAL_BOUND_MS} ms`));
      }
    }, 100);
    worker.once("message", (report: FuzzReport) => {
      clearInterval(poll);
      void worker.terminate();
      resolve(report);
    });
    worker.once("error", (err) => stop(err));
  });
}

if (ONLY !== undefined) {
  test(`fuzz case ${ONLY} of seed ${SEED}`, () => {
    const input = makeCase(SEED, Number(ONLY));
    console.log(`${input.generator}: ${preview(input)}`);
    console.log(runCase(input));
  });
} else {
  test(`${CASES} generated definitions: no crash, no hang, every problem placed (seed ${SEED})`, async () => {
    const job: FuzzJob = {
      fuzz: true,
      seed: SEED,
      cases: CASES,
      progress: new SharedArrayBuffer(4),
    };
    const report = await runInWorker(job);
    const failures = report.failures.map(
      (f) =>
        `case ${f.index} (${f.generator}): ${f.error}\n  input: ${f.input}\n  reproduce: ${reproduce(f.index)}`,
    );
    assert.deepEqual(failures, [], `seed ${SEED}:\n${failures.join("\n")}`);
    assert.equal(report.cases, CASES);
    assert.ok(
      report.slowestMs <= CASE_BOUND_MS,
      `case ${report.slowestCase} took ${report.slowestMs.toFixed(0)} ms (bound ${CASE_BOUND_MS} ms); reproduce: ${reproduce(report.slowestCase)}`,
    );
    // Every generator ran, and some inputs got through to the accepted-definition checks.
    assert.deepEqual(Object.keys(report.byGenerator).sort(), [
      "deep nesting",
      "hostile definition",
      "mutated file",
      "plain object",
      "random bytes",
      "random spec",
      "token soup",
      "valid definition",
    ]);
    assert.ok(report.accepted >= CASES / 20, `only ${report.accepted} inputs were accepted`);
    console.log(
      `fuzz seed ${SEED}: ${report.cases} cases, ${report.accepted} accepted, slowest ${report.slowestMs.toFixed(1)} ms (case ${report.slowestCase}), total ${report.totalMs.toFixed(0)} ms`,
    );
  });
}
