/**
 * A scripted HealthProber for unit tests of operations over the FakeRuntime:
 * every container is healthy unless a test says otherwise, and every call is
 * recorded, so no test probes real ports.
 */
import type { HealthPlan } from "../../src/health/plan.js";
import type { CheckResult, HealthProber, WaitResult } from "../../src/health/probe.js";

export class ScriptedProber implements HealthProber {
  /** Containers whose checks fail, with the output they give. */
  readonly failing = new Map<string, string>();
  readonly calls: { container: string; plan: HealthPlan }[] = [];

  check(plan: HealthPlan, container: string): Promise<CheckResult> {
    this.calls.push({ container, plan });
    const output = this.failing.get(container);
    return Promise.resolve(
      output === undefined ? { healthy: true, output: "ok" } : { healthy: false, output },
    );
  }

  async waitHealthy(plan: HealthPlan, container: string): Promise<WaitResult> {
    const result = await this.check(plan, container);
    return { ...result, attempts: 1, elapsedMs: 0 };
  }
}
