/**
 * Cancels work when the client goes away.
 *
 * A closed connection before the response finished means nobody will read the answer, so
 * the engine is told (through the AbortSignal) to drop the job wherever it is: queued,
 * loading or generating. That frees the slot for clients that are still there.
 */

import type { ServerResponse } from "node:http";

export function abortOnClientDisconnect(res: ServerResponse): AbortController {
  const controller = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort();
  };
  res.once("close", onClose);
  return controller;
}
