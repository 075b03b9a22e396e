package dev.bertmobilekit.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A verified bundle plus a {@link Backend}: tokenize, pick the bucket, bind inputs by name, run,
 * softmax. The app's whole inference path; the Kotlin layer only draws the results.
 *
 * <p>Not thread-safe (backends such as the LiteRT interpreter are not); use it from one thread.
 */
public final class TextClassifier implements AutoCloseable {
    /** The inputs this class can fill, by name. */
    public static final List<String> FEEDABLE = Collections.unmodifiableList(
            Arrays.asList("input_ids", "attention_mask", "token_type_ids"));

    public final Bundle bundle;
    public final Manifest manifest;
    private final Backend backend;
    private final List<String> feedNames = new ArrayList<>();

    /**
     * @throws BundleException the manifest names an input this class cannot fill, or the model
     *     takes an input the manifest does not list
     */
    public TextClassifier(Bundle bundle, Backend backend) {
        this.bundle = bundle;
        this.manifest = bundle.manifest;
        this.backend = backend;
        List<String> unknown = new ArrayList<>(manifest.inputNames);
        unknown.removeAll(FEEDABLE);
        if (!unknown.isEmpty()) {
            throw new BundleException("manifest input(s) " + unknown + " cannot be fed; the app fills " + FEEDABLE);
        }
        List<String> missing = new ArrayList<>(backend.inputNames());
        missing.removeAll(manifest.inputNames);
        if (!missing.isEmpty()) {
            throw new BundleException("model " + manifest.modelFile + " takes " + missing + ", which manifest "
                    + "input_names " + manifest.inputNames + " lacks; the bundle is inconsistent, re-export it");
        }
        // A manifest input the model does not take (token_type_ids for DistilBERT) is dropped.
        for (String name : manifest.inputNames) {
            if (backend.inputNames().contains(name)) {
                feedNames.add(name);
            }
        }
    }

    /** Tokenizes and pads to the bucket the manifest prescribes for this text. */
    public Encoding encode(String text) {
        BertTokenizer tokenizer = bundle.tokenizer;
        Encoding raw = tokenizer.encode(text, manifest.maxLength);
        return raw.padTo(manifest.bucketFor(raw.length), tokenizer.padId(), tokenizer.padTypeId());
    }

    /** The model inputs for a padded encoding, keyed by the names the model takes. */
    public Map<String, int[]> inputs(Encoding padded) {
        Map<String, int[]> out = new LinkedHashMap<>();
        for (String name : feedNames) {
            switch (name) {
                case "input_ids": out.put(name, padded.inputIds); break;
                case "attention_mask": out.put(name, padded.attentionMask); break;
                default: out.put(name, padded.tokenTypeIds); break;
            }
        }
        return out;
    }

    /**
     * Classifies one text.
     *
     * @throws IllegalArgumentException the text is empty or whitespace-only
     * @throws Exception the backend failed
     */
    public Prediction classify(String text) throws Exception {
        if (text.trim().isEmpty()) {
            throw new IllegalArgumentException("the text is empty or whitespace-only; there is nothing to classify");
        }
        Encoding encoding = encode(text);
        long start = System.nanoTime();
        float[] logits = backend.run(inputs(encoding), encoding.paddedLength());
        long modelNanos = System.nanoTime() - start;
        return Prediction.of(logits, manifest.labels, encoding.truncated, modelNanos);
    }

    /**
     * Classifies {@code text} {@code warmup + runs} times and reports percentiles of the last
     * {@code runs}.
     */
    public Latency measure(String text, int warmup, int runs) throws Exception {
        if (runs < 1 || warmup < 0) {
            throw new IllegalArgumentException("need runs >= 1 and warmup >= 0, got " + runs + ", " + warmup);
        }
        long[] total = new long[runs];
        long[] model = new long[runs];
        for (int i = -warmup; i < runs; i++) {
            long start = System.nanoTime();
            Prediction p = classify(text);
            long elapsed = System.nanoTime() - start;
            if (i >= 0) {
                total[i] = elapsed;
                model[i] = p.modelNanos;
            }
        }
        return new Latency(total, model);
    }

