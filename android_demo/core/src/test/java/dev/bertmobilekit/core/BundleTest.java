package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The tiny sealed bundle Python wrote: loaded, self-tested through a fake backend, and tampered copies refused. */
class BundleTest {
    private static Bundle load() {
        return Bundle.load(BundleSource.directory(Goldens.file("bundle")));
    }

    @Test
    void everyModelFactComesFromTheManifest() {
        Bundle bundle = load();
        Manifest m = bundle.manifest;
        assertEquals("tiny-placeholder-tflite", m.name);
        assertEquals("tflite", m.backend);
        assertEquals(Arrays.asList("negative", "neutral", "positive"), m.labels);
        assertEquals(Arrays.asList("input_ids", "attention_mask"), m.inputNames);
        assertEquals(16, m.maxLength);
        assertEquals(Integer.valueOf(16), m.fixedLength);
        assertEquals(Arrays.asList(8, 16), m.buckets);
        assertEquals(5e-2, m.goldenAtol());
        assertTrue(bundle.tokenizer.lowercase());
        assertEquals(10, m.golden.size());
    }

    @Test
    void selfTestPassesWithTheRecordedLogitsAndBindsInputsByName() throws Exception {
        Bundle bundle = load();
        // LiteRT lists signature inputs sorted; binding is by name, so order must not matter.
        FakeBackend backend = FakeBackend.replaying(bundle.manifest, Arrays.asList("attention_mask", "input_ids"), 0.02);
        TextClassifier classifier = new TextClassifier(bundle, backend);
        TextClassifier.SelfTest result = classifier.selfTest();
        System.out.println("bundle self-test (fake backend, logits +0.02): " + result.summary());
        assertTrue(result.passed(), result.summary());
        for (int i = 0; i < backend.calls.size(); i++) {
            Map<String, int[]> inputs = backend.calls.get(i);
            assertEquals(2, inputs.size());
            int[] ids = inputs.get("input_ids");
            int[] mask = inputs.get("attention_mask");
            int real = 0;
            for (int v : mask) {
                real += v;
            }
            assertEquals(bundle.manifest.bucketFor(real), (int) backend.lengths.get(i));
            assertEquals(bundle.manifest.bucketFor(real), ids.length);
            assertArrayEquals(bundle.manifest.golden.get(i).inputIds, Arrays.copyOf(ids, real));
        }
    }

    @Test
    void selfTestFailsOnLogitsBeyondTolerance() throws Exception {
        Bundle bundle = load();
        FakeBackend backend = FakeBackend.replaying(bundle.manifest, bundle.manifest.inputNames, 0.1);
        TextClassifier.SelfTest result = new TextClassifier(bundle, backend).selfTest();
        assertFalse(result.passed());
        assertTrue(result.summary().startsWith("FAIL: 0/10"), result.summary());
    }

    @Test
    void classifyUsesTheBucketAndLabels() throws Exception {
        Bundle bundle = load();
        FakeBackend backend = new FakeBackend(Arrays.asList("input_ids", "attention_mask"), ids -> new float[] {0f, 1f, 3f});
        Prediction p = new TextClassifier(bundle, backend).classify("a very long text " + "word ".repeat(40));
        assertEquals("positive", p.label);
        assertTrue(p.truncated);
        assertEquals(16, (int) backend.lengths.get(0));
        assertFalse(new TextClassifier(bundle, backend).classify("short").truncated);
        assertEquals(8, (int) backend.lengths.get(1));
        assertThrows(IllegalArgumentException.class, () -> new TextClassifier(bundle, backend).classify(" \t"));
    }

    @Test
    void bucketChoiceEqualsRuntime() throws Exception {
        Bundle bundle = load();
        int mismatches = 0;
        List<Map<String, Object>> rows = Goldens.jsonLines("bucket_golden.jsonl");
        for (Map<String, Object> row : rows) {
            int tokens = bundle.tokenizer.encode((String) row.get("text"), bundle.manifest.maxLength).length;
            if (bundle.manifest.bucketFor(tokens) != (long) (Long) row.get("padded_length")) {
                mismatches++;
                System.out.println("bucket mismatch: " + Json.describe(row.get("text")));
            }
        }
        System.out.printf("bucket parity: %d texts, buckets %s, %d mismatches%n", rows.size(), bundle.manifest.buckets,
                mismatches);
        assertTrue(rows.size() >= 1000);
        assertEquals(0, mismatches);
    }

    @Test
    void modelInputMissingFromManifestIsRefused() {
        Bundle bundle = load();
        FakeBackend backend = new FakeBackend(Arrays.asList("input_ids", "attention_mask", "token_type_ids"), ids -> null);
        BundleException e = assertThrows(BundleException.class, () -> new TextClassifier(bundle, backend));
        assertTrue(e.getMessage().contains("token_type_ids"), e.getMessage());
    }

    @Test
    void tamperedBundlesAreRefused() throws Exception {
        Map<String, Object> refused = Json.asObject(Json.parse(Goldens.read(Goldens.file("refused.json"))), "refused");
        for (Map.Entry<String, Object> entry : refused.entrySet()) {
            File dir = Goldens.file(entry.getKey());
            BundleException e = assertThrows(BundleException.class, () -> Bundle.load(BundleSource.directory(dir)),
                    entry.getKey() + " was accepted");
            assertTrue(e.getMessage().contains((String) entry.getValue()), entry.getKey() + ": " + e.getMessage());
            System.out.println("refused " + entry.getKey() + ": " + e.getMessage());
        }
        assertEquals(refused.size(), (long) (Long) Goldens.summary().get("refused_bundles"));
    }
}
