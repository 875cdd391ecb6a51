// Linked into rpc-server so that llama.cpp's source stays unpatched: a constructor runs before
// rpc-server's main().

#include <csignal>
#include <cstdio>

__attribute__((constructor)) static void hearth_rpc_server_hooks() {
    // rpc-server writes replies with plain send(). A client that disconnects mid-reply would
    // raise SIGPIPE, whose default action kills the server (exit 141). Ignored, send() fails
    // with EPIPE instead, the server drops that client and accepts the next one.
    std::signal(SIGPIPE, SIG_IGN);
    // The daemon follows the worker's log ("Accepted client connection") through a pipe, where
    // stdout would otherwise be block-buffered and arrive late or never.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
}
