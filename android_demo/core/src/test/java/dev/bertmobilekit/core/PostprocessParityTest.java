package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Logits to probabilities and label: equal to the Python runtime's softmax and argmax. */
class PostprocessParityTest {
    private static final double ATOL = 1e-6;

    @Test
    void probabilitiesAndLabelsEqualRuntime() throws Exception {
        List<Map<String, Object>> rows = Goldens.jsonLines("postproc_golden.jsonl");
        double worst = 0;
        List<String> failures = new ArrayList<>();
        for (Map<String, Object> row : rows) {
            List<String> labels = new ArrayList<>();
            for (Object label : Json.asArray(row.get("labels"), "labels")) {
                labels.add((String) label);
            }
            double[] stored = Goldens.doubles(row.get("logits"));
            float[] logits = new float[stored.length];
            for (int i = 0; i < stored.length; i++) {
                logits[i] = (float) stored[i]; // float32 values, exactly representable
            }
            double[] expected = Goldens.doubles(row.get("probabilities"));
            Prediction p = Prediction.of(logits, labels, false, 0);
            for (int i = 0; i < expected.length; i++) {
                double delta = Math.abs(p.probabilities.get(labels.get(i)) - expected[i]);
                worst = Math.max(worst, delta);
                if (!(delta <= ATOL)) {
                    failures.add("logits " + row.get("logits") + ": p[" + i + "] off by " + delta);
                }
            }
            if (!p.label.equals(row.get("label"))) {
                failures.add("logits " + row.get("logits") + ": label " + p.label + " != " + row.get("label"));
            }
        }
        System.out.printf("post-processing parity: %d logit rows, max |dp| %.2e (atol %.0e), %d failures%n",
                rows.size(), worst, ATOL, failures.size());
        failures.stream().limit(10).forEach(System.out::println);
        assertEquals((Long) Goldens.summary().get("postproc_rows"), rows.size());
        assertTrue(failures.isEmpty(), failures.size() + " rows differ from the runtime");
    }
}
