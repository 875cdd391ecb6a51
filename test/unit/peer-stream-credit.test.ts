// PeerStream credit under a reader that falls behind (found by the model transfer benchmark):
// once a whole window sat unread in the buffer, Node asked for more (_read) before taking the
// bytes out, nothing was granted, and since no data could come, Node never asked again. The
// stream must keep flowing however the reader's pauses fall.

import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { PeerStream, type StreamTransport } from "../../daemon/peers/PeerStream.js";

const WINDOW = 1024 * 1024;
const CHUNK = 256 * 1024;

function pair(): { opener: PeerStream; acceptor: PeerStream } {
  const streams: { opener?: PeerStream; acceptor?: PeerStream } = {};
  // Frames cross asynchronously, as on a socket.
  const transport = (peer: () => PeerStream): StreamTransport => ({
    maxChunkBytes: CHUNK,
    sendData: (_id, seq, bytes) => {
      const copy = Uint8Array.from(bytes);
      setImmediate(() => peer().receiveData(seq, copy));
    },
    sendCredit: (_id, credit) => setImmediate(() => peer().receiveCredit(credit)),
    sendClose: () => setImmediate(() => peer().receiveClose()),
    sendReset: (_id, error) => setImmediate(() => peer().receiveReset(error)),
    release: () => undefined,
  });
  const opener = new PeerStream({ streamId: 1, purpose: "test", peerNodeId: "peer", side: "opener", transport: transport(() => streams.acceptor!), windowBytes: WINDOW, initialSendCredit: 0 });
  const acceptor = new PeerStream({ streamId: 1, purpose: "test", peerNodeId: "peer", side: "acceptor", transport: transport(() => streams.opener!), windowBytes: WINDOW, initialSendCredit: WINDOW });
  streams.opener = opener;
  streams.acceptor = acceptor;
  acceptor.accept();
  return { opener, acceptor };
}

describe("PeerStream credit", () => {
  it("keeps granting after a whole window piled up unread while the reader was busy", async () => {
    // The shape of a model transfer: a small header, then file-sized chunks from an async
    // source, read by a consumer that awaits a write per chunk. Many rounds, because where the
    // reader's pauses fall relative to the frames varies.
    for (let round = 0; round < 40; round++) {
      const { opener, acceptor } = pair();
      opener.end();
      const chunks = 24;
      async function* source(): AsyncGenerator<Buffer> {
        for (let i = 0; i < chunks; i++) {
          await new Promise((resolve) => setImmediate(resolve));
          yield Buffer.alloc(CHUNK, i);
        }
      }
      setImmediate(() => {
        acceptor.write(Buffer.alloc(108, 1));
        void pipeline(Readable.from(source()), acceptor);
      });
      let received = 0;
      const outcome = await Promise.race([
        (async () => {
          for await (const chunk of opener as AsyncIterable<Buffer>) {
            received += chunk.byteLength;
            await new Promise((resolve) => setTimeout(resolve, round % 3));
          }
          return "ended";
        })(),
        new Promise((resolve) => setTimeout(() => resolve("stalled"), 2_000)),
      ]);
      expect({ round, outcome, received }).toEqual({ round, outcome: "ended", received: 108 + chunks * CHUNK });
    }
  }, 60_000);
});
