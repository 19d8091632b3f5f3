// rlgraph: one HNSW graph (hnswlib, the same headers hnswlib-node builds) whose searches, inserts,
// saves and loads run on the engine's own threads (see Pools), so the event loop never waits for
// vector work and several searches of one graph run on several cores at once.
//
// Why not hnswlib-node: its searchKnn and addPoint are synchronous (they run on the thread that
// calls them) and an index object belongs to one JS thread, so neither an async search nor two
// threads searching one graph is possible through it; a copy per worker would double the memory.
//
// Concurrency contract (kept by the caller, src/vector/hnsw-index.ts with src/objects' store gate):
// searches may overlap each other and a save; an add, remove, resize or relabel runs alone.
// Labels are the caller's dense slot numbers, so a filter is a bitset over slots.
#include <napi.h>
#include <uv.h>
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <condition_variable>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <memory>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RLGRAPH_X86 1
#endif

#ifdef __linux__
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace {

using Hnsw = hnswlib::HierarchicalNSW<float>;
using hnswlib::labeltype;
using hnswlib::tableint;
using Hit = std::pair<float, labeltype>;

// A filter over labels: bit `label` of the words is set for allowed items.
struct BitFilter : hnswlib::BaseFilterFunctor {
  const uint32_t* words;
  size_t count;
  BitFilter(const uint32_t* w, size_t n) : words(w), count(n) {}
  bool operator()(labeltype label) override {
    size_t i = label >> 5;
    return i < count && ((words[i] >> (label & 31)) & 1u) != 0;
  }
};

// ---- distances -----------------------------------------------------------------------------------
// hnswlib picks SSE code at compile time, and AVX only when the whole file is compiled for AVX
// (which would make the addon crash on a CPU without it). Here the AVX2+FMA kernels are compiled for
// that target alone and chosen at run time when the CPU has it (every x86-64 CPU since 2013-2015);
// elsewhere hnswlib's own functions run. RLGRAPH_SIMD=baseline forces hnswlib's (tests, benchmarks).
#ifdef RLGRAPH_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Σ (a−b)² for L2, Σ a·b for the inner product: one loop, two accumulators of 8 lanes each.
template <bool kL2>
__attribute__((target("avx2,fma"))) static inline __m256 accumulate(__m256 x, __m256 y, __m256 sum) {
  if constexpr (kL2) {
    __m256 d = _mm256_sub_ps(x, y);
    return _mm256_fmadd_ps(d, d, sum);
  } else {
    return _mm256_fmadd_ps(x, y, sum);
  }
}

template <bool kL2>
__attribute__((target("avx2,fma"))) static float sumAvx2(const void* av, const void* bv, const void* param) {
  const float* a = static_cast<const float*>(av);
  const float* b = static_cast<const float*>(bv);
  size_t n = *static_cast<const size_t*>(param);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = accumulate<kL2>(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = accumulate<kL2>(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = accumulate<kL2>(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float r = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; i++) r += kL2 ? (a[i] - b[i]) * (a[i] - b[i]) : a[i] * b[i];
  return r;
}

static float L2Avx2(const void* a, const void* b, const void* param) { return sumAvx2<true>(a, b, param); }
static float IpAvx2(const void* a, const void* b, const void* param) { return 1.0f - sumAvx2<false>(a, b, param); }
#endif

// "avx2-fma" when this CPU runs the kernels above (unless RLGRAPH_SIMD=baseline), else "baseline".
const char* simdLevel() {
  static const char* level = [] {
    const char* env = std::getenv("RLGRAPH_SIMD");
    if (env != nullptr && std::strcmp(env, "baseline") == 0) return "baseline";
#ifdef RLGRAPH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2-fma";
#endif
    return "baseline";
  }();
  return level;
}

// hnswlib's space (its data size and parameter) with the distance function swapped when the CPU
// has a faster kernel.
class Space : public hnswlib::SpaceInterface<float> {
 public:
  Space(bool ip, size_t dim) {
    if (ip) base.reset(new hnswlib::InnerProductSpace(dim));
    else base.reset(new hnswlib::L2Space(dim));
    fn = base->get_dist_func();
#ifdef RLGRAPH_X86
    if (std::strcmp(simdLevel(), "avx2-fma") == 0) fn = ip ? IpAvx2 : L2Avx2;
#endif
  }
  size_t get_data_size() override { return base->get_data_size(); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return fn; }
  void* get_dist_func_param() override { return base->get_dist_func_param(); }

 private:
  std::unique_ptr<hnswlib::SpaceInterface<float>> base;
  hnswlib::DISTFUNC<float> fn;
};

// ---- memory ----------------------------------------------------------------------------------------
// A search reads a few hundred vectors scattered over the graph's level-0 block (tens of MB): with
// 4 KB pages most of those reads also miss the TLB. Transparent huge pages (2 MB) remove most of
// those misses; where the kernel only gives them on request (THP "madvise", Debian's default) the
// block is marked for them: a new graph's pages come as huge pages as it fills, a loaded graph's
// are folded into huge pages by khugepaged over the next minute or so. RLGRAPH_HUGEPAGES=off leaves
// the block as malloc gave it.
bool hugePagesWanted() {
  static const bool wanted = [] {
    const char* env = std::getenv("RLGRAPH_HUGEPAGES");
    return !(env != nullptr && std::strcmp(env, "off") == 0);
  }();
  return wanted;
}

// Marks the page-aligned interior of the level-0 block for huge pages (blocks under 4 MB are left
// alone): pages touched from now on come as huge pages where a whole aligned 2 MB range is inside.
void adviseLevel0(Hnsw& g) {
#ifdef MADV_HUGEPAGE
  size_t bytes = g.max_elements_ * g.size_data_per_element_;
  if (!hugePagesWanted() || bytes < (4u << 20)) return;
  uintptr_t start = ((uintptr_t)g.data_level0_memory_ + 4095) & ~(uintptr_t)4095;
  uintptr_t end = (uintptr_t)g.data_level0_memory_ + bytes;
  if (end > start) madvise((void*)start, end - start, MADV_HUGEPAGE);
#else
  (void)g;
#endif
}

// label → internal id + 1 of every element of g (see Core::where).
std::vector<uint32_t> buildWhere(Hnsw& g) {
  std::vector<uint32_t> where;
  size_t n = g.cur_element_count;
  for (tableint i = 0; i < n; i++) {
    labeltype label = g.getExternalLabel(i);
    if (label > 0xFFFFFFF0u) continue;  // relabelled dead elements
    if (label >= where.size()) where.resize(std::max<size_t>(label + 1, where.size() + where.size() / 2 + 16), 0);
    where[label] = i + 1;
  }
  return where;
}

struct Core {
  bool ip = false;
  size_t dim = 0;
  std::unique_ptr<hnswlib::SpaceInterface<float>> space;
  std::unique_ptr<Hnsw> index;
  // label → internal id + 1 (0: none), so a filtered exact scan visits only the matching elements.
  // Entries may be stale after a deleted element was reused under another label: checked on use.
  std::vector<uint32_t> where;

  void note(labeltype label) {
    Hnsw& g = h();
    std::unique_lock<std::mutex> lock(g.label_lookup_lock);
    auto it = g.label_lookup_.find(label);
    if (it == g.label_lookup_.end()) return;
    if (label >= where.size()) where.resize(std::max<size_t>(label + 1, where.size() + where.size() / 2 + 16), 0);
    where[label] = it->second + 1;
  }

  void rebuildWhere() { where = buildWhere(h()); }

  void makeSpace() { space.reset(new Space(ip, dim)); }

  Hnsw& h() {
    if (!index) throw std::runtime_error("graph is not initialised");
    return *index;
  }

  // The K nearest (allowed) items with this query's own ef (hnswlib's searchKnn reads the index's
  // shared ef_, which concurrent searches with different ef would race on). Nearest first.
  std::vector<Hit> knn(const float* q, size_t k, size_t ef, BitFilter* filter) {
    Hnsw& g = h();
    std::vector<Hit> out;
    if (g.cur_element_count == 0 || k == 0) return out;
    tableint cur = g.enterpoint_node_;
    float curdist = g.fstdistfunc_(q, g.getDataByInternalId(cur), g.dist_func_param_);
    for (int level = g.maxlevel_; level > 0; level--) {
      bool changed = true;
      while (changed) {
        changed = false;
        unsigned int* data = (unsigned int*)g.get_linklist(cur, level);
        int size = g.getListCount(data);
        tableint* cands = (tableint*)(data + 1);
        for (int i = 0; i < size; i++) {
          tableint c = cands[i];
          if (c > g.max_elements_) throw std::runtime_error("graph link out of range");
          float d = g.fstdistfunc_(q, g.getDataByInternalId(c), g.dist_func_param_);
          if (d < curdist) {
            curdist = d;
            cur = c;
            changed = true;
          }
        }
      }
    }
    size_t width = std::max(ef, k);
    auto top = (g.num_deleted_ == 0 && filter == nullptr) ? g.searchBaseLayerST<true>(cur, q, width, filter)
                                                          : g.searchBaseLayerST<false>(cur, q, width, filter);
    while (top.size() > k) top.pop();
    out.resize(top.size());
    for (size_t i = out.size(); i-- > 0;) {
      out[i] = Hit(top.top().first, g.getExternalLabel(top.top().second));
      top.pop();
    }
    return out;
  }

  // The exact K nearest (allowed) live items, distances computed as the graph does. With a filter
  // only the matching elements are visited (through `where`), else every element.
  std::vector<Hit> exact(const float* q, size_t k, BitFilter* filter) {
    Hnsw& g = h();
    std::priority_queue<Hit> best;  // max-heap: the worst kept on top
    auto consider = [&](tableint i, labeltype label) {
      float d = g.fstdistfunc_(q, g.getDataByInternalId(i), g.dist_func_param_);
      if (best.size() < k) best.emplace(d, label);
      else if (d < best.top().first || (d == best.top().first && label < best.top().second)) {
        best.pop();
        best.emplace(d, label);
      }
    };
    size_t n = g.cur_element_count;
    if (filter != nullptr) {
      // The caller's set holds live labels only (ANDed with the live slots), whose `where` entries
      // are current: no label check. The next match's vector is prefetched while this one is
      // measured (matches are scattered over the graph's memory).
      tableint pending = 0;
      labeltype pendingLabel = 0;
      bool have = false;
      for (size_t w = 0; w < filter->count; w++) {
        uint32_t v = filter->words[w];
        while (v != 0) {
          labeltype label = (w << 5) + __builtin_ctz(v);
          v &= v - 1;
          if (label >= where.size() || where[label] == 0) continue;
          tableint i = where[label] - 1;
          if (i >= n) continue;
          __builtin_prefetch(g.getDataByInternalId(i));
          __builtin_prefetch(g.getDataByInternalId(i) + 64);
          if (have && !g.isMarkedDeleted(pending)) consider(pending, pendingLabel);
          pending = i;
          pendingLabel = label;
          have = true;
        }
      }
      if (have && !g.isMarkedDeleted(pending)) consider(pending, pendingLabel);
    } else {
      for (tableint i = 0; i < n; i++) {
        if (g.isMarkedDeleted(i)) continue;
        consider(i, g.getExternalLabel(i));
      }
    }
    std::vector<Hit> out(best.size());
    for (size_t i = out.size(); i-- > 0;) {
      out[i] = best.top();
      best.pop();
    }
    return out;
  }

  // A search as the JS side asks for it: the exact scan or the graph walk, over `words` if given.
  std::vector<Hit> search(const float* q, size_t k, size_t ef, bool exactScan, const std::vector<uint32_t>& words, bool filtered) {
    BitFilter f(words.data(), words.size());
    BitFilter* fp = filtered ? &f : nullptr;
    return exactScan ? exact(q, k, fp) : knn(q, k, ef, fp);
  }

  // Inserts `label`, or updates it (a removed label is revived in its old graph slot, never added
  // twice); a new label takes a deleted slot if there is one, else the graph grows by 25%.
  void add(const float* p, labeltype label, size_t maxCapacity) {
    Hnsw& g = h();
    bool known;
    {
      std::unique_lock<std::mutex> lock(g.label_lookup_lock);
      known = g.label_lookup_.find(label) != g.label_lookup_.end();
    }
    if (known) {
      bool wasDeleted = false;
      {
        std::unique_lock<std::mutex> lock(g.label_lookup_lock);
        wasDeleted = g.isMarkedDeleted(g.label_lookup_[label]);
      }
      if (wasDeleted) g.unmarkDelete(label);
      try {
        g.addPoint(p, label, false);
      } catch (...) {
        if (wasDeleted) g.markDelete(label);
        throw;
      }
      note(label);
      return;
    }
    if (g.num_deleted_ > 0) {
      g.addPoint(p, label, true);
      note(label);
      return;
    }
    if (g.cur_element_count >= g.max_elements_) {
      size_t cap = g.max_elements_;
      size_t next = std::max(cap + 1, cap + std::max<size_t>(1024, cap / 4));
      if (next > maxCapacity) next = maxCapacity;
      if (next <= cap) throw std::runtime_error("vector index is full");
      g.resizeIndex(next);
      adviseLevel0(g);
    }
    g.addPoint(p, label, false);
    note(label);
  }
};

// Searches yield the CPU to the event loop: each searcher thread puts itself in Linux's SCHED_IDLE
// class, so any ordinary thread that wakes up — the event loop with a client's GET, redis-server —
// takes the core at once instead of waiting for the search's time slice to end (with nice alone a
// woken thread can wait ~1.5 ms per wake-up), while every otherwise idle cycle still goes to them.
void yieldingThread() {
#ifdef __linux__
  struct sched_param param = {};
  if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
#endif
}

// The engine's own threads, not libuv's pool: a thread that put itself in SCHED_IDLE cannot leave it
// (unprivileged), so pool threads that ran a search would run every later file or DNS job of the
// process at idle priority. Three pools per JS environment:
//  - searchers (one thread per core, at least 4, SCHED_IDLE): searches use every idle cycle and
//    never delay the event loop or redis-server;
//  - writers (2 threads, normal priority): inserts; an insert given only idle CPU would starve
//    under load while every ADD of a store waits for the one before it;
//  - bulk (1 thread, SCHED_IDLE): snapshot saves, loads and checksums, each 100+ ms of CPU for a
//    big store, in the background: given at normal priority they take a core from the event loop
//    (a proxied GET then waits milliseconds for it), and nothing waits for them but the snapshot.
struct Task {
  virtual ~Task() = default;
  virtual void run() = 0;              // on a pool thread
  virtual void done(Napi::Env) = 0;    // on the JS thread: resolve or reject
  virtual bool settles() { return true; }  // false: nothing to tell the JS thread (see Pool::post)
  Task* next = nullptr;                // links the lock-free hand-off lists
};

// A lock-free list many threads push onto and one taker empties at once (oldest first).
class Inbox {
 public:
  // Returns true when the list was empty before.
  bool push(Task* t) {
    Task* head = top.load(std::memory_order_relaxed);
    do t->next = head;
    while (!top.compare_exchange_weak(head, t, std::memory_order_seq_cst, std::memory_order_relaxed));
    return head == nullptr;
  }
  // Everything pushed so far, in push order.
  Task* takeAll() {
    Task* t = top.exchange(nullptr, std::memory_order_acq_rel);
    Task* fifo = nullptr;
    while (t != nullptr) {
      Task* n = t->next;
      t->next = fifo;
      fifo = t;
      t = n;
    }
    return fifo;
  }

 private:
  std::atomic<Task*> top{nullptr};
};

// Wakes sleeping pool threads without a lock the waker could block on.
class Wakeup {
 public:
  uint32_t ticket() const { return seq.load(std::memory_order_seq_cst); }
  // Sleeps unless notify() was called since ticket() returned `seen`.
  void wait(uint32_t seen) {
    sleepers.fetch_add(1, std::memory_order_seq_cst);
#ifdef __linux__
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&seq), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
#else
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return seq.load() != seen; });
#endif
    sleepers.fetch_sub(1, std::memory_order_seq_cst);
  }
  void notify(int n) {
    seq.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) == 0) return;  // nobody asleep: no system call
