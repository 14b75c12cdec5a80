// Can a decoded token that skips rows inside GLASS's selection beat GLASS's compacted matrices? One thread, the FFN
// of every layer of a Qwen2.5-Coder-0.5B-shaped model (random weights: speed does not depend on their values), in
// ggml's own row kernels (vec_dot of the CPU backend), against the two-level rule of docs/two-level.md:
//
//   GLASS @0.5         compacted gate and up (k rows), h = silu(g) * u, compacted down (n_embd rows of k, Q4_K)
//   two-level @0.5     gate over D = 0.75 of the neurons, the token's m = f * k largest |silu(g)| (f = 0.5), their
//                      up rows, and their rows of a neuron-major down (row j = neuron j's output column, Q4_0):
//                      y += h_j * row_j, dequantized and accumulated in one pass (AVX2); the scattered rows are
//                      fetched ahead in software (the hardware prefetcher cannot guess them)
//
// Both read the same bytes per token (about 106 MB). Prints one JSON object (median over repeats, ms per token).
// Build and run (x86-64 with AVX2) against the patched wheel's ggml, with the headers of a dev tree
// (python3 tools/build_llama_cpp_python.py --dev-tree DIR) or of the pinned sdist's vendor/llama.cpp:
//
//   L=$(.venv/bin/python -c "import llama_cpp, pathlib; print(pathlib.Path(llama_cpp.__file__).parent / 'lib')")
//   g++ -O3 -mavx2 -mfma -mf16c -std=c++17 tools/two_level_kernel_bench.cpp -I DIR/ggml/include -L $L
//       -lggml-base -lggml-cpu -lggml -Wl,-rpath,$L -o /tmp/two-level-bench
//   /tmp/two-level-bench > docs/results/two-level-kernel.json    (run alone: one thread, memory-bound)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <immintrin.h>
#include <random>
#include <vector>

#include "ggml-cpu.h"
#include "ggml.h"

namespace {

constexpr int64_t N_EMBD = 896, N_FF = 4864, N_LAYER = 24;
constexpr int64_t K_GLASS = 2560;  // density 0.5 (2432) padded to the Q4_K block, as the runtime pads it
constexpr int64_t K_SUPER = 3840;  // D = 0.75 (3648) padded the same way
constexpr int64_t M_TOKEN = 1824;  // f = 0.5 of the 3648 selected neurons
constexpr int PREFETCH_ROWS = 6;   // scattered rows fetched this far ahead
constexpr int REPEATS = 31;

double now() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

struct matrix {
    ggml_type type;
    int64_t rows, cols;
    size_t row_size;
    std::vector<uint8_t> data;
    const uint8_t * row(int64_t r) const { return data.data() + r * row_size; }
};

matrix random_matrix(ggml_type type, int64_t rows, int64_t cols, std::mt19937 & rng) {
    std::normal_distribution<float> dist(0, 0.02f);
    std::vector<float> f(rows * cols);
    for (auto & v : f) {
        v = dist(rng);
    }
    matrix m{type, rows, cols, ggml_row_size(type, cols), {}};
    m.data.resize(m.row_size * rows);
    ggml_quantize_chunk(type, f.data(), m.data.data(), 0, rows, cols, nullptr);
    return m;
}

void prefetch_row(const matrix & w, int64_t r) {
    const uint8_t * p = w.row(r);
    for (size_t o = 0; o < w.row_size; o += 64) {
        _mm_prefetch((const char *) p + o, _MM_HINT_T0);
    }
}

// y[i] = row(rows[i]) . x (every row in order when rows is null), in the CPU backend's kernel for the type
void matvec(const matrix & w, const float * x, float * y, const int32_t * rows, int64_t n, std::vector<uint8_t> & xq) {
    const auto * traits = ggml_get_type_traits_cpu(w.type);
    xq.resize(ggml_row_size(traits->vec_dot_type, w.cols));
    ggml_get_type_traits_cpu(traits->vec_dot_type)->from_float(x, xq.data(), w.cols);
    for (int64_t i = 0; i < n; ++i) {
        if (rows && i + PREFETCH_ROWS < n) {
            prefetch_row(w, rows[i + PREFETCH_ROWS]);
        }
        traits->vec_dot(w.cols, y + i, 0, w.row(rows ? rows[i] : i), 0, xq.data(), 0, 1);
    }
}

// y += a * row for a Q4_0 row (blocks: fp16 scale, 16 bytes; element i is the low nibble of byte i, i + 16 the high
// one, both minus 8), dequantized and accumulated in one pass
void axpy_q4_0(float a, const uint8_t * row, float * y, int64_t n) {
    const __m128i low4 = _mm_set1_epi8(0xF), eight = _mm_set1_epi8(8);
    for (int64_t b = 0; b < n / 32; ++b, row += 18, y += 32) {
        ggml_fp16_t h;
        memcpy(&h, row, 2);
        const __m256 s = _mm256_set1_ps(a * ggml_fp16_to_fp32(h));
        const __m128i q = _mm_loadu_si128((const __m128i *) (row + 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, low4), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), low4), eight);
        const __m128i parts[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
        for (int p = 0; p < 4; ++p) {
            const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p]));
            _mm256_storeu_ps(y + 8 * p, _mm256_fmadd_ps(s, f, _mm256_loadu_ps(y + 8 * p)));
        }
    }
}

