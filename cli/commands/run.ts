/**
 * `hearth run MODEL PROMPT`: one chat turn against the running daemon.
 *
 * Tokens stream to stdout as the daemon's /v1/chat/completions SSE delivers them; --json
 * instead prints the final chat.completion object for scripts. Ctrl-C closes the request,
 * which cancels the generation on the daemon, and exits 130.
 */

import type { Command } from "commander";
import { errors } from "../../protocol/errors.js";
import { type DaemonClient, daemonClientFor, OPENAI_BODY } from "../client.js";
import type { LocalMachine } from "../localMachine.js";
import { addClientOptions, parseInteger, parsePositiveInt, parseTemperature, type ClientCommandOptions } from "../options.js";
import { EXIT_INTERRUPTED, printJson } from "../output.js";

interface RunOptions extends ClientCommandOptions {
  system?: string;
  maxTokens?: number;
  temperature?: number;
  seed?: number;
}

export function registerRunCommand(program: Command, machine: LocalMachine): void {
  addClientOptions(
    program
      .command("run")
      .description("send one prompt to a model on the running daemon and stream the answer")
      .argument("<model>", "model id or alias (see: hearth models)")
      .argument("[prompt]", 'the user message; "-" or omitted reads it from stdin')
      .option("--system <text>", "system message")
      .option("--max-tokens <n>", "stop after this many generated tokens", parsePositiveInt)
      .option("--temperature <t>", "sampling temperature, 0 is greedy (0-2)", parseTemperature)
      .option("--seed <n>", "sampling seed, for repeatable output", parseInteger)
      .option("--json", "print the final chat.completion object instead of streaming text"),
  ).action((model: string, prompt: string | undefined, options: RunOptions) => run(machine, model, prompt, options));
}

async function run(machine: LocalMachine, model: string, promptArgument: string | undefined, options: RunOptions): Promise<void> {
  const prompt = await resolvePrompt(promptArgument);
  const client = await daemonClientFor(machine, options);

  const messages = [...(options.system !== undefined ? [{ role: "system", content: options.system }] : []), { role: "user", content: prompt }];
  const body: Record<string, unknown> = { model, messages };
  if (options.maxTokens !== undefined) body["max_tokens"] = options.maxTokens;
  if (options.temperature !== undefined) body["temperature"] = options.temperature;
  if (options.seed !== undefined) body["seed"] = options.seed;

  const controller = new AbortController();
  const onSigint = () => {
    controller.abort();
    process.exitCode = EXIT_INTERRUPTED;
  };
  process.once("SIGINT", onSigint);
  try {
    if (options.json) {
      printJson(await client.postJson("/v1/chat/completions", { ...body, stream: false }, OPENAI_BODY, { signal: controller.signal }));
      return;
    }
    await streamText(client, body, controller.signal);
  } catch (error) {
    if (controller.signal.aborted) return; // Ctrl-C: exit 130, no error line.
    throw error;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

async function streamText(client: DaemonClient, body: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  let endsWithNewline = true;
  for await (const chunk of client.postEventStream("/v1/chat/completions", { ...body, stream: true }, { signal })) {
    const choices = (chunk as { choices?: { delta?: { content?: unknown } }[] }).choices ?? [];
    const content = choices[0]?.delta?.content;
    if (typeof content === "string" && content !== "") {
      process.stdout.write(content);
      endsWithNewline = content.endsWith("\n");
    }
  }
  // A prompt left on the same line as the answer is confusing at a terminal; pipes get the text exactly.
  if (process.stdout.isTTY && !endsWithNewline) process.stdout.write("\n");
}

async function resolvePrompt(argument: string | undefined): Promise<string> {
  if (argument !== undefined && argument !== "-") return argument;
  if (process.stdin.isTTY) {
    throw errors.cliUsage('missing prompt: pass it as an argument, or pipe it in with "-"');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") throw errors.cliUsage("the prompt read from stdin is empty");
  return text;
}