#ifdef __linux__
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&seq), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
#else
    { std::lock_guard<std::mutex> lock(mutex); }
    cv.notify_all();
#endif
  }

 private:
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word");
  std::atomic<uint32_t> seq{0};
  std::atomic<int> sleepers{0};
#ifndef __linux__
  std::mutex mutex;
  std::condition_variable cv;
#endif
};

// The JS thread never takes a lock a pool thread can hold: work goes in through a lock-free list
// and completions come back through another, announced by a libuv async handle. (With a mutex
// shared both ways, the event loop blocked thousands of times a second under KNN load waiting for
// a SCHED_IDLE searcher, which runs only when a core is otherwise idle, to let go of it.)
class Pool {
 public:
  Pool(Napi::Env env, const char* name, int threads, bool idle) : env(env), context(env, name) {
    uv_loop_t* uvLoop = nullptr;
    if (napi_get_uv_event_loop(env, &uvLoop) != napi_ok || uvLoop == nullptr) Napi::Error::Fatal("rlgraph", "no event loop");
    async = new uv_async_t;
    async->data = this;
    uv_async_init(uvLoop, async, [](uv_async_t* h) { static_cast<Pool*>(h->data)->settle(); });
    uv_unref(reinterpret_cast<uv_handle_t*>(async));  // only pending work keeps the process alive
    napi_add_env_cleanup_hook(env, [](void* self) { static_cast<Pool*>(self)->close(); }, this);
    std::string label = name;
    for (int i = 0; i < threads; i++) {
      std::thread([this, idle, label] {
#ifdef __linux__
        pthread_setname_np(pthread_self(), label.substr(0, 15).c_str());  // shown in top -H, /proc
#endif
        if (idle) yieldingThread();
        loop();
      }).detach();
    }
  }

