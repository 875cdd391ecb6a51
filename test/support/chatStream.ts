/**
 * A Chat Completions stream through the official openai client, and what its chunks add up
 * to as a client assembles them: text, thoughts (`reasoning_content`), each tool call's name
 * and arguments concatenated by index, and the last finish reason.
 */

import type OpenAI from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";

export interface AssembledChat {
  content: string;
  reasoning: string;
  calls: [string, string][];
  finish: string | null;
}

export async function streamedChat(client: OpenAI, body: OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of await client.chat.completions.create(body)) chunks.push(chunk);
  return chunks;
}

export function assembleChat(chunks: readonly ChatCompletionChunk[]): AssembledChat {
  let content = "";
  let reasoning = "";
  const calls: [string, string][] = [];
  let finish: string | null = null;
  for (const chunk of chunks) {
    const choice = chunk.choices[0];
    if (choice === undefined) continue;
    const delta = choice.delta as typeof choice.delta & { reasoning_content?: string };
    content += delta.content ?? "";
    reasoning += delta.reasoning_content ?? "";
    for (const call of delta.tool_calls ?? []) {
      const [name, args] = calls[call.index] ?? ["", ""];
      calls[call.index] = [name + (call.function?.name ?? ""), args + (call.function?.arguments ?? "")];
    }
    finish = choice.finish_reason ?? finish;
  }
  return { content, reasoning, calls, finish };
}
