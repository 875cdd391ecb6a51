// hearth-rpc-shim: an out-of-tree ggml backend that exposes llama.cpp rpc-server endpoints as
// offload devices to node-llama-cpp, which has no RPC API of its own.
//
// node-llama-cpp's prebuilt libggml loads one extra backend named by GGML_BACKEND_PATH. This
// library is that backend. It is compiled together with ggml-rpc.cpp and transport.cpp from the
// llama.cpp source bundled in the installed node-llama-cpp, WITHOUT -DGGML_BACKEND_DL, so
// ggml-rpc.cpp does not define ggml_backend_init(): this file does.
//
// Why it probes every endpoint itself: stock ggml-rpc calls GGML_ABORT (the whole host process
// dies) when an endpoint is unreachable or speaks another protocol version, and blocks forever
// on a busy one (rpc-server serves one client at a time). A bad endpoint is skipped instead, with
// one line on stderr, and the model loads on the devices that remain.
//
// Environment (names mirrored in daemon/native/nativeParts.ts):
//   HEARTH_RPC_ENDPOINTS          "host:port[@MiB],..."; [v6addr]:port is accepted. @MiB replaces
//                                 the memory the device reports. llama.cpp splits offloaded layers
//                                 in proportion to the devices' free memory, so it sets each
//                                 endpoint's share of layers.
//   HEARTH_RPC_CONNECT_TIMEOUT_MS connect and HELLO timeout per endpoint (default 1500).
//   HEARTH_RPC_SHIM_VERBOSE=1     also log registered devices.
//   HEARTH_CPU_REPACK=off         take the CPU backend's repacked weight buffer type ("CPU_REPACK")
//                                 out of its extra buffer types before any model loads, so the
//                                 host computes q4_0, q4_K, iq4_nl... layers with the same plain
//                                 kernels rpc-server uses for the layers it holds (rpc-server
//                                 allocates only plain CPU buffers). Works with or without
//                                 endpoints, so a local runner can compute as a split's host does.
//   TEST_BINDING_CP=true          set by node-llama-cpp for its binary-test child process, which
//                                 must not occupy the single-client servers: no devices then.

#include "ggml-backend-impl.h"
#include "ggml-rpc.h"
#include "transport.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <link.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#define SHIM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr const char * LOG_PREFIX = "[hearth-rpc-shim]";
constexpr int DEFAULT_TIMEOUT_MS = 1500;
constexpr int MAX_TIMEOUT_MS = 60000;

// Wire format of the HELLO exchange (ggml-rpc.cpp keeps these private). HELLO is fixed at
// command 14 across protocol versions precisely so that a client can always ask.
constexpr uint8_t RPC_CMD_HELLO_ID = 14;
struct hello_request {
    uint8_t conn_caps[RPC_CONN_CAPS_SIZE];
};
struct hello_response {
    uint8_t major;
    uint8_t minor;
    uint8_t patch;
    uint8_t padding;
    uint8_t conn_caps[RPC_CONN_CAPS_SIZE];
};
static_assert(sizeof(hello_response) == 4 + RPC_CONN_CAPS_SIZE, "HELLO response layout");

bool g_verbose = false;

struct endpoint_spec {
    std::string text;     // "host:port" as handed to ggml-rpc
    std::string host;     // without brackets, for getaddrinfo
    std::string port;
    size_t memory_bytes;  // 0: report what the server says
};

struct device_override {
    size_t memory_bytes;
    void (*original_get_memory)(ggml_backend_dev_t, size_t *, size_t *);
    void (*original_get_props)(ggml_backend_dev_t, ggml_backend_dev_props *);
};

std::unordered_map<ggml_backend_dev_t, device_override> g_overrides;
std::vector<ggml_backend_dev_t> g_devices;

void skip(const std::string & what, const std::string & why) {
    fprintf(stderr, "%s endpoint %s skipped: %s\n", LOG_PREFIX, what.c_str(), why.c_str());
    fflush(stderr);
}

