/**
 * GET /v1/models and GET /v1/models/{id} in Anthropic's shape, for requests that carry
 * `anthropic-version` (the same paths answer OpenAI's shape otherwise). The list is the same
 * cluster-wide list, one entry per file, in the same order; it is paged as Anthropic pages it:
 * `limit` (1 to 1000, default 20), `after_id` or `before_id`, and `has_more`, `first_id`,
 * `last_id` in the answer. A model has no display name of its own, so it is the id.
 *
 * Pure: no I/O.
 */

import { errors } from "../errors.js";
import type { PublicModelInfo } from "../openai/modelsResponse.js";

export const DEFAULT_MODEL_PAGE_SIZE = 20;
export const MAX_MODEL_PAGE_SIZE = 1000;

export interface AnthropicModelObject {
  type: "model";
  id: string;
  display_name: string;
  /** RFC 3339; the file's modification time (the epoch for a file only peers hold). */
  created_at: string;
}

export interface AnthropicModelList {
  data: AnthropicModelObject[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

export interface ModelPageQuery {
  limit: number;
  afterId?: string;
  beforeId?: string;
}

export function buildAnthropicModel(model: Pick<PublicModelInfo, "id" | "createdAt">): AnthropicModelObject {
  return { type: "model", id: model.id, display_name: model.id, created_at: new Date(model.createdAt * 1000).toISOString() };
}

/** Reads `limit`, `after_id` and `before_id`; throws HEARTH_INVALID_REQUEST naming the bad one. */
export function parseModelPageQuery(query: URLSearchParams): ModelPageQuery {
  const page: ModelPageQuery = { limit: DEFAULT_MODEL_PAGE_SIZE };
  const limit = query.get("limit");
  if (limit !== null) {
    const value = /^\d+$/.test(limit) ? Number(limit) : NaN;
    if (!(value >= 1 && value <= MAX_MODEL_PAGE_SIZE)) {
      throw errors.invalidRequest(`Invalid value for 'limit': expected an integer from 1 to ${MAX_MODEL_PAGE_SIZE}.`, { param: "limit" });
    }
    page.limit = value;
  }
  const afterId = query.get("after_id");
  const beforeId = query.get("before_id");
  if (afterId !== null && beforeId !== null) throw errors.invalidRequest("Give 'after_id' or 'before_id', not both.", { param: "before_id" });
  if (afterId !== null) page.afterId = afterId;
  if (beforeId !== null) page.beforeId = beforeId;
  return page;
}

function positionOf(models: readonly AnthropicModelObject[], id: string, param: string): number {
  const index = models.findIndex((model) => model.id === id);
  if (index === -1) throw errors.invalidRequest(`Invalid value for '${param}': no model '${id}' in the list.`, { param });
  return index;
}

export function buildAnthropicModelList(models: readonly PublicModelInfo[], page: ModelPageQuery = { limit: DEFAULT_MODEL_PAGE_SIZE }): AnthropicModelList {
  const all = models.map(buildAnthropicModel);
  let data: AnthropicModelObject[];
  let hasMore: boolean;
  if (page.beforeId !== undefined) {
    const end = positionOf(all, page.beforeId, "before_id");
    const start = Math.max(0, end - page.limit);
    data = all.slice(start, end);
    hasMore = start > 0;
  } else {
    const start = page.afterId === undefined ? 0 : positionOf(all, page.afterId, "after_id") + 1;
    data = all.slice(start, start + page.limit);
    hasMore = start + page.limit < all.length;
  }
  return { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}