  // On the JS thread.
  void submit(Task* t) {
    if (pending++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async));
    post(t);
  }

  // Queues `t`. Alone (not through submit): work nobody waits for (freeing a snapshot buffer),
  // from any thread, even during a GC; it neither keeps the process alive nor wakes the JS thread.
  void post(Task* t) {
    inbox.push(t);
    wakeup.notify(1);
  }

 private:
  // The next task, oldest first; pool threads only.
  Task* take() {
    std::lock_guard<std::mutex> lock(workMutex);
    if (queue.empty()) {
      for (Task* t = inbox.takeAll(); t != nullptr; t = t->next) queue.push_back(t);
      if (queue.size() > 1) wakeup.notify((int)queue.size() - 1);  // a burst: wake others for the rest
    }
    if (queue.empty()) return nullptr;
    Task* t = queue.front();
    queue.pop_front();
    return t;
  }

  void loop() {
    for (;;) {
      uint32_t seen = wakeup.ticket();
      Task* t = take();
      if (t == nullptr) {
        wakeup.wait(seen);
        continue;
      }
      t->run();
      if (!t->settles()) {
        delete t;
        continue;
      }
      // Completions are handed back in batches: only the first of a batch wakes the JS thread,
      // which settles every task done by then in one go (one wake-up for a burst of searches).
      if (done.push(t)) {
        std::lock_guard<std::mutex> lock(sendMutex);  // pool threads and teardown only
        if (!closed) uv_async_send(async);
      }
    }
  }

  // On the JS thread, from the event loop: resolves or rejects each finished task's promise, then
  // runs the microtasks that queued (as a callback from JS-land would).
  void settle() {
    Task* t = done.takeAll();
    if (t == nullptr) return;
    Napi::HandleScope handles(env);
    if (!canRunJs()) return;  // a worker being terminated: its promises die with it (left unsettled)
    Napi::CallbackScope scope(env, context);
    int n = 0;
    while (t != nullptr) {
      Task* next = t->next;
      t->done(env);
      if (!canRunJs()) return;
      if (env.IsExceptionPending()) napi_fatal_exception(env, env.GetAndClearPendingException().Value());
      delete t;
      t = next;
      n++;
    }
    pending -= n;
    if (pending == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async));
  }

  // False once the environment is stopping (a worker being terminated): N-API calls that may run
  // JS then fail, and values they create come back empty. (napi_coerce_to_bool is such a call.)
  bool canRunJs() {
    napi_value undefined, b;
    return napi_get_undefined(env, &undefined) == napi_ok && napi_coerce_to_bool(env, undefined, &b) == napi_ok;
  }

  // The JS environment is going away: no more wake-ups for it. Tasks still running finish and
  // are left unsettled (their promises die with the environment).
  void close() {
    {
      std::lock_guard<std::mutex> lock(sendMutex);
      closed = true;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(async), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  }

  Napi::Env env;
  Napi::AsyncContext context;
  uv_async_t* async = nullptr;
  Inbox inbox;        // submitted, not yet taken by a pool thread
  Wakeup wakeup;
  std::mutex workMutex;  // pool threads only
  std::deque<Task*> queue;
  Inbox done;         // completed, not yet settled
  std::mutex sendMutex;
  bool closed = false;
  int pending = 0;    // JS thread only
};

