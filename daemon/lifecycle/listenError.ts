/**
 * A listener that cannot bind (the HTTP API, the peer listener) becomes one configuration
 * error naming the address, why, and the setting to change, never a stack trace.
 */

import { errors, HearthError } from "../../protocol/errors.js";
import { formatHostPort } from "../peers/wire.js";

const REASONS: Record<string, string> = {
  EADDRINUSE: "the address is already in use (is another hearth serve running? choose another {port})",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "this machine has no such address{bind}",
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name does not resolve",
};

export interface ListenerNames {
  /** What listens, for the message: "" for the API, "for peers " for the peer listener. */
  what: string;
  /** The flag that changes the port (`--port`, `--peer-port`) and its config key. */
  portFlag: string;
  portParam: string;
  /** The flag that changes the address, when there is one (`--peer-bind`), and its config key. */
  bindFlag?: string;
  bindParam?: string;
}

export function listenError(error: unknown, host: string, port: number, names: ListenerNames): HearthError {
  if (error instanceof HearthError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const template = code === undefined ? undefined : REASONS[code];
  if (template === undefined) return HearthError.from(error);
  const reason = template.replace("{port}", names.portFlag).replace("{bind}", names.bindFlag === undefined ? "" : ` (check ${names.bindFlag})`);
  const param = code === "EADDRNOTAVAIL" && names.bindParam !== undefined ? names.bindParam : names.portParam;
  return errors.configInvalid(`cannot listen ${names.what}on ${formatHostPort(host, port)}: ${reason}`, { param, cause: error });
}
