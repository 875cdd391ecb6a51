/**
 * `hearth plan MODEL [--json]`: how the daemon would place a model now (docs/splitting.md),
 * whole or split, on which nodes with how many layers, the memory each needs and the
 * predicted tokens/s, without loading anything (GET /hearth/v1/plan). A refusal prints its
 * numbers and exits 1.
 */

import type { Command } from "commander";
import { planReportSchema } from "../../protocol/api/plan.js";
import { daemonClientFor } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import { addClientOptions, type ClientCommandOptions } from "../options.js";
import { printJson } from "../output.js";
import { stageLines } from "../placementLines.js";

export function registerPlanCommand(program: Command, machine: LocalMachine): void {
  addClientOptions(
    program
      .command("plan")
      .argument("<model>", "model id or alias (held by the daemon's node)")
      .description("show how the cluster would place a model (whole or split by layers) without loading it")
      .option("--json", "print the plan report as JSON"),
  ).action((model: string, options: ClientCommandOptions) => plan(machine, model, options));
}

async function plan(machine: LocalMachine, model: string, options: ClientCommandOptions): Promise<void> {
  const client = await daemonClientFor(machine, options);
  const report = await client.getJson(`/hearth/v1/plan?model=${encodeURIComponent(model)}`, planReportSchema);
  const result = report.plan;
  if (options.json) printJson(report);
  else {
    const out: string[] = [];
    if (!result.ok) out.push(`does not fit: ${result.message}`);
    else if (result.split) {
      out.push(`${report.model}: split, predicted ${result.predictedTokensPerSecond} tok/s`, `  ${result.reason}`);
      for (const line of stageLines(result.stages)) out.push(`  ${line}`);
      for (const left of result.leftOut) out.push(`  left out ${left.nodeId.split("-")[0]}: ${left.why}`);
    } else {
      out.push(`${report.model}: whole on ${result.node.split("-")[0]}, predicted ${result.predictedTokensPerSecond} tok/s`, `  ${result.reason}`);
    }
    // What a request for the model would get now, and why (the router's decision).
    const { decision } = report;
    const where = decision.kind === "refused" ? "refused" : `${decision.kind}${decision.nodeId === null ? "" : ` on ${decision.nodeId.split("-")[0]}`}`;
    out.push(`a request now: ${where}`, ...decision.reasons.map((reason) => `  ${reason}`));
    process.stdout.write(`${out.join("\n")}\n`);
  }
  if (!result.ok) process.exitCode = 1;
}
