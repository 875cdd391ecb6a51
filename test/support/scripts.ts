/**
 * Scripts of the scripted synthetic models (daemon/gguf/scriptedModel.ts) the tests use, and
 * the tools they call. Whatever a conversation says, such a model answers with its script, so
 * tests assert exact thoughts, calls and text.
 *
 * A tool call is written as node-llama-cpp renders it back (`{"name": "…", "arguments": {…}}`
 * with the wrapper's closing `}`), because it re-evaluates that rendering while parsing the
 * call; the model must agree with it token for token.
 *
 * The LLAMA3_ scripts are for the llama3 family (`family: "llama3"`), whose chat wrapper is
 * node-llama-cpp's Llama3_1ChatWrapper: no thoughts, and a call rendered as
 * `<function=name>{…}</function><|eom_id|>`. That wrapper has no parallel calls (node-llama-cpp
 * ends the turn after the first), so a llama3 script makes one call.
 */

import type { ToolDefinition } from "../../protocol/inference.js";

export const THOUGHT = "The user wants weather and time.";

/** Thinks, then calls get_weather and get_time in parallel. */
export const THINK_THEN_CALL_TWO_TOOLS = [
  `<think>\n${THOUGHT}\n</think>\n\n`,
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n',
  '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call><|im_end|>',
].join("");

export const ANSWER = "It is sunny in Paris today.";

/** Thinks, then answers in text. */
export const THINK_THEN_ANSWER = `<think>\n${THOUGHT}\n</think>\n\n${ANSWER}<|im_end|>`;

/** Llama 3.1: answers in text, then ends the turn. */
export const LLAMA3_ANSWER = `${ANSWER}<|eot_id|>`;

/** Llama 3.1: calls get_weather, as Llama3_1ChatWrapper renders the call. */
export const LLAMA3_CALL_WEATHER = '<function=get_weather>{"city": "Paris"}</function><|eom_id|>';

export const WEATHER_TOOLS: ToolDefinition[] = [
  { name: "get_weather", description: "The weather in a city.", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
  { name: "get_time", description: "The time in a time zone.", parameters: { type: "object", properties: { zone: { type: "string" } }, required: ["zone"] } },
];
