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

int main(void) {
    volatile float fseed = 1.0001f;
    volatile int iseed = 3;
    double began, fma_s, ubsw_s, wd_s, mixed_s;
    const __m256 fb = _mm256_set1_ps(0.9999f), fc = _mm256_set1_ps(1e-7f);
    const __m256i ub = _mm256_set1_epi8((char)iseed), wb = _mm256_set1_epi16((short)iseed);

#define DECL_F(j) __m256 f##j = _mm256_set1_ps(fseed);
#define STEP_F(j) f##j = _mm256_fmadd_ps(f##j, fb, fc); KEEP(f##j);
    TEN(DECL_F)
    began = now();
    for (long i = 0; i < N; i++) { TEN(STEP_F) }
    fma_s = now() - began;

#define DECL_U(j) __m256i u##j = ub;
#define STEP_U(j) u##j = _mm256_maddubs_epi16(u##j, ub); KEEP(u##j);
    TEN(DECL_U)
    began = now();
    for (long i = 0; i < N; i++) { TEN(STEP_U) }
    ubsw_s = now() - began;

#define DECL_W(j) __m256i w##j = wb;
#define STEP_W(j) w##j = _mm256_madd_epi16(w##j, wb); KEEP(w##j);
    TEN(DECL_W)
    began = now();
    for (long i = 0; i < N; i++) { TEN(STEP_W) }
    wd_s = now() - began;

#define DECL_M(j) __m256i mu##j = ub, mw##j = wb;
#define STEP_M(j) mu##j = _mm256_maddubs_epi16(mu##j, ub); mw##j = _mm256_madd_epi16(mw##j, wb); KEEP(mu##j); KEEP(mw##j);
    FIVE(DECL_M)
    began = now();
    for (long i = 0; i < N; i++) { FIVE(STEP_M) }
    mixed_s = now() - began;

    float sink_f[8];
    int sink_i[8];
    __m256 fs = _mm256_setzero_ps();
    __m256i is = _mm256_setzero_si256();
#define SINK(j) fs = _mm256_add_ps(fs, f##j); is = _mm256_xor_si256(is, _mm256_xor_si256(u##j, w##j));
#define SINK_M(j) is = _mm256_xor_si256(is, _mm256_xor_si256(mu##j, mw##j));
    TEN(SINK)
    FIVE(SINK_M)
    _mm256_storeu_ps(sink_f, fs);
    _mm256_storeu_si256((__m256i *)sink_i, is);

    double n = 10.0 * N;
    printf("G instructions / s (256-bit): FMA %.2f, VPMADDUBSW %.2f, VPMADDWD %.2f, "
           "VPMADDUBSW+VPMADDWD interleaved %.2f (sink %g %d)\n",
           n / fma_s / 1e9, n / ubsw_s / 1e9, n / wd_s / 1e9, n / mixed_s / 1e9, sink_f[0], sink_i[0]);
    printf("per FMA: VPMADDUBSW %.2f, VPMADDWD %.2f, either when interleaved %.2f\n", fma_s / ubsw_s,
           fma_s / wd_s, fma_s / mixed_s);
    printf("with 2 FMA pipes: VPMADDUBSW %.1f / cycle = %.0f int8 MAC / cycle; "
           "VPMADDUBSW+VPMADDWD pairs %.1f / cycle = %.0f int8 MAC / cycle\n",
           2 * fma_s / ubsw_s, 64 * fma_s / ubsw_s, fma_s / mixed_s, 32 * fma_s / mixed_s);
    return 0;
}
