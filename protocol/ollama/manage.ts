/**
 * POST /api/copy and DELETE /api/delete request bodies, and POST /api/show's.
 *
 *   copy    {source, destination}   makes `destination` an alias of the model `source` names
 *   delete  {model} (or {name})     removes an alias, or the model file when it is in the models dir
 *   show    {model} (or {name}, verbose?) `system`, `template` and `options` are ignored
 *
 * Pure: no I/O.
 */

import { z } from "zod";
import { errors } from "../errors.js";
import { parseWith } from "../openai/validation.js";
import { requiredModel } from "./common.js";
import { modelNameFields } from "./options.js";

const copySchema = z.object({ source: z.string().nullish(), destination: z.string().nullish() });

export function parseCopyRequest(body: unknown): { source: string; destination: string } {
  const request = parseWith(copySchema, body);
  const source = request.source ?? "";
  const destination = request.destination ?? "";
  if (source === "") throw errors.invalidRequest("source is required", { param: "source" });
  if (destination === "") throw errors.invalidRequest("destination is required", { param: "destination" });
  return { source, destination };
}

const modelOnlySchema = z.object({ ...modelNameFields, verbose: z.boolean().nullish() });

export function parseModelRequest(body: unknown): { model: string } {
  return { model: requiredModel(parseWith(modelOnlySchema, body)) };
}
