/**
 * /v1/models bodies. Only what a client may see: never a filesystem path. In a daemon the list
 * is cluster-wide, one entry per file, and `hearth.sha256` / `hearth.nodes` say where it is.
 *
 * Pure: no I/O.
 */

/** The public facts about a model; the daemon's ModelDescriptor satisfies this. */
export interface PublicModelInfo {
  id: string;
  aliases: readonly string[];
  sizeBytes: number;
  createdAt: number;
  architecture?: string | undefined;
  parameterCount?: number | undefined;
  quantization?: string | undefined;
  contextLength?: number | undefined;
  /** Where the model is in the cluster (set by the router); absent outside a daemon. */
  cluster?: { sha256: string | null; nodes: ReadonlyArray<{ nodeId: string; modelId: string; loaded: boolean }> } | undefined;
}

export interface ModelNodeEntry {
  nodeId: string;
  /** The id that node knows the file by. */
  modelId: string;
  loaded: boolean;
}

export interface OpenAiModelObject {
  id: string;
  object: "model";
  created: number;
  owned_by: "hearth";
  hearth: {
    size_bytes: number;
    architecture: string | null;
    parameter_count: number | null;
    quantization: string | null;
    context_length: number | null;
    aliases: string[];
    /** The file's SHA-256 (null until hashed); the list holds one entry per file. */
    sha256?: string | null;
    /** Every reachable node holding the file. */
    nodes?: ModelNodeEntry[];
  };
}

export interface ModelListBody {
  object: "list";
  data: OpenAiModelObject[];
}

export function buildModelObject(model: PublicModelInfo): OpenAiModelObject {
  const object: OpenAiModelObject = {
    id: model.id,
    object: "model",
    created: model.createdAt,
    owned_by: "hearth",
    hearth: {
      size_bytes: model.sizeBytes,
      architecture: model.architecture ?? null,
      parameter_count: model.parameterCount ?? null,
      quantization: model.quantization ?? null,
      context_length: model.contextLength ?? null,
      aliases: [...model.aliases],
    },
  };
  if (model.cluster !== undefined) {
    object.hearth.sha256 = model.cluster.sha256;
    object.hearth.nodes = model.cluster.nodes.map((node) => ({ nodeId: node.nodeId, modelId: node.modelId, loaded: node.loaded }));
  }
  return object;
}

export function buildModelList(models: readonly PublicModelInfo[]): ModelListBody {
  return { object: "list", data: models.map(buildModelObject) };
}