bool parse_unsigned(const std::string & text, unsigned long long max, unsigned long long & out) {
    if (text.empty() || text.size() > 20) return false;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
    }
    errno = 0;
    out = strtoull(text.c_str(), nullptr, 10);
    return errno == 0 && out <= max;
}

std::optional<endpoint_spec> parse_endpoint(const std::string & item, std::string & why) {
    endpoint_spec spec{};
    std::string address = item;
    size_t at = item.find('@');
    if (at != std::string::npos) {
        address = item.substr(0, at);
        unsigned long long mib = 0;
        if (!parse_unsigned(item.substr(at + 1), 1ull << 30, mib) || mib == 0) {
            why = "memory after '@' must be a positive whole number of MiB";
            return std::nullopt;
        }
        spec.memory_bytes = (size_t) mib * 1024 * 1024;
    }
    size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        why = "expected host:port";
        return std::nullopt;
    }
    spec.host = address.substr(0, colon);
    spec.port = address.substr(colon + 1);
    if (spec.host.size() >= 2 && spec.host.front() == '[' && spec.host.back() == ']') {
        spec.host = spec.host.substr(1, spec.host.size() - 2);
    }
    unsigned long long port = 0;
    if (!parse_unsigned(spec.port, 65535, port) || port == 0) {
        why = "port must be 1-65535";
        return std::nullopt;
    }
    spec.text = address;
    return spec;
}

std::vector<std::string> split_list(const char * list) {
    std::vector<std::string> items;
    std::string current;
    for (const char * p = list; ; ++p) {
        if (*p == ',' || *p == '\0') {
            size_t begin = current.find_first_not_of(" \t");
            size_t end = current.find_last_not_of(" \t");
            if (begin != std::string::npos) items.push_back(current.substr(begin, end - begin + 1));
            current.clear();
            if (*p == '\0') break;
        } else {
            current += *p;
        }
    }
    return items;
}

bool send_all(int fd, const void * data, size_t size) {
    const char * p = static_cast<const char *>(data);
    while (size > 0) {
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= (size_t) n;
    }
    return true;
}

