/**
 * May this node fetch a model from a peer now? The share policy (`[models] share_policy`) and
 * the free-disk check, as decisions over plain values so they are unit-tested without a disk.
 *
 * Pure.
 */

import type { FetchOrigin } from "../../protocol/api/pulls.js";
import type { HearthError } from "../../protocol/errors.js";
import { errors } from "../../protocol/errors.js";
import type { SharePolicy } from "../config/defaults.js";

export function fetchRefusal(policy: SharePolicy, origin: FetchOrigin, modelName: string): HearthError | undefined {
  if (policy === "always") return undefined;
  if (policy === "never") {
    return errors.modelFetchRefused(`this node does not fetch models from peers (models.share_policy = "never"); copy ${JSON.stringify(modelName.slice(0, 200))} into its models dir, or change the policy`, { param: "model" });
  }
  if (origin === "pull") return undefined;
  return errors.modelFetchRefused(`this node lacks the model and fetches from peers only when asked (models.share_policy = "ask"): run hearth pull ${modelName.slice(0, 200)} --from-peer`, { param: "model" });
}

/** Bytes still to arrive must fit, leaving the reserve free. */
export function diskSpaceRefusal(options: { freeBytes: number; totalBytes: number; presentBytes: number; reserveBytes: number }): HearthError | undefined {
  const missing = Math.max(0, options.totalBytes - options.presentBytes);
  if (options.freeBytes - missing >= options.reserveBytes) return undefined;
  return errors.insufficientDisk(`the model needs ${missing} more bytes and the models dir has ${options.freeBytes} free; models.disk_reserve_bytes keeps ${options.reserveBytes} free`,
  );
}
