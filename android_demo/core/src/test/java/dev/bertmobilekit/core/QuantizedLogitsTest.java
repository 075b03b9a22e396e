package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** int8 logits to floats: bit for bit the Python runtime's float32 values, and bad parameters refused. */
class QuantizedLogitsTest {
    @Test
    void everyInt8ValueEqualsTheRuntimeBitForBit() throws Exception {
        List<Map<String, Object>> rows = Goldens.jsonLines("dequantize_golden.jsonl");
        List<String> mismatches = new ArrayList<>();
        int values = 0;
        for (Map<String, Object> row : rows) {
            QuantizedLogits q = new QuantizedLogits(
                    (float) ((Number) row.get("scale")).doubleValue(), (int) (long) (Long) row.get("zero_point"));
            int[] ints = Goldens.ints(row.get("values"));
            byte[] raw = new byte[ints.length];
            for (int i = 0; i < ints.length; i++) {
                raw[i] = (byte) ints[i];
            }
            double[] expected = Goldens.doubles(row.get("logits"));
            float[] fromArray = q.dequantize(raw);
            float[] fromBuffer = q.dequantize(ByteBuffer.wrap(raw), raw.length);
            for (int i = 0; i < raw.length; i++) {
                values++;
                int want = Float.floatToIntBits((float) expected[i]);
                if (Float.floatToIntBits(fromArray[i]) != want || Float.floatToIntBits(fromBuffer[i]) != want) {
                    mismatches.add(q + ": q=" + raw[i] + " gives " + fromArray[i] + " / " + fromBuffer[i]
                            + ", Python " + expected[i]);
                }
            }
        }
        System.out.printf("dequantize parity: %d int8 values x %d (scale, zero point) pairs, %d mismatches%n",
                values / Math.max(rows.size(), 1), rows.size(), mismatches.size());
        mismatches.stream().limit(10).forEach(System.out::println);
        assertEquals((Long) Goldens.summary().get("dequantized_values"), values);
        assertTrue(mismatches.isEmpty(), mismatches.size() + " values differ from the runtime");
    }

    @Test
    void dequantizesWithTheModelsScaleAndZeroPoint() {
        QuantizedLogits q = new QuantizedLogits(0.5f, -3);
        assertArrayEquals(new float[] {1.5f, 0f, -62.5f, 65f}, q.dequantize(new byte[] {0, -3, -128, 127}));
        ByteBuffer buffer = ByteBuffer.allocateDirect(4).put(new byte[] {5, 6, 7, 8});
        assertArrayEquals(new float[] {4f, 4.5f}, q.dequantize(buffer, 2)); // from index 0, position ignored
        assertThrows(IllegalArgumentException.class, () -> q.dequantize(buffer, 5));
    }

    @Test
    void refusesParametersNoInt8OutputHas() {
        for (float scale : new float[] {0f, -0.1f, Float.NaN, Float.POSITIVE_INFINITY}) {
            BundleException e = assertThrows(BundleException.class, () -> new QuantizedLogits(scale, 0));
            assertTrue(e.getMessage().contains("positive, finite output scale") && e.getMessage().contains("re-export"),
                    e.getMessage());
        }
        for (int zeroPoint : new int[] {-129, 128, 255}) {
            BundleException e = assertThrows(BundleException.class, () -> new QuantizedLogits(0.1f, zeroPoint));
            assertTrue(e.getMessage().contains("-128..127") && e.getMessage().contains(String.valueOf(zeroPoint)),
                    e.getMessage());
        }
    }
}