bool recv_all(int fd, void * data, size_t size) {
    char * p = static_cast<char *>(data);
    while (size > 0) {
        ssize_t n = recv(fd, p, size, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= (size_t) n;
    }
    return true;
}

// Non-blocking connect bounded by timeout_ms; returns a blocking socket or -1.
int connect_with_timeout(const endpoint_spec & spec, int timeout_ms, std::string & why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo * found = nullptr;
    int rc = getaddrinfo(spec.host.c_str(), spec.port.c_str(), &hints, &found);
    if (rc != 0 || found == nullptr) {
        why = std::string("cannot resolve host: ") + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    why = "nothing accepts connections there";
    for (addrinfo * ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
        int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (s < 0) continue;
        bool connected = connect(s, ai->ai_addr, ai->ai_addrlen) == 0;
        if (!connected && errno == EINPROGRESS) {
            pollfd pfd{s, POLLOUT, 0};
            int ready;
            do { ready = poll(&pfd, 1, timeout_ms); } while (ready < 0 && errno == EINTR);
            if (ready == 1) {
                int error = 0;
                socklen_t length = sizeof(error);
                connected = getsockopt(s, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
                if (!connected) why = std::string("connect failed: ") + strerror(error);
            } else {
                why = "connect timed out after " + std::to_string(timeout_ms) + " ms";
            }
        } else if (!connected) {
            why = std::string("connect failed: ") + strerror(errno);
        }
        if (connected) fd = s; else close(s);
    }
    freeaddrinfo(found);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

// One HELLO on a throwaway connection, then close, so the server is free for ggml-rpc's own
// connection. Caps stay zero: the probe asks for plain TCP, whatever the real client negotiates.
bool probe(const endpoint_spec & spec, int timeout_ms, std::string & why) {
    int fd = connect_with_timeout(spec, timeout_ms, why);
    if (fd < 0) return false;
    const uint8_t command = RPC_CMD_HELLO_ID;
    const uint64_t request_size = sizeof(hello_request);
    hello_request request{};
    uint64_t response_size = 0;
    hello_response response{};
    bool answered = send_all(fd, &command, 1) && send_all(fd, &request_size, sizeof(request_size)) &&
                    send_all(fd, &request, sizeof(request)) && recv_all(fd, &response_size, sizeof(response_size));
    if (!answered) {
        close(fd);
        why = "no HELLO answer within " + std::to_string(timeout_ms) +
              " ms (rpc-server busy with another client, or not an rpc-server)";
        return false;
    }
    if (response_size != sizeof(response) || !recv_all(fd, &response, sizeof(response))) {
        close(fd);
        why = "HELLO answer has " + std::to_string(response_size) + " bytes, expected " +
              std::to_string(sizeof(response)) + " (different RPC protocol)";
        return false;
    }
    close(fd);
    if (response.major != RPC_PROTO_MAJOR_VERSION || response.minor > RPC_PROTO_MINOR_VERSION) {
        char text[160];
        snprintf(text, sizeof(text), "server speaks RPC protocol %u.%u.%u, this build needs %d.x with x <= %d",
                 response.major, response.minor, response.patch, RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION);
        why = text;
        return false;
    }
    return true;
}

void overridden_get_memory(ggml_backend_dev_t dev, size_t * free, size_t * total) {
    const device_override & o = g_overrides.at(dev);
    *free = o.memory_bytes;
    *total = o.memory_bytes;
}

void overridden_get_props(ggml_backend_dev_t dev, ggml_backend_dev_props * props) {
    const device_override & o = g_overrides.at(dev);
    o.original_get_props(dev, props);
    props->memory_free = o.memory_bytes;
    props->memory_total = o.memory_bytes;
}

void register_endpoint(const endpoint_spec & spec) {
    ggml_backend_reg_t reg = ggml_backend_rpc_add_server(spec.text.c_str());
    if (reg == nullptr) {
        skip(spec.text, "the server reports no devices");
        return;
    }
    size_t count = ggml_backend_reg_dev_count(reg);
    for (size_t i = 0; i < count; i++) {
        ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, i);
        if (spec.memory_bytes > 0) {
            // The device object belongs to this library and each has its own iface copy, so
            // patching it in place keeps every buffer type and backend that points at it consistent.
            g_overrides[dev] = device_override{spec.memory_bytes, dev->iface.get_memory, dev->iface.get_props};
            dev->iface.get_memory = overridden_get_memory;
            dev->iface.get_props = overridden_get_props;
        }
        g_devices.push_back(dev);
        if (g_verbose) {
            size_t free = 0, total = 0;
            ggml_backend_dev_memory(dev, &free, &total);
            fprintf(stderr, "%s registered %s (%s): %zu MiB free of %zu MiB\n", LOG_PREFIX, ggml_backend_dev_name(dev),
                    ggml_backend_dev_description(dev), free >> 20, total >> 20);
        }
    }
}

// The loaded CPU backend variant (libggml-cpu-<variant>.so, opened by ggml with RTLD_LOCAL)
// exports these C++ functions; the extra buffer type list is a static vector that the CPU device
// copies on first use, which is during the first model load, after every backend is loaded.
using extra_bufts_fn = std::vector<ggml_backend_buffer_type_t> & (*)();
using repack_buft_fn = ggml_backend_buffer_type_t (*)();

int find_cpu_backend(struct dl_phdr_info * info, size_t, void * out) {
    const char * name = info->dlpi_name;
    if (name == nullptr || std::strstr(name, "libggml-cpu") == nullptr) return 0;
    *static_cast<std::string *>(out) = name;
    return 1;
}

void disable_cpu_repack() {
    std::string path;
    dl_iterate_phdr(find_cpu_backend, &path);
    void * handle = path.empty() ? nullptr : dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    auto extra = handle ? reinterpret_cast<extra_bufts_fn>(dlsym(handle, "_Z39ggml_backend_cpu_get_extra_buffer_typesv")) : nullptr;
    auto repack = handle ? reinterpret_cast<repack_buft_fn>(dlsym(handle, "_Z35ggml_backend_cpu_repack_buffer_typev")) : nullptr;
    if (extra == nullptr || repack == nullptr) {
        // Without the switch the host would silently compute with other kernels than its peers.
        fprintf(stderr, "%s HEARTH_CPU_REPACK=off: no CPU backend with a repack buffer type is loaded (%s)\n", LOG_PREFIX,
                path.empty() ? "no libggml-cpu" : path.c_str());
        if (handle) dlclose(handle);
        return;
    }
    std::vector<ggml_backend_buffer_type_t> & bufts = extra();
    const ggml_backend_buffer_type_t repacked = repack();
    size_t removed = 0;
    for (auto it = bufts.begin(); it != bufts.end();) {
        if (*it == repacked) {
            it = bufts.erase(it);
            removed++;
        } else {
            ++it;
        }
    }
    if (g_verbose) fprintf(stderr, "%s CPU_REPACK off in %s (%zu removed)\n", LOG_PREFIX, path.c_str(), removed);
    dlclose(handle);
}

int timeout_from_env() {
    const char * text = getenv("HEARTH_RPC_CONNECT_TIMEOUT_MS");
    unsigned long long value = 0;
    if (text == nullptr || !parse_unsigned(text, MAX_TIMEOUT_MS, value) || value == 0) return DEFAULT_TIMEOUT_MS;
    return (int) value;
}

// Not named "RPC": llama.cpp treats any registered backend called "RPC" as GPU offload support,
// even with zero devices.
const char * shim_reg_name(ggml_backend_reg_t) { return "Hearth-RPC"; }
size_t shim_reg_device_count(ggml_backend_reg_t) { return g_devices.size(); }
ggml_backend_dev_t shim_reg_device(ggml_backend_reg_t, size_t index) {
    GGML_ASSERT(index < g_devices.size());
    return g_devices[index];
}
void * shim_reg_proc_address(ggml_backend_reg_t, const char * name) {
    if (std::strcmp(name, "ggml_backend_rpc_add_server") == 0) return (void *) ggml_backend_rpc_add_server;
    return nullptr;
}

ggml_backend_reg g_shim_reg = {
    /* .api_version = */ GGML_BACKEND_API_VERSION,
    /* .iface       = */ {
        /* .get_name         = */ shim_reg_name,
        /* .get_device_count = */ shim_reg_device_count,
        /* .get_device       = */ shim_reg_device,
        /* .get_proc_address = */ shim_reg_proc_address,
    },
    /* .context     = */ nullptr,
};

}  // namespace

SHIM_EXPORT ggml_backend_reg_t ggml_backend_init(void) {
    static bool initialized = false;
    if (initialized) return &g_shim_reg;
    initialized = true;
    g_verbose = getenv("HEARTH_RPC_SHIM_VERBOSE") != nullptr;
    const char * repack = getenv("HEARTH_CPU_REPACK");
    if (repack != nullptr && std::strcmp(repack, "off") == 0) disable_cpu_repack();

    const char * binary_test = getenv("TEST_BINDING_CP");
    if (binary_test != nullptr && std::strcmp(binary_test, "true") == 0) return &g_shim_reg;
    const char * list = getenv("HEARTH_RPC_ENDPOINTS");
    if (list == nullptr || *list == '\0') return &g_shim_reg;

    const int timeout_ms = timeout_from_env();
    std::set<std::string> seen;
    for (const std::string & item : split_list(list)) {
        std::string why;
        std::optional<endpoint_spec> spec = parse_endpoint(item, why);
        if (!spec) {
            skip("'" + item + "'", why);
            continue;
        }
        // ggml-rpc keeps one registration per address; listing it twice would add the same devices twice.
        if (!seen.insert(spec->text).second) {
            skip(spec->text, "listed twice");
            continue;
        }
        if (!probe(*spec, timeout_ms, why)) {
            skip(spec->text, why);
            continue;
        }
        register_endpoint(*spec);
    }
    return &g_shim_reg;
}
