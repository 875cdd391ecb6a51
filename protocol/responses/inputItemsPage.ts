/**
 * GET /v1/responses/{id}/input_items: a cursor page over a stored response's input items, as
 * OpenAI pages it (`limit` 1 to 100, default 20; `order` "desc" (default) or "asc"; `after`
 * an item id of the previous page), which the openai SDK's auto-pagination follows.
 *
 * Pure: no I/O.
 */

import { errors } from "../errors.js";
import type { ListedInputItem } from "./inputItems.js";

export const DEFAULT_PAGE_LIMIT = 20;
export const MAX_PAGE_LIMIT = 100;

export interface InputItemsQuery {
  limit: number;
  order: "asc" | "desc";
  after?: string;
}

export interface InputItemsPage {
  object: "list";
  data: ListedInputItem[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

function invalid(param: string, why: string): never {
  throw errors.invalidRequest(`Invalid value for '${param}': ${why}.`, { param });
}

/** Reads the query; throws HEARTH_INVALID_REQUEST naming the parameter. `include` is accepted (items carry everything). */
export function parseInputItemsQuery(query: URLSearchParams): InputItemsQuery {
  const parsed: InputItemsQuery = { limit: DEFAULT_PAGE_LIMIT, order: "desc" };
  const limit = query.get("limit");
  if (limit !== null) {
    if (!/^\d{1,6}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_PAGE_LIMIT) invalid("limit", `expected an integer from 1 to ${MAX_PAGE_LIMIT}`);
    parsed.limit = Number(limit);
  }
  const order = query.get("order");
  if (order !== null) {
    if (order !== "asc" && order !== "desc") invalid("order", "expected 'asc' or 'desc'");
    parsed.order = order;
  }
  const after = query.get("after");
  if (after !== null && after !== "") parsed.after = after;
  return parsed;
}

export function inputItemsPage(items: readonly ListedInputItem[], query: InputItemsQuery): InputItemsPage {
  const ordered = query.order === "asc" ? [...items] : [...items].reverse();
  let start = 0;
  if (query.after !== undefined) {
    const index = ordered.findIndex((item) => item.id === query.after);
    if (index === -1) invalid("after", "no input item of this response has this id");
    start = index + 1;
  }
  const data = ordered.slice(start, start + query.limit);
  return { object: "list", data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: start + query.limit < ordered.length };
}
