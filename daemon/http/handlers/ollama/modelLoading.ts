/**
 * A request with nothing to run (no messages, no prompt, no input) loads its model on this
 * node, or with `keep_alive: 0` unloads it, as Ollama does. A model only a peer holds is left
 * to that peer, which loads it on first use.
 */

import { abortOnClientDisconnect } from "../../clientDisconnect.js";
import type { RequestContext } from "../../context.js";
import { localModelId, localModelsOf, resolveOllamaModel } from "./modelNames.js";

export async function loadOrUnload(context: RequestContext, model: string, keepAliveMs: number | undefined): Promise<"load" | "unload"> {
  const resolved = await resolveOllamaModel(context.services.engine, model);
  const localModels = localModelsOf(context);
  const localId = await localModelId(localModels, resolved.name);
  if (keepAliveMs === 0) {
    if (localId !== undefined) await localModels.unload(localId);
    return "unload";
  }
  if (localId !== undefined) {
    const cancel = abortOnClientDisconnect(context.res);
    await localModels.load(localId, { signal: cancel.signal, ...(keepAliveMs === undefined ? {} : { keepAliveMs }) });
  }
  return "load";
}
