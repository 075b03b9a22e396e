package dev.bertmobilekit.core;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** One classified text, like the Python runtime's {@code Prediction}. */
public final class Prediction {
    /** The most probable label (the first one on ties, as numpy's argmax). */
    public final String label;
    /** Its probability. */
    public final double score;
    /** Label to probability, in the manifest's label order. */
    public final Map<String, Double> probabilities;
    /** The raw logits the backend returned. */
    public final float[] logits;
    /** Whether the text was cut at max_length. */
    public final boolean truncated;
    /** Time spent inside the backend, in nanoseconds. */
    public final long modelNanos;

    Prediction(String label, double score, Map<String, Double> probabilities, float[] logits,
               boolean truncated, long modelNanos) {
        this.label = label;
        this.score = score;
        this.probabilities = probabilities;
        this.logits = logits;
        this.truncated = truncated;
        this.modelNanos = modelNanos;
    }

    /**
     * Softmax in double precision after subtracting the max, like {@code runtime/classifier.py}.
     */
    public static double[] softmax(double[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (double x : logits) {
            max = Math.max(max, x);
        }
        double[] out = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            out[i] = Math.exp(logits[i] - max);
            sum += out[i];
        }
        for (int i = 0; i < out.length; i++) {
            out[i] /= sum;
        }
        return out;
    }

    /** Index of the largest value, the first one on ties. */
    public static int argmax(double[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * Maps logits to probabilities and a label.
     *
     * @throws IllegalArgumentException the logits do not have one value per label
     */
    public static Prediction of(float[] logits, List<String> labels, boolean truncated, long modelNanos) {
        if (logits.length != labels.size()) {
            throw new IllegalArgumentException("model returned " + logits.length + " logits but the manifest has "
                    + labels.size() + " labels " + labels + "; the manifest does not fit the model");
        }
        double[] z = new double[logits.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = logits[i];
        }
        double[] probs = softmax(z);
        Map<String, Double> byLabel = new LinkedHashMap<>();
        for (int i = 0; i < probs.length; i++) {
            byLabel.put(labels.get(i), probs[i]);
        }
        int best = argmax(probs);
        return new Prediction(labels.get(best), probs[best], Collections.unmodifiableMap(byLabel),
                logits.clone(), truncated, modelNanos);
    }
}