float silu(float v) {
    return v / (1 + std::exp(-v));
}

// the neurons with the m largest values of v (all >= 0): a threshold by radix selection on the float bits (two
// passes of 2048 buckets, O(k) instead of a sort), then the first m at or above it in index order
int64_t top_m(const float * v, int64_t k, int64_t m, int32_t * out) {
    static uint32_t hist[2048];
    auto bucket_of_need = [](int64_t & need) { // the bucket holding the need-th largest; need becomes its rank there
        int b = 2047;
        while (b > 0 && (int64_t) hist[b] < need) {
            need -= hist[b--];
        }
        return (uint32_t) b;
    };
    int64_t need = m;
    memset(hist, 0, sizeof(hist));
    for (int64_t j = 0; j < k; ++j) { // pass 1: exponent and the top mantissa bits (bits 20-30)
        uint32_t bits;
        memcpy(&bits, v + j, 4);
        hist[bits >> 20]++;
    }
    const uint32_t high = bucket_of_need(need);
    memset(hist, 0, sizeof(hist));
    for (int64_t j = 0; j < k; ++j) { // pass 2: the next 11 bits inside that bucket
        uint32_t bits;
        memcpy(&bits, v + j, 4);
        if ((bits >> 20) == high) {
            hist[(bits >> 9) & 2047]++;
        }
    }
    const uint32_t bits = (high << 20) | (bucket_of_need(need) << 9);
    float threshold;
    memcpy(&threshold, &bits, 4);
    int64_t n = 0;
    for (int64_t j = 0; j < k && n < m; ++j) {
        if (v[j] >= threshold) {
            out[n++] = (int32_t) j;
        }
    }
    return n;
}

