/**
 * /v1/models bodies. Only what a client may see: never a filesystem path.
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
  };
}

export interface ModelListBody {
  object: "list";
  data: OpenAiModelObject[];
}

export function buildModelObject(model: PublicModelInfo): OpenAiModelObject {
  return {
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
}

export function buildModelList(models: readonly PublicModelInfo[]): ModelListBody {
  return { object: "list", data: models.map(buildModelObject) };
}
