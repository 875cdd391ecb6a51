/**
 * The seam between routing and model sharing (daemon/sharing/ implements it): when this node
 * must run a model it does not have, a provider may fetch the file from a peer. Without one,
 * such a job fails with HEARTH_MODEL_NOT_FOUND.
 */

export interface LocalModelProvider {
  /** Makes the model with this sha256 present locally (fetching it from a peer if policy allows); returns the local model id. */
  ensureLocal(request: { sha256: string; modelName: string; signal: AbortSignal }): Promise<string>;
}
