// Gives every llama.cpp context a runner creates a persistent CPU thread pool.
//
// Loaded into runners with LD_PRELOAD (daemon/engine/kernelEnvironment.ts). node-llama-cpp never
// attaches a ggml thread pool to its contexts, so for every llama_decode ggml's CPU backend
// creates its worker threads, runs the graph and joins them again. In a plain C program that
// costs little, but inside a Node process it does not: on 2 cores, a small model decoded with
// 2 threads took 12-15 ms per token against 3 ms with 1 thread, the workers mostly spinning in
// ggml_barrier for a peer thread that had not started yet. llama-server attaches a pool made
// once per context (common_init_from_params); this does the same for node-llama-cpp's contexts.
//
// It interposes llama_init_from_model and llama_free: the first calls llama.cpp's own and then
// attaches a pool of the context's n_threads (when more than one); the second frees the pool
// after the context. node-llama-cpp loads libllama with RTLD_LOCAL, so the real functions are
// found by looking up the loaded library itself, not with RTLD_NEXT. When anything is missing
// (another llama.cpp, no CPU backend), the context simply keeps ggml's per-decode threads.
//
// HEARTH_THREADPOOL_VERBOSE (any value) logs each pool attached or freed to stderr.

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

namespace {

struct LibrarySearch {
    const char * prefix;
    std::string path;
};

// A symbol of an already loaded library whose file name starts with `prefix` ("libllama.").
void * loaded_symbol(const char * prefix, const char * name) {
    LibrarySearch search{prefix, {}};
    dl_iterate_phdr(
        [](dl_phdr_info * info, size_t, void * data) {
            auto * wanted = static_cast<LibrarySearch *>(data);
            const char * slash = std::strrchr(info->dlpi_name, '/');
            const char * file = slash != nullptr ? slash + 1 : info->dlpi_name;
            if (std::strncmp(file, wanted->prefix, std::strlen(wanted->prefix)) != 0) return 0;
            wanted->path = info->dlpi_name;
            return 1;
        },
        &search);
    if (search.path.empty()) return nullptr;
    void * handle = dlopen(search.path.c_str(), RTLD_NOLOAD | RTLD_LAZY);
    return handle != nullptr ? dlsym(handle, name) : nullptr;
}

template <typename Fn> Fn * loaded_function(const char * prefix, const char * name) {
    return reinterpret_cast<Fn *>(loaded_symbol(prefix, name));
}

// The CPU backend is a dynamically loaded library of its own; its pool functions are reached
// through the backend registry.
template <typename Fn> Fn * cpu_backend_function(const char * name) {
    auto * by_name = loaded_function<decltype(ggml_backend_reg_by_name)>("libggml.", "ggml_backend_reg_by_name");
    auto * proc_address = loaded_function<decltype(ggml_backend_reg_get_proc_address)>("libggml-base.", "ggml_backend_reg_get_proc_address");
    if (by_name == nullptr || proc_address == nullptr) return nullptr;
    ggml_backend_reg_t cpu = by_name("CPU");
    return cpu != nullptr ? reinterpret_cast<Fn *>(proc_address(cpu, name)) : nullptr;
}

bool verbose() {
    static const bool on = std::getenv("HEARTH_THREADPOOL_VERBOSE") != nullptr;
    return on;
}

std::mutex pools_mutex;
std::unordered_map<llama_context *, ggml_threadpool *> pools;

void attach_pool(llama_context * context, int n_threads) {
    auto * params_init = loaded_function<decltype(ggml_threadpool_params_init)>("libggml-base.", "ggml_threadpool_params_init");
    auto * attach = loaded_function<decltype(llama_attach_threadpool)>("libllama.", "llama_attach_threadpool");
    auto * pool_new = cpu_backend_function<decltype(ggml_threadpool_new)>("ggml_threadpool_new");
    if (params_init == nullptr || attach == nullptr || pool_new == nullptr) {
        if (verbose()) std::fprintf(stderr, "hearth threadpool: llama.cpp's pool functions are not reachable; keeping per-decode threads\n");
        return;
    }
    ggml_threadpool_params params;
    params_init(&params, n_threads);
    ggml_threadpool * pool = pool_new(&params);
    if (pool == nullptr) return;
    // One pool serves decoding and prompt batches alike, as in llama-server with equal -t and -tb.
    attach(context, pool, nullptr);
    std::lock_guard<std::mutex> lock(pools_mutex);
    pools[context] = pool;
    if (verbose()) std::fprintf(stderr, "hearth threadpool: attached a pool of %d threads\n", n_threads);
}

}  // namespace

// Built with hidden visibility: only these two are exported, so they take the place of llama.cpp's.
#define HEARTH_INTERPOSE __attribute__((visibility("default")))

extern "C" {

HEARTH_INTERPOSE llama_context * llama_init_from_model(llama_model * model, llama_context_params params) {
    static auto * real = loaded_function<decltype(llama_init_from_model)>("libllama.", "llama_init_from_model");
    if (real == nullptr) {
        std::fprintf(stderr, "hearth threadpool: libllama is not loaded; cannot create a context\n");
        return nullptr;
    }
    llama_context * context = real(model, params);
    if (context != nullptr && params.n_threads > 1) attach_pool(context, params.n_threads);
    return context;
}

HEARTH_INTERPOSE void llama_free(llama_context * context) {
    static auto * real = loaded_function<decltype(llama_free)>("libllama.", "llama_free");
    ggml_threadpool * pool = nullptr;
    {
        std::lock_guard<std::mutex> lock(pools_mutex);
        auto found = pools.find(context);
        if (found != pools.end()) {
            pool = found->second;
            pools.erase(found);
        }
    }
    if (real != nullptr) real(context);
    if (pool == nullptr) return;
    // After the context: it may still compute on the pool while it is freed.
    auto * pool_free = cpu_backend_function<decltype(ggml_threadpool_free)>("ggml_threadpool_free");
    if (pool_free != nullptr) pool_free(pool);
    if (verbose()) std::fprintf(stderr, "hearth threadpool: freed a pool\n");
}

}  // extern "C"
