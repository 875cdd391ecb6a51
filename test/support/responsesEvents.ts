/**
 * The event types of an OpenAI Responses stream, in order, with each run of deltas collapsed
 * to one (their number follows the tokenizer), for a response made of these output items:
 * what tests compare a stream's structure with.
 */

export interface ResponseItems {
  /** A reasoning item first. */
  reasoning?: boolean;
  /** Then a message with one output_text part. */
  text?: boolean;
  /** Then this many function calls. */
  calls?: number;
}

export function responseEventTypes({ reasoning = false, text = false, calls = 0 }: ResponseItems): string[] {
  const part = (delta: string): string[] => ["response.output_item.added", "response.content_part.added", `${delta}.delta`, `${delta}.done`, "response.content_part.done", "response.output_item.done"];
  const call = ["response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done"];
  return [
    "response.created",
    "response.in_progress",
    ...(reasoning ? part("response.reasoning_text") : []),
    ...(text ? part("response.output_text") : []),
    ...Array.from({ length: calls }, () => call).flat(),
    "response.completed",
  ];
}
