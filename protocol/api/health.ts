/**
 * GET /health: readiness for supervisors, load balancers and `hearth status`. 200 with
 * `ok` when ready; 503 with `unavailable` while starting or shutting down.
 *
 * Pure: no I/O.
 */

import { z } from "zod";

export const healthSchema = z.object({
  status: z.enum(["ok", "unavailable"]),
});

export type Health = z.infer<typeof healthSchema>;