    /**
     * Re-runs the manifest's golden examples, like {@code TextClassifier.selftest} in Python:
     * token ids must be equal, logits within {@link Manifest#goldenAtol()}.
     *
     * @throws BundleException the bundle has no golden examples
     * @throws Exception the backend failed
     */
    public SelfTest selfTest() throws Exception {
        if (manifest.golden.isEmpty()) {
            throw new BundleException("bundle '" + manifest.name + "' has no golden examples to check; re-export it with some");
        }
        double atol = manifest.goldenAtol();
        List<SelfTest.Check> checks = new ArrayList<>();
        for (Manifest.GoldenExample example : manifest.golden) {
            Encoding encoding = encode(example.text);
            float[] logits = backend.run(inputs(encoding), encoding.paddedLength());
            double delta = logits.length == example.logits.length ? 0 : Double.NaN;
            for (int i = 0; i < logits.length && i < example.logits.length; i++) {
                double d = Math.abs(logits[i] - example.logits[i]);
                delta = Double.isNaN(d) ? Double.NaN : Math.max(delta, d); // NaN must fail, not vanish
            }
            boolean idsMatch = idsMatch(example.inputIds, encoding.ids(), bundle.tokenizer.padId());
            checks.add(new SelfTest.Check(example.text, idsMatch, delta, atol));
        }
        return new SelfTest(manifest, checks);
    }

    /** Golden ids are unpadded; ids padded with the pad token are accepted too. */
    static boolean idsMatch(int[] expected, int[] ids, int padId) {
        if (expected.length < ids.length) {
            return false;
        }
        for (int i = 0; i < expected.length; i++) {
            if (i < ids.length ? expected[i] != ids[i] : expected[i] != padId) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void close() {
        backend.close();
    }

    /** The outcome of {@link #selfTest()}. */
    public static final class SelfTest {
        public final List<Check> checks;
        private final Manifest manifest;

        SelfTest(Manifest manifest, List<Check> checks) {
            this.manifest = manifest;
            this.checks = Collections.unmodifiableList(checks);
        }

        public boolean passed() {
            for (Check c : checks) {
                if (!c.passed()) {
                    return false;
                }
            }
            return true;
        }

        /** One line per failure (or a PASS line), for the screen and the logs. */
        public String summary() {
            int failed = 0;
            StringBuilder lines = new StringBuilder();
            for (int i = 0; i < checks.size(); i++) {
                Check c = checks.get(i);
                if (!c.passed()) {
                    failed++;
                    lines.append(String.format(Locale.ROOT, "\n  golden[%d] '%s': %s", i, shorten(c.text),
                            c.idsMatch ? String.format(Locale.ROOT, "max |Δ| logits %.3g > atol %s", c.maxDelta, c.atol)
                                    : "input_ids differ"));
                }
            }
            String head = String.format(Locale.ROOT, "%s: %d/%d golden examples passed (%s, %s, atol %s)",
                    failed == 0 ? "PASS" : "FAIL", checks.size() - failed, checks.size(), manifest.backend,
                    manifest.precision, manifest.goldenAtol());
            return head + lines;
        }

        private static String shorten(String text) {
            return text.length() <= 40 ? text : text.substring(0, 37) + "...";
        }

        /** One golden example's result. */
        public static final class Check {
            public final String text;
            public final boolean idsMatch;
            /** Max |Δ| between the backend's logits and the recorded ones (NaN if they differ in size). */
            public final double maxDelta;
            public final double atol;

            Check(String text, boolean idsMatch, double maxDelta, double atol) {
                this.text = text;
                this.idsMatch = idsMatch;
                this.maxDelta = maxDelta;
                this.atol = atol;
            }

            public boolean passed() {
                return idsMatch && maxDelta <= atol; // false for NaN
            }
        }
    }
}
