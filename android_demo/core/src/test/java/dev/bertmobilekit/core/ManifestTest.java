package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Validation rules of runtime/bundle.py's Manifest, case by case. */
class ManifestTest {
    static final String SHA = "0".repeat(64);

    static String manifest(String backend, String modelFile, String fixedLength, String extra) {
        return "{\"format\": \"bert-mobile-kit/bundle\", \"format_version\": 1, \"name\": \"m\", "
                + "\"model_type\": \"bert\", \"backend\": \"" + backend + "\", \"precision\": \"fp32\", "
                + "\"model_file\": \"" + modelFile + "\", \"input_names\": [\"input_ids\", \"attention_mask\"], "
                + "\"max_length\": 8, \"fixed_length\": " + fixedLength + ", \"labels\": [\"no\", \"yes\"], "
                + "\"lowercase\": true, \"tokenizer_file\": \"tokenizer.json\", \"files\": {\"" + modelFile
                + "\": \"" + SHA + "\", \"tokenizer.json\": \"" + SHA + "\"}" + extra + "}";
    }

    @Test
    void bucketIsTheSmallestThatFitsOrTheTextLength() {
        Manifest tflite = Manifest.parse(manifest("tflite", "model.tflite", "16", ""));
        assertEquals(16, tflite.bucketFor(5));
        assertEquals(1e-3, tflite.goldenAtol());
        Manifest bucketed = Manifest.parse(manifest("tflite", "model.tflite", "16", ", \"buckets\": [4, 8, 16]"));
        assertEquals(4, bucketed.bucketFor(4));
        assertEquals(8, bucketed.bucketFor(5));
        assertEquals(4, bucketed.bucketFor(1));
        assertEquals(8, bucketed.bucketFor(8)); // max_length 8: the 16 bucket is never needed
        Manifest onnx = Manifest.parse(manifest("onnx", "model.onnx", "null", ""));
        assertNull(onnx.fixedLength);
        assertEquals(5, onnx.bucketFor(5));
        assertThrows(IllegalArgumentException.class, () -> onnx.bucketFor(9));
    }

    @Test
    void refusesInvalidManifests() {
        String[][] cases = {
            {manifest("tflite", "model.tflite", "null", ""), "needs fixed_length"},
            {manifest("tflite", "model.onnx", "16", ""), "does not end in '.tflite'"},
            {manifest("coreml", "model.ml", "16", ""), "backend 'coreml' is unknown"},
            {manifest("tflite", "model.tflite", "4", ""), "exceeds fixed_length"},
            {manifest("tflite", "model.tflite", "16", ", \"bucket_sizes\": [8]"), "unknown field(s) bucket_sizes"},
            {manifest("tflite", "model.tflite", "16", ", \"buckets\": [16, 8]"), "strictly increasing"},
            {manifest("tflite", "model.tflite", "16", ", \"buckets\": [8]"), "last bucket 8 must equal fixed_length 16"},
            {manifest("tflite", "model.tflite", "16", ", \"buckets\": [0, 16]"), "list of positive ints"},
            {manifest("onnx", "model.onnx", "null", ", \"buckets\": [8]"), "are TFLite signatures"},
            {manifest("tflite", "model.tflite", "16.0", ""), "fixed_length"},
            {manifest("tflite", "model.tflite", "16", ", \"golden\": [{\"text\": \"x\", \"input_ids\": [1], "
                    + "\"logits\": [0.5], \"label\": \"no\"}]"), "has 1 values but there are 2 labels"},
            {manifest("tflite", "model.tflite", "16", "").replace("\"format_version\": 1", "\"format_version\": 2"),
                "format_version int 2 is not supported"},
            {manifest("tflite", "model.tflite", "16", "").replace("\"lowercase\": true, ", ""), "missing required field(s): lowercase"},
            {manifest("tflite", "model.tflite", "16", "").replace(SHA + "\", \"tokenizer.json", "ABC\", \"tokenizer.json"), "sha256"},
            {"[]", "top level must be a JSON object"},
            {"{\"format\": 1", "not valid JSON"},
        };
        for (String[] c : cases) {
            BundleException e = assertThrows(BundleException.class, () -> Manifest.parse(c[0]), c[1]);
            assertTrue(e.getMessage().contains(c[1]), "expected '" + c[1] + "' in: " + e.getMessage());
        }
    }
}
