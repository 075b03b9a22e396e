/* Issue-rate probe for the instructions the compute floors in runtime_speed.py count on one core:
 * 256-bit fp32 FMA, the AVX2 int8 pair VPMADDUBSW (u8 x s8 -> s16 pairs, 32 multiply-adds) and
 * VPMADDWD (s16 pairs -> s32, the widening an int8 GEMM needs after it), each alone and the two
 * interleaved. Ten independent chains per loop, so the rate is throughput, not latency.
 *
 *     gcc -O2 -mavx2 -mfma benchmarks/simd_rate.c -o /tmp/simd_rate && /tmp/simd_rate
 *
 * The clock cancels in the ratios printed: a core with two FMA pipes issues 2 FMAs per cycle, so
 * "VPMADDUBSW per FMA" x 2 is VPMADDUBSW per cycle, and x 32 its int8 multiply-adds per cycle.
 * (Measured: BENCHMARKS.md, issue 20 hand notes, Zen 2 run.)
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define N 100000000L
#define KEEP(v) __asm__ volatile("" : "+x"(v)) /* the compiler may not fold the chain away */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define TEN(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9)
#define FIVE(X) X(0) X(1) X(2) X(3) X(4)

/* Each loop in its own function, its chains folded into a global after it: only its own ten
 * vectors are live, so none is spilled to memory inside the loop. */
static volatile float sink_f;
static volatile int sink_i;

__attribute__((noinline)) static double fma_loop(float seed) {
    const __m256 b = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-7f);
#define DECL_F(j) __m256 f##j = _mm256_set1_ps(seed);
#define STEP_F(j) f##j = _mm256_fmadd_ps(f##j, b, c);
#define KEEP_F(j) KEEP(f##j);
#define SUM_F(j) s = _mm256_add_ps(s, f##j);
    TEN(DECL_F)
    double began = now();
    for (long i = 0; i < N; i++) { TEN(STEP_F) TEN(KEEP_F) }
    double took = now() - began;
    __m256 s = _mm256_setzero_ps();
    TEN(SUM_F)
    sink_f = _mm256_cvtss_f32(s);
    return took;
}

/* The integer loops: the same body over ten chains of one instruction, or five of each of two. */
#define DECL_U(j) __m256i u##j = ub;
#define STEP_U(j) u##j = _mm256_maddubs_epi16(u##j, ub);
#define KEEP_U(j) KEEP(u##j);
#define SUM_U(j) s = _mm256_xor_si256(s, u##j);
#define DECL_W(j) __m256i w##j = wb;
#define STEP_W(j) w##j = _mm256_madd_epi16(w##j, wb);
#define KEEP_W(j) KEEP(w##j);
#define SUM_W(j) s = _mm256_xor_si256(s, w##j);
#define DECL_M(j) DECL_U(j) DECL_W(j)
#define STEP_M(j) STEP_U(j) STEP_W(j)
#define KEEP_M(j) KEEP_U(j) KEEP_W(j)
#define SUM_M(j) SUM_U(j) SUM_W(j)
#define INT_LOOP(NAME, REPEAT, X)                                                                     \
    __attribute__((noinline)) static double NAME(int seed) {                                          \
        const __m256i ub = _mm256_set1_epi8((char)seed), wb = _mm256_set1_epi16((short)seed);        \
        (void)ub;                                                                                     \
        (void)wb;                                                                                     \
        REPEAT(DECL_##X)                                                                              \
        double began = now();                                                                         \
        for (long i = 0; i < N; i++) { REPEAT(STEP_##X) REPEAT(KEEP_##X) }                            \
        double took = now() - began;                                                                  \
        __m256i s = _mm256_setzero_si256();                                                           \
        REPEAT(SUM_##X)                                                                               \
        sink_i = _mm256_cvtsi256_si32(s);                                                             \
        return took;                                                                                  \
    }

INT_LOOP(maddubs_loop, TEN, U)
INT_LOOP(maddwd_loop, TEN, W)
INT_LOOP(mixed_loop, FIVE, M)

int main(void) {
    volatile float fseed = 1.0001f;
    volatile int iseed = 3;
    double fma_s = fma_loop(fseed), ubsw_s = maddubs_loop(iseed), wd_s = maddwd_loop(iseed),
           mixed_s = mixed_loop(iseed);
    double n = 10.0 * N;
    printf("G instructions / s (256-bit): FMA %.2f, VPMADDUBSW %.2f, VPMADDWD %.2f, "
           "VPMADDUBSW+VPMADDWD interleaved %.2f (sink %g %d)\n",
           n / fma_s / 1e9, n / ubsw_s / 1e9, n / wd_s / 1e9, n / mixed_s / 1e9, sink_f, sink_i);
    printf("per FMA: VPMADDUBSW %.2f, VPMADDWD %.2f, either when interleaved %.2f\n", fma_s / ubsw_s,
           fma_s / wd_s, fma_s / mixed_s);
    printf("with 2 FMA pipes: VPMADDUBSW %.1f / cycle = %.0f int8 MAC / cycle; "
           "VPMADDUBSW+VPMADDWD pairs %.1f / cycle = %.0f int8 MAC / cycle\n",
           2 * fma_s / ubsw_s, 64 * fma_s / ubsw_s, fma_s / mixed_s, 32 * fma_s / mixed_s);
    return 0;
}
