package dev.bertmobilekit.core;

import java.util.List;
import java.util.Map;

/**
 * A loaded model: the only part the app implements (LiteRT on Android, a fake in the JVM tests).
 * Inputs are bound by name, never by position: exporters order them differently and DistilBERT
 * has no {@code token_type_ids}.
 */
public interface Backend extends AutoCloseable {
    /** The inputs the model file declares, e.g. {@code [attention_mask, input_ids]}. */
    List<String> inputNames();

    /**
     * Runs a batch of one.
     *
     * @param inputs one int array of {@code sequenceLength} values per name in {@link #inputNames()}
     * @param sequenceLength the padded length (the manifest's fixed_length for TFLite)
     * @return the logits, one per label
     * @throws Exception whatever the inference engine throws
     */
    float[] run(Map<String, int[]> inputs, int sequenceLength) throws Exception;

    @Override
    default void close() {}
}
