package dev.bertmobilekit.core;

import java.util.Arrays;

/** Latency percentiles of repeated runs, computed like {@code numpy.percentile} (linear). */
public final class Latency {
    /** End-to-end (tokenize, run, softmax) median, milliseconds. */
    public final double p50Ms;
    /** End-to-end 90th percentile, milliseconds. */
    public final double p90Ms;
    /** Median time inside the backend alone, milliseconds. */
    public final double modelP50Ms;
    public final int runs;

    Latency(long[] totalNanos, long[] modelNanos) {
        runs = totalNanos.length;
        p50Ms = percentile(totalNanos, 50) / 1e6;
        p90Ms = percentile(totalNanos, 90) / 1e6;
        modelP50Ms = percentile(modelNanos, 50) / 1e6;
    }

    /** The q-th percentile with linear interpolation between closest ranks (numpy's default). */
    public static double percentile(long[] values, double q) {
        if (values.length == 0) {
            throw new IllegalArgumentException("no values");
        }
        long[] sorted = values.clone();
        Arrays.sort(sorted);
        double pos = (sorted.length - 1) * q / 100.0;
        int lo = (int) Math.floor(pos);
        int hi = (int) Math.ceil(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