struct Pools {
  Pool* writers;
  Pool* searchers;
  Pool* bulk;
  // Never freed: their threads wait on them for good once the environment is gone.
  static void keep(Napi::Env, Pools*) {}
  static Pools& of(Napi::Env env) {
    Pools* p = env.GetInstanceData<Pools>();
    if (p == nullptr) {
      unsigned cores = std::max(4u, std::thread::hardware_concurrency());
      p = new Pools{new Pool(env, "rlgraph-write", 2, false), new Pool(env, "rlgraph-search", (int)cores, true),
                    new Pool(env, "rlgraph-bulk", 1, true)};
      env.SetInstanceData<Pools, &Pools::keep>(p);
    }
    return *p;
  }
};

// A promise settled by work on a pool thread. W is called there (it may throw), then
// W::result(env) on the JS thread gives the value; one allocation per task.
template <typename W>
struct Job : Task {
  Napi::Promise::Deferred deferred;
  std::string error;
  W work;  // holds what it works on (a graph's Core by shared_ptr): a collected Graph cannot free it mid-run
  Job(Napi::Env env, W&& w) : deferred(Napi::Promise::Deferred::New(env)), work(std::move(w)) {}
  void run() override {
    try {
      work();
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "vector engine error";
    } catch (...) {
      error = "vector engine error";
    }
  }
  void done(Napi::Env env) override {
    Napi::HandleScope scope(env);
    if (!error.empty()) {
      deferred.Reject(Napi::Error::New(env, error).Value());
      return;
    }
    Napi::Value v = work.result(env);
    if (!v.IsEmpty()) deferred.Resolve(v);
  }
};

template <typename W>
Napi::Promise runOn(Pool& pool, Napi::Env env, W work) {
  auto* job = new Job<W>(env, std::move(work));
  Napi::Promise promise = job->deferred.Promise();
  pool.submit(job);
  return promise;
}

