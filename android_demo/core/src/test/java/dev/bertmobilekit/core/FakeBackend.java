package dev.bertmobilekit.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/** A {@link Backend} that records what it is fed and answers with given logits. */
final class FakeBackend implements Backend {
    final List<String> names;
    final Function<int[], float[]> logitsForIds;
    final List<Map<String, int[]>> calls = new ArrayList<>();
    final List<Integer> lengths = new ArrayList<>();

    FakeBackend(List<String> names, Function<int[], float[]> logitsForIds) {
        this.names = names;
        this.logitsForIds = logitsForIds;
    }

    /** Answers each golden example's recorded logits (found by its input ids), shifted by {@code shift}. */
    static FakeBackend replaying(Manifest manifest, List<String> names, double shift) {
        return new FakeBackend(names, ids -> {
            for (Manifest.GoldenExample g : manifest.golden) {
                if (TextClassifier.idsMatch(padded(g.inputIds, ids.length), ids, 0)) {
                    float[] out = new float[g.logits.length];
                    for (int i = 0; i < out.length; i++) {
                        out[i] = (float) (g.logits[i] + shift);
                    }
                    return out;
                }
            }
            throw new IllegalStateException("no golden example has ids " + Arrays.toString(ids));
        });
    }

    private static int[] padded(int[] ids, int length) {
        return Arrays.copyOf(ids, Math.max(length, ids.length));
    }

    @Override
    public List<String> inputNames() {
        return names;
    }

    @Override
    public float[] run(Map<String, int[]> inputs, int sequenceLength) {
        calls.add(inputs);
        lengths.add(sequenceLength);
        return logitsForIds.apply(inputs.get("input_ids"));
    }
}
