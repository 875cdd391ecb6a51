/**
 * Reads an OpenAI-style SSE response (`data: {...}` events ending with `data: [DONE]`), or an
 * NDJSON one, and timestamps each event, so tests can check framing and benchmarks can time tokens.
 */

export interface SseEvent {
  /** performance.now() when the event was parsed. */
  at: number;
  /** Parsed JSON payload, or the string "[DONE]". */
  data: unknown;
}

export async function* readSse(response: Response): AsyncGenerator<SseEvent> {
  for await (const block of records(response, "\n\n")) {
    const dataLines = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart());
    if (dataLines.length === 0) continue; // comments such as ": keepalive"
    const text = dataLines.join("\n");
    yield { at: performance.now(), data: text === "[DONE]" ? "[DONE]" : JSON.parse(text) };
  }
}

/** An NDJSON response (Ollama's streams), each line parsed and timestamped like readSse's events. */
export async function* readNdjson(response: Response): AsyncGenerator<SseEvent> {
  for await (const line of records(response, "\n")) {
    if (line.trim() !== "") yield { at: performance.now(), data: JSON.parse(line) };
  }
}

/** The body's text cut at each `delimiter`, as soon as each piece has arrived. */
async function* records(response: Response, delimiter: string): AsyncGenerator<string> {
  if (!response.body) throw new Error("response has no body");
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let boundary: number;
    while ((boundary = buffer.indexOf(delimiter)) !== -1) {
      yield buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + delimiter.length);
    }
  }
}