// Work that resolves to undefined.
template <typename F>
struct Void {
  F f;
  void operator()() { f(); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};
template <typename F>
Napi::Promise runVoid(Pool& pool, Napi::Env env, F f) {
  return runOn(pool, env, Void<F>{std::move(f)});
}

// Is v a typed array of this element type (the argument checks of the functions below)?
static bool isTyped(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

// ---- crc32 -----------------------------------------------------------------------------------------
// zlib's CRC-32 (the checksum snapshots carry), slicing by 8, so a 70 MB snapshot is checked on the
// bulk thread instead of the event loop.
struct Crc32Tables {
  uint32_t t[8][256];
  Crc32Tables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
      for (int k = 1; k < 8; k++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  }
};

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc) {
  static const Crc32Tables tables;
  const auto& t = tables.t;
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;  // little-endian hosts (x86-64, arm64)
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
        t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = t[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
  return ~c;
}

struct CrcWork {
  const uint8_t* data;
  size_t length;
  uint32_t value;
  Napi::Reference<Napi::Uint8Array> keep;  // `data` stays alive while the bulk thread reads it
  void operator()() { value = crc32(data, length, value); }
  Napi::Value result(Napi::Env env) { return Napi::Number::New(env, value); }
};

// crc32Async(data: Uint8Array, value = 0) → Promise<number>, on the bulk thread; `data` is kept
// alive (and must not change) until it settles.
Napi::Value Crc32Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !isTyped(info[0], napi_uint8_array)) {
    Napi::TypeError::New(env, "crc32Async(data: Uint8Array, value?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto a = info[0].As<Napi::Uint8Array>();
  uint32_t value = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return runOn(*Pools::of(env).bulk, env, CrcWork{a.Data(), a.ByteLength(), value, Napi::Persistent(a)});
}

// ---- snapshot buffers --------------------------------------------------------------------------------
// A snapshot is assembled in (or read into) one buffer of the store's size, 70 MB for 100k x 128.
// Allocated by V8 that buffer costs the event loop dearly: its page faults as it is first written,
// a full collection V8 starts for that much external memory, and freeing it inside a later
// collection. These are allocated outside V8's heap accounting (so they start no collection),
// faulted in on a writer thread, and freed on the bulk thread as soon as releaseBuffer detaches
// them (or when collected, if never released).
struct FreeTask : Task {
  void* p;
  explicit FreeTask(void* q) : p(q) {}
  void run() override { std::free(p); }
  void done(Napi::Env) override {}
  bool settles() override { return false; }
};

// Frees a graph (or a replaced index) on the bulk thread: a 100k-vector graph is ~70 MB in 100k+
// blocks, and freeing it on the JS thread (a collected Graph's finalizer, a reload swapping indexes)
// held the event loop for 10-20 ms.
struct ReleaseTask : Task {
  std::shared_ptr<Core> core;
  std::unique_ptr<Hnsw> index;
  void run() override {
    index.reset();
    core.reset();
  }
  void done(Napi::Env) override {}
  bool settles() override { return false; }
};

struct AllocWork {
  size_t size;
  void* p = nullptr;
  AllocWork(size_t n) : size(n) {}
  AllocWork(AllocWork&& o) noexcept : size(o.size), p(o.p) { o.p = nullptr; }
  ~AllocWork() { std::free(p); }  // never handed over (rejected)
  void operator()() {
    p = std::malloc(size > 0 ? size : 1);
    if (p == nullptr) throw std::runtime_error("out of memory for a snapshot buffer");
    volatile char* c = static_cast<volatile char*>(p);
    for (size_t o = 0; o < size; o += 4096) c[o] = 0;  // every page faulted in here, not on the loop
  }
  Napi::Value result(Napi::Env env) {
    void* q = p;
    p = nullptr;
    Pool* bulk = Pools::of(env).bulk;
    return Napi::ArrayBuffer::New(env, q, size, [bulk](Napi::Env, void* data) { bulk->post(new FreeTask(data)); });
  }
};

// allocBufferAsync(size, background?) → Promise<ArrayBuffer>: memory for a snapshot, faulted in off the event loop.
Napi::Value AllocBufferAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    Napi::TypeError::New(env, "allocBufferAsync(size)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  size_t size = (size_t)info[0].As<Napi::Number>().Int64Value();
  bool background = info.Length() > 1 && info[1].ToBoolean().Value();
  // A writer thread (normal priority) by default: a snapshot waits for this buffer while it holds
  // the store. In the background (a snapshot being read): the bulk thread, at idle priority, so
  // faulting in 70 MB does not take a core from the event loop or redis-server.
  Pools& pools = Pools::of(env);
  return runOn(background ? *pools.bulk : *pools.writers, env, AllocWork(size));
}

// releaseBuffer(arrayBuffer): detaches it (every view of it now has length 0), which frees its
// memory on the bulk thread.
Napi::Value ReleaseBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "releaseBuffer(arrayBuffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto ab = info[0].As<Napi::ArrayBuffer>();
  if (!ab.IsDetached()) ab.Detach();
  return env.Undefined();
}

class Graph;

// [label, distance] pairs, nearest first, in one Float64Array (one allocation; labels are exact).
Napi::Value hitsToJs(Napi::Env env, const std::vector<Hit>& hits) {
  auto out = Napi::Float64Array::New(env, hits.size() * 2);
  if (out.IsEmpty()) return Napi::Value();  // the environment is stopping
  double* p = out.Data();
  for (size_t i = 0; i < hits.size(); i++) {
    p[2 * i] = (double)hits[i].second;
    p[2 * i + 1] = hits[i].first;
  }
  return out;
}

class Graph : public Napi::ObjectWrap<Graph> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "Graph",
                                   {
                                       InstanceMethod("init", &Graph::InitIndex),
                                       InstanceMethod("add", &Graph::Add),
                                       InstanceMethod("addAsync", &Graph::AddAsync),
                                       InstanceMethod("addBatchAsync", &Graph::AddBatchAsync),
                                       InstanceMethod("markDelete", &Graph::MarkDelete),
                                       InstanceMethod("search", &Graph::Search),
                                       InstanceMethod("searchAsync", &Graph::SearchAsync),
                                       InstanceMethod("getPoint", &Graph::GetPoint),
                                       InstanceMethod("resize", &Graph::Resize),
                                       InstanceMethod("relabel", &Graph::Relabel),
                                       InstanceMethod("savedSize", &Graph::SavedSize),
                                       InstanceMethod("saveIntoAsync", &Graph::SaveIntoAsync),
                                       InstanceMethod("loadFromAsync", &Graph::LoadFromAsync),
                                       InstanceMethod("currentCount", &Graph::CurrentCount),
                                       InstanceMethod("capacity", &Graph::Capacity),
                                       InstanceMethod("deletedCount", &Graph::DeletedCount),
                                   });
    exports.Set("Graph", f);
    exports.Set("simd", Napi::String::New(env, simdLevel()));
    return exports;
  }

  // new Graph(space: 'l2' | 'ip', dim)
  Graph(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Graph>(info), bulk(Pools::of(info.Env()).bulk) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
      Napi::TypeError::New(env, "Graph(space, dim)").ThrowAsJavaScriptException();
      return;
    }
    std::string s = info[0].As<Napi::String>();
    core.ip = s == "ip";
    core.dim = info[1].As<Napi::Number>().Uint32Value();
    core.makeSpace();
  }

  // Shared with the work in flight on it, so a Graph collected (or torn down with its environment)
  // while a pool thread is inside it does not free it under that thread.
  std::shared_ptr<Core> shared = std::make_shared<Core>();
  Core& core = *shared;
  Pool* bulk;  // never freed (see Pools), so usable from the finalizer

  ~Graph() override {
    auto* t = new ReleaseTask;
    t->core = std::move(shared);
    bulk->post(t);
  }

 private:
  // init(maxElements, m, efConstruction, seed)
  Napi::Value InitIndex(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      size_t max = info[0].As<Napi::Number>().Int64Value();
      size_t m = info[1].As<Napi::Number>().Uint32Value();
      size_t efc = info[2].As<Napi::Number>().Uint32Value();
      size_t seed = info.Length() > 3 ? info[3].As<Napi::Number>().Uint32Value() : 100;
      core.index.reset(new Hnsw(core.space.get(), max, m, efc, seed, true));
      adviseLevel0(*core.index);
      core.where.clear();
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  bool point(const Napi::CallbackInfo& info, size_t at, const float** out) {
    if (!isTyped(info[at], napi_float32_array)) {
      Napi::TypeError::New(info.Env(), "expected a Float32Array").ThrowAsJavaScriptException();
      return false;
    }
    auto a = info[at].As<Napi::Float32Array>();
    if (a.ElementLength() != core.dim) {
      Napi::RangeError::New(info.Env(), "point has the wrong dimension").ThrowAsJavaScriptException();
      return false;
    }
    *out = a.Data();
    return true;
  }

  // add(point: Float32Array, label, maxCapacity): synchronous (small indexes).
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const float* p;
    if (!point(info, 0, &p)) return env.Undefined();
    try {
      core.add(p, (labeltype)info[1].As<Napi::Number>().Int64Value(), (size_t)info[2].As<Napi::Number>().Int64Value());
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // addAsync(point, label, maxCapacity) → Promise<void>, on a writer thread.
  Napi::Value AddAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const float* p;
    if (!point(info, 0, &p)) return env.Undefined();
    std::vector<float> data(p, p + core.dim);
    labeltype label = (labeltype)info[1].As<Napi::Number>().Int64Value();
    size_t max = (size_t)info[2].As<Napi::Number>().Int64Value();
    std::shared_ptr<Core> c = shared;
    return runVoid(*Pools::of(env).writers, env, [c, data = std::move(data), label, max] { c->add(data.data(), label, max); });
  }

  // addBatchAsync(points, labels, maxCapacity) → Promise<number | Error>: the points (labels.length
  // × dim floats, one after another) inserted in order by one writer task. Resolves to the number
  // inserted; when an insert throws, to an Error (its message) whose `inserted` says how many went
  // in before it: the rest were not tried.
  struct AddBatchWork {
    std::shared_ptr<Core> core;
    std::vector<float> points;
    std::vector<labeltype> labels;
    size_t max;
    size_t inserted = 0;
    std::string error;
    void operator()() {
      for (; inserted < labels.size(); inserted++) {
        try {
          core->add(points.data() + inserted * core->dim, labels[inserted], max);
          // Between two inserts (0.3-1 ms each) the core goes to any thread waiting for it: a batch
          // must not hold it longer than one insert would from the event loop or redis-server
          // (bench:latency (b)'s load, batches of up to 8: GET p99 3.6-3.7 ms without, 1.5-2.4 with).
          sched_yield();
        } catch (const std::exception& e) {
          error = *e.what() ? e.what() : "vector engine error";
          return;
        } catch (...) {
          error = "vector engine error";
          return;
        }
      }
    }
    Napi::Value result(Napi::Env env) {
      if (error.empty()) return Napi::Number::New(env, (double)inserted);
      Napi::Error e = Napi::Error::New(env, error);
      e.Set("inserted", Napi::Number::New(env, (double)inserted));
      return e.Value();
    }
  };

  Napi::Value AddBatchAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!isTyped(info[0], napi_float32_array) || !isTyped(info[1], napi_uint32_array)) {
      Napi::TypeError::New(env, "expected a Float32Array and a Uint32Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto pts = info[0].As<Napi::Float32Array>();
    auto lbl = info[1].As<Napi::Uint32Array>();
    if (pts.ElementLength() != lbl.ElementLength() * core.dim) {
      Napi::RangeError::New(env, "points do not match the labels and the dimension").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    AddBatchWork w{shared, std::vector<float>(pts.Data(), pts.Data() + pts.ElementLength()),
                   std::vector<labeltype>(lbl.Data(), lbl.Data() + lbl.ElementLength()),
                   (size_t)info[2].As<Napi::Number>().Int64Value()};
    return runOn(*Pools::of(env).writers, env, std::move(w));
  }

  Napi::Value MarkDelete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      core.h().markDelete((labeltype)info[0].As<Napi::Number>().Int64Value());
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // The filter argument: a Uint32Array bitset over labels, or undefined/null.
  static bool filterWords(const Napi::CallbackInfo& info, size_t at, std::vector<uint32_t>* out, bool* has) {
    *has = false;
    if (info.Length() <= at || info[at].IsUndefined() || info[at].IsNull()) return true;
    if (!isTyped(info[at], napi_uint32_array)) {
      Napi::TypeError::New(info.Env(), "filter must be a Uint32Array bitset").ThrowAsJavaScriptException();
      return false;
    }
    auto a = info[at].As<Napi::Uint32Array>();
    out->assign(a.Data(), a.Data() + a.ElementLength());
    *has = true;
    return true;
  }

  // search(query, k, ef, exact, filter?) → Float64Array of [label, distance] pairs, nearest first
  Napi::Value Search(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const float* q;
    if (!point(info, 0, &q)) return env.Undefined();
    std::vector<uint32_t> words;
    bool has;
    if (!filterWords(info, 4, &words, &has)) return env.Undefined();
    try {
      size_t k = info[1].As<Napi::Number>().Uint32Value();
      size_t ef = info[2].As<Napi::Number>().Uint32Value();
      return hitsToJs(env, core.search(q, k, ef, info[3].As<Napi::Boolean>().Value(), words, has));
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }

  // searchAsync(query, k, ef, exact, filter?) → Promise<Float64Array> (as search), on a searcher thread.
  struct SearchWork {
    std::shared_ptr<Core> core;
    std::vector<float> query;
    std::vector<uint32_t> words;
    bool filtered;
    size_t k, ef;
    bool exact;
    std::vector<Hit> hits;
    void operator()() { hits = core->search(query.data(), k, ef, exact, words, filtered); }
    Napi::Value result(Napi::Env env) { return hitsToJs(env, hits); }
  };

  Napi::Value SearchAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const float* q;
    if (!point(info, 0, &q)) return env.Undefined();
    SearchWork w{shared, std::vector<float>(q, q + core.dim), {}, false, 0, 0, false, {}};
    if (!filterWords(info, 4, &w.words, &w.filtered)) return env.Undefined();
    w.k = info[1].As<Napi::Number>().Uint32Value();
    w.ef = info[2].As<Napi::Number>().Uint32Value();
    w.exact = info[3].As<Napi::Boolean>().Value();
    return runOn(*Pools::of(env).searchers, env, std::move(w));
  }

  // getPoint(label) → Float32Array (the stored vector, as the graph holds it)
  Napi::Value GetPoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      auto v = core.h().getDataByLabel<float>((labeltype)info[0].As<Napi::Number>().Int64Value());
      auto out = Napi::Float32Array::New(env, v.size());
      std::memcpy(out.Data(), v.data(), v.size() * sizeof(float));
      return out;
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }

  Napi::Value Resize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      core.h().resizeIndex((size_t)info[0].As<Napi::Number>().Int64Value());
      adviseLevel0(core.h());
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // relabel(from: Uint32Array, to: Uint32Array): element labelled from[i] becomes to[i]; every other
  // element must be deleted and gets a label counting down from 2^32 − 1 (no slot reaches those).
  // Reads snapshots whose graph was labelled by item id (format 1).
  Napi::Value Relabel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      auto from = info[0].As<Napi::Uint32Array>();
      auto to = info[1].As<Napi::Uint32Array>();
      if (from.ElementLength() != to.ElementLength()) throw std::runtime_error("relabel: lengths differ");
      std::unordered_map<labeltype, labeltype> map;
      map.reserve(from.ElementLength());
      for (size_t i = 0; i < from.ElementLength(); i++) map[from[i]] = to[i];
      Hnsw& g = core.h();
      size_t n = g.cur_element_count;
      labeltype spare = 0xFFFFFFFFu;
      for (tableint i = 0; i < n; i++) {
        auto it = map.find(g.getExternalLabel(i));
        if (it != map.end()) {
          g.setExternalLabel(i, it->second);
        } else {
          if (!g.isMarkedDeleted(i)) throw std::runtime_error("a live graph element has no item");
          g.setExternalLabel(i, spare--);
        }
      }
      g.label_lookup_.clear();
      for (tableint i = 0; i < n; i++) g.label_lookup_[g.getExternalLabel(i)] = i;
      core.rebuildWhere();
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // savedSize(): bytes of hnswlib's saved form of this graph (what saveIntoAsync writes).
  Napi::Value SavedSize(const Napi::CallbackInfo& info) {
    if (!core.index) return Napi::Number::New(info.Env(), 0);
    return Napi::Number::New(info.Env(), (double)core.index->indexFileSize());
  }

  // A non-negative integer argument (absent: 0); false (with a RangeError thrown) if not.
  static bool offset(const Napi::CallbackInfo& info, size_t at, size_t* out) {
    double v = info[at].IsNumber() ? info[at].As<Napi::Number>().DoubleValue() : info[at].IsUndefined() ? 0 : -1;
    if (!(v >= 0 && v <= 9007199254740991.0) || v != (double)(uint64_t)v) {
      Napi::RangeError::New(info.Env(), "expected a byte offset").ThrowAsJavaScriptException();
      return false;
    }
    *out = (size_t)v;
    return true;
  }

  // A Uint8Array argument and a byte range in it; false (with a TypeError thrown) if not.
  static bool bytes(const Napi::CallbackInfo& info, size_t at, size_t from, size_t to, uint8_t** out) {
    if (!isTyped(info[at], napi_uint8_array)) {
      Napi::TypeError::New(info.Env(), "expected a Uint8Array").ThrowAsJavaScriptException();
      return false;
    }
    auto a = info[at].As<Napi::Uint8Array>();
    if (from > to || to > a.ByteLength()) {
      Napi::RangeError::New(info.Env(), "byte range outside the buffer").ThrowAsJavaScriptException();
      return false;
    }
    *out = a.Data() + from;
    return true;
  }

  // saveIntoAsync(buf: Uint8Array, at): hnswlib's saved form (hnswlib's saveIndex format, savedSize()
  // bytes) written straight into buf at `at` on the bulk thread: no temporary file, and no copy of
  // it back through libuv's pool at normal priority. The graph must not change until it settles.
  struct SaveWork {
    std::shared_ptr<Core> core;
    uint8_t* out;
    size_t room;
    Napi::Reference<Napi::Uint8Array> keep;
    void operator()() {
      Hnsw& g = core->h();
      if (g.indexFileSize() > room) throw std::runtime_error("graph changed during its save");
      uint8_t* p = out;
      auto put = [&p](const void* v, size_t n) {
        std::memcpy(p, v, n);
        p += n;
      };
      size_t count = g.cur_element_count;
      put(&g.offsetLevel0_, sizeof g.offsetLevel0_);
      put(&g.max_elements_, sizeof g.max_elements_);
      put(&count, sizeof count);
      put(&g.size_data_per_element_, sizeof g.size_data_per_element_);
      put(&g.label_offset_, sizeof g.label_offset_);
      put(&g.offsetData_, sizeof g.offsetData_);
      put(&g.maxlevel_, sizeof g.maxlevel_);
      put(&g.enterpoint_node_, sizeof g.enterpoint_node_);
      put(&g.maxM_, sizeof g.maxM_);
      put(&g.maxM0_, sizeof g.maxM0_);
      put(&g.M_, sizeof g.M_);
      put(&g.mult_, sizeof g.mult_);
      put(&g.ef_construction_, sizeof g.ef_construction_);
      put(g.data_level0_memory_, count * g.size_data_per_element_);
      for (size_t i = 0; i < count; i++) {
        unsigned int linkListSize = g.element_levels_[i] > 0 ? g.size_links_per_element_ * g.element_levels_[i] : 0;
        put(&linkListSize, sizeof linkListSize);
        if (linkListSize) put(g.linkLists_[i], linkListSize);
      }
    }
    Napi::Value result(Napi::Env env) { return env.Undefined(); }
  };

  Napi::Value SaveIntoAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!core.index) {
      Napi::Error::New(env, "graph is not initialised").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t at, size = core.index->indexFileSize();
    uint8_t* out;
    if (!offset(info, 1, &at) || !bytes(info, 0, at, at + size, &out)) return env.Undefined();
    return runOn(*Pools::of(env).bulk, env, SaveWork{shared, out, size, Napi::Persistent(info[0].As<Napi::Uint8Array>())});
  }

  // loadFromAsync(buf: Uint8Array, start, end): replaces the graph with the saved form in
  // buf[start, end) (as saveIntoAsync wrote it), read on the bulk thread. It is loaded with its
  // element count as its capacity (it grows again on demand): hnswlib allocates its per-element
  // arrays for the capacity it reads, so loading the saved capacity and trimming it afterwards held
  // both sizes at once and left the allocator fragmented.
  struct LoadWork {
    std::shared_ptr<Core> core;
    const uint8_t* data;
    size_t size;
    Napi::Reference<Napi::Uint8Array> keep;
    std::unique_ptr<Hnsw> index;
    std::vector<uint32_t> where;
    void operator()() {
      // hnswlib reads its saved form from a file only: an anonymous in-memory one where there is
      // one (no disk writes), else a temporary file.
      std::string path;
      int fd = -1;
#ifdef __linux__
      fd = (int)syscall(SYS_memfd_create, "rlgraph-load", 0);
      if (fd >= 0) path = "/proc/self/fd/" + std::to_string(fd);
#endif
      if (fd < 0) {
        const char* dir = std::getenv("TMPDIR");
        std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/rlgraph-XXXXXX";
        std::vector<char> name(tmpl.begin(), tmpl.end());
        name.push_back(0);
        fd = mkstemp(name.data());
        if (fd < 0) throw std::runtime_error("cannot create a temporary file for the graph");
        unlink(name.data());  // the open descriptor keeps it readable through /dev/fd
        path = "/dev/fd/" + std::to_string(fd);
      }
      struct Closer {
        int fd;
        ~Closer() { close(fd); }
      } closer{fd};
      if (size >= 24) {
        // the element count as the capacity (bytes 8-16: max_elements, 16-24: cur_element_count)
        uint8_t head[24];
        std::memcpy(head, data, 24);
        uint64_t maxElements, count;
        std::memcpy(&maxElements, head + 8, 8);
        std::memcpy(&count, head + 16, 8);
        if (maxElements > count) {
          uint64_t cap = count > 0 ? count : 1;
          std::memcpy(head + 8, &cap, 8);
        }
        writeAll(fd, head, 24);
        writeAll(fd, data + 24, size - 24);
      } else {
        writeAll(fd, data, size);
      }
      index.reset(new Hnsw(core->space.get(), path, false, 0, true));
      // Already filled (4 KB pages): marked, khugepaged folds it into huge pages in the background.
      // Moving it to a fresh block at once cost a 66 MB copy at every start and ~8 MB more RSS.
      adviseLevel0(*index);
      where = buildWhere(*index);
    }
    static void writeAll(int fd, const uint8_t* p, size_t n) {
      while (n > 0) {
        ssize_t w = write(fd, p, std::min<size_t>(n, 1 << 30));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw std::runtime_error("cannot write the graph for loading");
        p += w;
        n -= (size_t)w;
      }
    }
    // The loaded graph replaces the old one on the JS thread, between two searches; the old one is
    // freed on the bulk thread.
    Napi::Value result(Napi::Env env) {
      auto* old = new ReleaseTask;
      old->index = std::move(core->index);
      core->index = std::move(index);
      core->where = std::move(where);
      keep.Reset();
      Pools::of(env).bulk->post(old);
      return env.Undefined();
    }
  };

  Napi::Value LoadFromAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t from, to;
    uint8_t* data;
    if (!offset(info, 1, &from) || !offset(info, 2, &to) || !bytes(info, 0, from, to, &data)) return env.Undefined();
    return runOn(*Pools::of(env).bulk, env, LoadWork{shared, data, to - from, Napi::Persistent(info[0].As<Napi::Uint8Array>()), nullptr, {}});
  }

  Napi::Value CurrentCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), core.index ? (double)core.index->cur_element_count : 0);
  }
  Napi::Value Capacity(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), core.index ? (double)core.index->max_elements_ : 0);
  }
  Napi::Value DeletedCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), core.index ? (double)core.index->num_deleted_ : 0);
  }
};

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32Async", Napi::Function::New(env, Crc32Async, "crc32Async"));
  exports.Set("allocBufferAsync", Napi::Function::New(env, AllocBufferAsync, "allocBufferAsync"));
  exports.Set("releaseBuffer", Napi::Function::New(env, ReleaseBuffer, "releaseBuffer"));
  return Graph::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(rlgraph, InitAll)
