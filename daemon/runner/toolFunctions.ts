/**
 * OpenAI tools and tool_choice -> node-llama-cpp functions, and tool calls back.
 *
 * tool_choice maps as follows:
 *   "none"            no functions are offered (the model only writes text);
 *   "auto"            all tools are offered and the model decides;
 *   "required"        all tools are offered and the first thing the model writes is a call:
 *                     the chat wrapper is told to open function-calling mode right after the
 *                     prompt (node-llama-cpp's `noPrefixTrigger: functionCall`), so its grammar
 *                     forces a function name and then parameters matching that tool's schema;
 *   {name}            as "required", with only the named tool offered.
 * A forced call is the first output; node-llama-cpp then returns the calls it parsed.
 */

import { randomBytes } from "node:crypto";
import type { ChatModelFunctions, ChatWrapper, ChatWrapperGeneratedContextState, LlamaChatResponseFunctionCall } from "node-llama-cpp";
import { LlamaText } from "node-llama-cpp";
import { errors } from "../../protocol/errors.js";
import type { ToolCall, ToolChoice, ToolDefinition } from "../../protocol/inference.js";
import { normalizeGrammarSchema } from "./jsonSchemaSupport.js";

export interface ToolPlan {
  /** Functions to offer, or undefined when none are. */
  functions: ChatModelFunctions | undefined;
  /** Whether the model must start its answer with a call. */
  forceCall: boolean;
}

export function planTools(tools: readonly ToolDefinition[], choice: ToolChoice): ToolPlan {
  if (choice === "none" || tools.length === 0) {
    if (typeof choice === "object") throw errors.invalidRequest(`tool_choice names "${choice.name}", but no tools were given.`, { param: "tool_choice" });
    if (choice === "required") throw errors.invalidRequest('tool_choice is "required", but no tools were given.', { param: "tool_choice" });
    return { functions: undefined, forceCall: false };
  }
  const offered = typeof choice === "object" ? tools.filter((tool) => tool.name === choice.name) : tools;
  if (typeof choice === "object" && offered.length === 0) {
    throw errors.invalidRequest(`tool_choice names "${choice.name}", which is not among the tools.`, { param: "tool_choice" });
  }
  const functions: Record<string, ChatModelFunctions[string]> = {};
  for (const tool of offered) {
    if (Object.hasOwn(functions, tool.name)) throw errors.invalidRequest(`Two tools are named "${tool.name}".`, { param: "tools" });
    const entry: { description?: string; params?: Record<string, unknown> } = {};
    if (tool.description !== undefined) entry.description = tool.description;
    if (tool.parameters !== undefined) entry.params = normalizeGrammarSchema(tool.parameters, "tools");
    // The cast bridges to node-llama-cpp's schema type; normalizeGrammarSchema checked the shape.
    functions[tool.name] = entry as ChatModelFunctions[string];
  }
  return { functions, forceCall: choice === "required" || typeof choice === "object" };
}

/**
 * `wrapper`, except that after the prompt the model is put straight into function-calling
 * mode. Delegates everything else to the original so the rendering stays identical.
 */
export function withForcedFunctionCall(wrapper: ChatWrapper): ChatWrapper {
  return new Proxy(wrapper, {
    get(target, property) {
      if (property === "generateContextState") {
        return (options: Parameters<ChatWrapper["generateContextState"]>[0]): ChatWrapperGeneratedContextState => {
          const state = target.generateContextState(options);
          // node-llama-cpp writes the call prefix itself when it enters function-name mode.
          return { ...state, prefixTriggers: undefined, noPrefixTrigger: { type: "functionCall", inject: LlamaText([]) } } as ChatWrapperGeneratedContextState;
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export function toToolCalls(calls: readonly LlamaChatResponseFunctionCall<ChatModelFunctions>[] | undefined): ToolCall[] {
  return (calls ?? []).map((call) => ({
    id: `call_${randomBytes(12).toString("base64url")}`,
    name: call.functionName,
    arguments: JSON.stringify(call.params ?? {}),
  }));
}
