/**
 * The requesting side of remote inference: runs one job on a peer over an "infer" stream
 * (protocol/peer/inferenceWire.ts) and relays its deltas as they arrive.
 *
 * Failures keep their meaning for the caller:
 *   - an `error` frame from the executing node keeps its catalogue code (a context overflow
 *     there is a context overflow here);
 *   - anything that breaks the stream itself (the link dropped, the peer reset the stream, a
 *     malformed reply, the stream ending without a result) is HEARTH_PEER_UNAVAILABLE, or
 *     HEARTH_PEER_TIMEOUT when the peer never accepted the stream, so the router can retry;
 *   - the caller's abort resets the stream (the peer aborts the job) and rejects with
 *     HEARTH_CANCELLED.
 */

import { errors, HearthError } from "../../protocol/errors.js";
import { shortNodeId } from "../../protocol/peer/identity.js";
import type { GenerationDelta } from "../../protocol/inference.js";
import {
  decodeReplyFrame,
  encodeInferFrame,
  INFER_STREAM_PURPOSE,
  InferFrameSplitter,
  type InferJobFrame,
  type InferResultFrame,
} from "../../protocol/peer/inferenceWire.js";
import type { OpenStreamOptions } from "../peers/linkStreams.js";
import type { PeerStream } from "../peers/PeerStream.js";

/** What this needs of the PeerLinkManager. */
export interface StreamOpener {
  openStream(nodeId: string, purpose: string, options?: OpenStreamOptions): Promise<PeerStream>;
}

export interface RemoteJobOptions {
  signal: AbortSignal;
  onDelta?: (delta: GenerationDelta) => void;
}

export type RemoteResult = InferResultFrame["result"];

/** A stream-level failure as the router sees it: the node is unavailable (or did not answer in time). */
function streamFailure(nodeId: string, error: unknown, what: string): HearthError {
  const cause = HearthError.from(error, "HEARTH_PEER_UNAVAILABLE");
  if (cause.code === "HEARTH_PEER_UNAVAILABLE" || cause.code === "HEARTH_PEER_TIMEOUT") {
    return errors.withCode(cause.code, `Node ${shortNodeId(nodeId)} ${what}: ${cause.message}`, { cause });
  }
  return errors.peerUnavailable(`Node ${shortNodeId(nodeId)} ${what} (${cause.code}: ${cause.message})`, { cause });
}

export async function runRemoteJob(opener: StreamOpener, nodeId: string, frame: InferJobFrame, options: RemoteJobOptions): Promise<RemoteResult> {
  const { signal } = options;
  // Encode first: a job that cannot be sent is this node's problem, not the peer's.
  const request = encodeInferFrame(frame);
  if (signal.aborted) throw errors.cancelled();
  let stream: PeerStream;
  try {
    stream = await opener.openStream(nodeId, INFER_STREAM_PURPOSE, { signal });
  } catch (error) {
    if (signal.aborted) throw errors.cancelled();
    throw streamFailure(nodeId, error, "could not take the job");
  }
  return new Promise<RemoteResult>((resolve, reject) => {
    const splitter = new InferFrameSplitter();
    let settled = false;
    const settle = (outcome: { result: RemoteResult } | { error: HearthError }): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if ("result" in outcome) resolve(outcome.result);
      else reject(outcome.error);
    };
    const abandon = (error: HearthError, toPeer: HearthError): void => {
      settle({ error });
      // Resetting tells the executing node to stop; destroy() is a no-op once the stream is gone.
      stream.destroy(toPeer);
    };
    const onAbort = (): void => abandon(errors.cancelled(), errors.cancelled("the requesting node cancelled the job"));
    signal.addEventListener("abort", onAbort, { once: true });

    stream.on("data", (chunk: Buffer) => {
      if (settled) return;
      const split = splitter.push(chunk);
      if (!split.ok) {
        abandon(streamFailure(nodeId, split.error, "sent an invalid reply"), split.error);
        return;
      }
      for (const body of split.bodies) {
        const decoded = decodeReplyFrame(body);
        if (!decoded.ok) {
          abandon(streamFailure(nodeId, decoded.error, "sent an invalid reply"), decoded.error);
          return;
        }
        const reply = decoded.frame;
        if (reply.type === "delta") {
          try {
            options.onDelta?.({ part: reply.part, text: reply.text });
          } catch (error) {
            abandon(HearthError.from(error), errors.cancelled("the requesting node could not deliver the output"));
            return;
          }
        } else if (reply.type === "result") {
          // The peer closes its side next; reading on lets the stream finish both ways.
          settle({ result: reply.result });
          return;
        } else {
          settle({ error: HearthError.fromPayload(reply.error) });
          return;
        }
      }
    });
    stream.on("end", () => settle({ error: streamFailure(nodeId, errors.peerUnavailable("the stream ended without a result"), "stopped answering") }));
    stream.on("error", (error: Error) => {
      if (signal.aborted) settle({ error: errors.cancelled() });
      else settle({ error: streamFailure(nodeId, error, "failed mid-job") });
    });
    stream.on("close", () => settle({ error: streamFailure(nodeId, errors.peerUnavailable("the stream closed without a result"), "stopped answering") }));
    // One job frame, then half-close: everything else on this stream comes from the peer.
    stream.end(request);
  });
}