struct layer {
    matrix gate, up, down;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

int main() {
    ggml_cpu_init();
    std::mt19937 rng(0);
    std::vector<layer> glass, two_level;  // a model's worth of layers, so that no weight stays in the cache
    for (int64_t l = 0; l < N_LAYER; ++l) {
        glass.push_back({ random_matrix(GGML_TYPE_Q5_0, K_GLASS, N_EMBD, rng), random_matrix(GGML_TYPE_Q5_0, K_GLASS, N_EMBD, rng),
                          random_matrix(GGML_TYPE_Q4_K, N_EMBD, K_GLASS, rng) });
        two_level.push_back({ random_matrix(GGML_TYPE_Q5_0, K_SUPER, N_EMBD, rng), random_matrix(GGML_TYPE_Q5_0, K_SUPER, N_EMBD, rng),
                              random_matrix(GGML_TYPE_Q4_0, K_SUPER, N_EMBD, rng) });
    }
    std::normal_distribution<float> unit(0, 1);
    std::vector<float> x(N_EMBD), y(N_EMBD), g(K_SUPER), u(K_SUPER), h(K_SUPER);
    for (auto & v : x) {
        v = unit(rng);
    }
    std::vector<uint8_t> xq;
    std::vector<int32_t> kept(M_TOKEN);
    std::vector<double> t_glass, t_two, t_gate, t_select, t_up, t_down;
    int64_t n_kept = 0;
    for (int rep = 0; rep < REPEATS; ++rep) {
        const double t0 = now();
        for (const auto & L : glass) {
            matvec(L.gate, x.data(), g.data(), nullptr, K_GLASS, xq);
            matvec(L.up, x.data(), u.data(), nullptr, K_GLASS, xq);
            for (int64_t j = 0; j < K_GLASS; ++j) {
                h[j] = silu(g[j]) * u[j];
            }
            matvec(L.down, h.data(), y.data(), nullptr, N_EMBD, xq);
        }
        const double t1 = now();
        double gate = 0, select = 0, up = 0, down = 0;
        for (const auto & L : two_level) {
            const double a = now();
            matvec(L.gate, x.data(), g.data(), nullptr, K_SUPER, xq);
            const double b = now();
            for (int64_t j = 0; j < K_SUPER; ++j) {
                g[j] = silu(g[j]);
                h[j] = std::fabs(g[j]);
            }
            n_kept = top_m(h.data(), K_SUPER, M_TOKEN, kept.data());
            const double c = now();
            matvec(L.up, x.data(), u.data(), kept.data(), n_kept, xq);
            const double d = now();
            std::fill(y.begin(), y.end(), 0.0f);
            for (int64_t i = 0; i < n_kept; ++i) {
                if (i + PREFETCH_ROWS < n_kept) {
                    prefetch_row(L.down, kept[i + PREFETCH_ROWS]);
                }
                axpy_q4_0(g[kept[i]] * u[i], L.down.row(kept[i]), y.data(), N_EMBD);
            }
            const double e = now();
            gate += b - a; select += c - b; up += d - c; down += e - d;
        }
        const double t2 = now();
        t_glass.push_back(t1 - t0); t_two.push_back(t2 - t1);
        t_gate.push_back(gate); t_select.push_back(select); t_up.push_back(up); t_down.push_back(down);
    }
    const double mb_glass = N_LAYER * (glass[0].gate.data.size() + glass[0].up.data.size() + glass[0].down.data.size()) / 1e6;
    const double mb_two = N_LAYER * (two_level[0].gate.data.size() + (double) M_TOKEN * (two_level[0].up.row_size +
                                                                                         two_level[0].down.row_size)) / 1e6;
    printf("{\"model_shape\": \"Qwen2.5-Coder-0.5B: n_embd %lld, n_ff %lld, %lld layers\", \"threads\": 1, "
           "\"repeats\": %d, \"glass\": {\"density\": 0.5, \"k\": %lld, \"ms_per_token\": %.3f, \"mb_per_token\": %.1f}, "
           "\"two_level\": {\"density\": 0.5, \"selection_density\": 0.75, \"token_fraction\": 0.5, \"k\": %lld, "
           "\"kept_per_token\": %lld, \"ms_per_token\": %.3f, \"mb_per_token\": %.1f, \"gate_ms\": %.3f, "
           "\"select_ms\": %.3f, \"up_ms\": %.3f, \"down_ms\": %.3f}}\n",
           (long long) N_EMBD, (long long) N_FF, (long long) N_LAYER, REPEATS, (long long) K_GLASS, median(t_glass) * 1e3,
           mb_glass, (long long) K_SUPER, (long long) n_kept, median(t_two) * 1e3, mb_two, median(t_gate) * 1e3,
           median(t_select) * 1e3, median(t_up) * 1e3, median(t_down) * 1e3);
    return 0;
}
