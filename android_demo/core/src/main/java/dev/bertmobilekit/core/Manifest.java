package dev.bertmobilekit.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * A bundle's {@code manifest.json}, validated like {@code runtime/bundle.py}'s {@code Manifest}
 * (the source of truth): same format tag and version, same required and known fields, same
 * checks. Every model fact the app uses (labels, lengths, input names, lowercasing, backend,
 * precision, golden examples) comes from here.
 */
public final class Manifest {
    public static final String FORMAT = "bert-mobile-kit/bundle";
    public static final long FORMAT_VERSION = 1;
    public static final String FILE_NAME = "manifest.json";

    private static final Map<String, String> BACKEND_SUFFIX = new LinkedHashMap<>();
    private static final List<String> REQUIRED = Arrays.asList("name", "model_type", "backend",
            "precision", "model_file", "input_names", "max_length", "fixed_length", "labels",
            "lowercase", "tokenizer_file", "files");
    private static final List<String> OPTIONAL = Arrays.asList("source_model", "opset", "buckets",
            "metrics", "golden", "created_by");
    private static final Pattern SHA256_HEX = Pattern.compile("^[0-9a-f]{64}$");
    private static final String[] QUANTIZED_MARKERS = {"int8", "int4", "uint8"};

    static {
        BACKEND_SUFFIX.put("onnx", ".onnx");
        BACKEND_SUFFIX.put("tflite", ".tflite");
    }

    public final String name;
    public final String modelType;
    public final String backend;
    public final String precision;
    public final String modelFile;
    public final List<String> inputNames;
    public final int maxLength;
    /** The longest sequence length the model accepts, or {@code null} when it is dynamic (ONNX). */
    public final Integer fixedLength;
    /**
     * TFLite only: every sequence length the model takes, ascending (one signature
     * {@code len_<n>} each), the last being fixed_length; empty when it takes fixed_length only.
     */
    public final List<Integer> buckets;
    public final List<String> labels;
    public final boolean lowercase;
    public final String tokenizerFile;
    /** File name to sha256 hex digest, every file of the bundle except the manifest. */
    public final Map<String, String> files;
    public final List<GoldenExample> golden;

    /** One reference example recorded by the exporter: unpadded ids and this artifact's logits. */
    public static final class GoldenExample {
        public final String text;
        public final int[] inputIds;
        public final double[] logits;
        public final String label;

        GoldenExample(String text, int[] inputIds, double[] logits, String label) {
            this.text = text;
            this.inputIds = inputIds;
            this.logits = logits;
            this.label = label;
        }
    }

    private Manifest(Map<String, Object> data) {
        name = string(data, "name", true);
        modelType = string(data, "model_type", true);
        backend = string(data, "backend", true);
        precision = string(data, "precision", true);
        modelFile = string(data, "model_file", true);
        tokenizerFile = string(data, "tokenizer_file", true);
        string(data, "source_model", false);
        string(data, "created_by", false);
        inputNames = stringList(data.get("input_names"), "input_names");
        labels = stringList(data.get("labels"), "labels");
        maxLength = positiveInt(data.get("max_length"), "max_length", false);
        int fixed = positiveInt(data.get("fixed_length"), "fixed_length", true);
        fixedLength = fixed == 0 ? null : fixed;
        positiveInt(data.get("opset"), "opset", true);
        Object lower = data.get("lowercase");
        if (!(lower instanceof Boolean)) {
            throw invalid("field 'lowercase' must be a bool, got " + Json.describe(lower));
        }
        lowercase = (Boolean) lower;

        String suffix = BACKEND_SUFFIX.get(backend);
        if (suffix == null) {
            throw invalid("backend '" + backend + "' is unknown; known backends: "
                    + String.join(", ", BACKEND_SUFFIX.keySet()));
        }
        if (!modelFile.endsWith(suffix)) {
            throw invalid("model_file '" + modelFile + "' does not end in '" + suffix
                    + "', but backend is '" + backend + "'");
        }
        if (backend.equals("tflite") && fixedLength == null) {
            throw invalid("backend 'tflite' needs fixed_length (the sequence length the model takes)");
        }
        if (fixedLength != null && maxLength > fixedLength) {
            throw invalid("max_length " + maxLength + " exceeds fixed_length " + fixedLength
                    + "; truncated inputs would not fit the model");
        }
        buckets = buckets(data.containsKey("buckets") ? data.get("buckets") : new ArrayList<>(), backend, fixedLength);
        files = files(data.get("files"));
        for (String role : new String[] {"model_file", "tokenizer_file"}) {
            String file = role.equals("model_file") ? modelFile : tokenizerFile;
            if (!files.containsKey(file)) {
                throw invalid(role + " '" + file + "' is not listed in files (listed: "
                        + String.join(", ", new TreeSet<>(files.keySet())) + ")");
            }
        }
        if (data.containsKey("metrics")) {
            Json.asObject(data.get("metrics"), "invalid manifest: field 'metrics'");
        }
        golden = golden(data.containsKey("golden") ? data.get("golden") : new ArrayList<>(), labels);
    }

    /**
     * Parses and validates the text of {@code manifest.json}.
     *
     * @throws BundleException wrong format, unsupported version, unknown or missing fields, or an
     *     invalid field; the message says which and what is allowed
     */
    public static Manifest parse(String json) {
        Object parsed;
        try {
            parsed = Json.parse(json);
        } catch (Json.JsonException e) {
            throw new BundleException(FILE_NAME + " is not valid JSON (" + e.getMessage()
                    + "); the file is corrupt, re-export the bundle", e);
        }
        if (!(parsed instanceof Map)) {
            throw invalid("top level must be a JSON object, got " + Json.describe(parsed));
        }
        Map<String, Object> data = Json.asObject(parsed, FILE_NAME);
        Object format = data.get("format");
        if (!FORMAT.equals(format)) {
            throw invalid("'format' is " + Json.describe(format) + ", expected '" + FORMAT
                    + "'; not a bundle manifest");
        }
        Object version = data.get("format_version");
        if (!(version instanceof Long) || (Long) version != FORMAT_VERSION) {
            throw new BundleException("manifest format_version " + Json.describe(version)
                    + " is not supported (this app supports " + FORMAT_VERSION + "); re-export the "
                    + "bundle with a matching bert-mobile-kit, or update the app");
        }
        Set<String> unknown = new TreeSet<>(data.keySet());
        unknown.removeAll(REQUIRED);
        unknown.removeAll(OPTIONAL);
        unknown.remove("format");
        unknown.remove("format_version");
        if (!unknown.isEmpty()) {
            Set<String> known = new TreeSet<>(REQUIRED);
            known.addAll(OPTIONAL);
            throw invalid("unknown field(s) " + String.join(", ", unknown) + " (known: "
                    + String.join(", ", known) + ")");
        }
        List<String> missing = new ArrayList<>();
        for (String key : REQUIRED) {
            if (!data.containsKey(key)) {
                missing.add(key);
            }
        }
        if (!missing.isEmpty()) {
            throw invalid("missing required field(s): " + String.join(", ", missing));
        }
        return new Manifest(data);
    }

    /**
     * The sequence lengths the model takes, ascending: the buckets, else fixed_length alone, else
     * none (a dynamic sequence axis).
     */
    public List<Integer> sequenceLengths() {
        if (!buckets.isEmpty()) {
            return buckets;
        }
        return fixedLength != null ? Collections.singletonList(fixedLength) : Collections.<Integer>emptyList();
    }

    /**
     * The padded length for a text of {@code tokenCount} tokens, as the Python runtime pads it:
     * the smallest of {@link #sequenceLengths()} that holds it, or the text's own length when the
     * model's sequence axis is dynamic.
     *
     * @throws IllegalArgumentException {@code tokenCount} exceeds max_length
     */
    public int bucketFor(int tokenCount) {
        if (tokenCount > maxLength) {
            throw new IllegalArgumentException(tokenCount + " tokens exceed max_length " + maxLength);
        }
        List<Integer> lengths = sequenceLengths();
        for (int length : lengths) {
            if (length >= tokenCount) {
                return length;
            }
        }
        return tokenCount; // dynamic: no lengths at all (max_length <= fixed_length otherwise)
    }

    /** The logit tolerance of the self-test: 5e-2 for int8/int4/uint8 precisions, else 1e-3. */
    public double goldenAtol() {
        for (String marker : QUANTIZED_MARKERS) {
            if (precision.contains(marker)) {
                return 5e-2;
            }
        }
        return 1e-3;
    }

    // --- validation helpers --------------------------------------------------------------

    private static BundleException invalid(String message) {
        return new BundleException("invalid manifest: " + message);
    }

    private static String string(Map<String, Object> data, String key, boolean required) {
        Object value = data.containsKey(key) ? data.get(key) : (required ? null : "");
        if (!(value instanceof String)) {
            throw invalid("field '" + key + "' must be a string, got " + Json.describe(value));
        }
        if (required && ((String) value).trim().isEmpty()) {
            throw invalid("field '" + key + "' must not be empty");
        }
        return (String) value;
    }

    private static List<String> stringList(Object value, String key) {
        if (!(value instanceof List)) {
            throw invalid("field '" + key + "' must be a list of non-empty strings, got "
                    + Json.describe(value));
        }
        List<String> out = new ArrayList<>();
        for (Object item : Json.asArray(value, key)) {
            if (!(item instanceof String) || ((String) item).isEmpty()) {
                throw invalid("field '" + key + "' must be a list of non-empty strings, got "
                        + Json.describe(value));
            }
            out.add((String) item);
        }
        if (out.isEmpty()) {
            throw invalid("field '" + key + "' must not be empty");
        }
        if (new HashSet<>(out).size() != out.size()) {
            throw invalid("field '" + key + "' has duplicates: " + out);
        }
        return Collections.unmodifiableList(out);
    }

    /** Returns the int, or 0 for an allowed null. */
    private static int positiveInt(Object value, String key, boolean optional) {
        if (value == null && optional) {
            return 0;
        }
        if (!(value instanceof Long) || (Long) value < 1 || (Long) value > Integer.MAX_VALUE) {
            String kind = optional ? "a positive int or null" : "a positive int";
            throw invalid("field '" + key + "' must be " + kind + ", got " + Json.describe(value));
        }
        return (int) (long) (Long) value;
    }

    private static List<Integer> buckets(Object value, String backend, Integer fixedLength) {
        List<Integer> out = new ArrayList<>();
        boolean valid = value instanceof List;
        for (Object item : valid ? Json.asArray(value, "buckets") : Collections.emptyList()) {
            valid &= item instanceof Long && (Long) item >= 1 && (Long) item <= Integer.MAX_VALUE;
            out.add(valid ? (int) (long) (Long) item : 0);
        }
        if (!valid) {
            throw invalid("field 'buckets' must be a list of positive ints, got " + Json.describe(value));
        }
        for (int i = 1; i < out.size(); i++) {
            if (out.get(i) <= out.get(i - 1)) {
                throw invalid("field 'buckets' must be strictly increasing, got " + out);
            }
        }
        if (!out.isEmpty() && !backend.equals("tflite")) {
            throw invalid("buckets " + out + " are TFLite signatures, but backend is '" + backend + "'");
        }
        if (!out.isEmpty() && !out.get(out.size() - 1).equals(fixedLength)) {
            throw invalid("the last bucket " + out.get(out.size() - 1) + " must equal fixed_length " + fixedLength);
        }
        return Collections.unmodifiableList(out);
    }

    private static Map<String, String> files(Object value) {
        if (!(value instanceof Map)) {
            throw invalid("field 'files' must be a mapping of file name -> sha256, got "
                    + Json.describe(value));
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : Json.asObject(value, "files").entrySet()) {
            String file = e.getKey();
            if (file.isEmpty() || file.equals(".") || file.equals("..") || file.equals(FILE_NAME)
                    || file.contains("/") || file.contains("\\")) {
                throw invalid("files: '" + file + "' is not a plain file name inside the bundle");
            }
            Object digest = e.getValue();
            if (!(digest instanceof String) || !SHA256_HEX.matcher((String) digest).matches()) {
                throw invalid("files['" + file + "'] must be a lowercase sha256 hex digest, got "
                        + Json.describe(digest));
            }
            out.put(file, (String) digest);
        }
        return Collections.unmodifiableMap(out);
    }

    private static List<GoldenExample> golden(Object value, List<String> labels) {
        if (!(value instanceof List)) {
            throw invalid("field 'golden' must be a list of examples, got " + Json.describe(value));
        }
        List<GoldenExample> out = new ArrayList<>();
        List<Object> items = Json.asArray(value, "golden");
        for (int i = 0; i < items.size(); i++) {
            String where = String.format(Locale.ROOT, "golden[%d]", i);
            if (!(items.get(i) instanceof Map)) {
                throw invalid(where + " must be an object, got " + Json.describe(items.get(i)));
            }
            Map<String, Object> example = Json.asObject(items.get(i), where);
            List<String> missing = new ArrayList<>();
            for (String key : new String[] {"text", "input_ids", "logits", "label"}) {
                if (!example.containsKey(key)) {
                    missing.add(key);
                }
            }
            if (!missing.isEmpty()) {
                throw invalid(where + " lacks key(s) " + String.join(", ", missing));
            }
            if (!(example.get("text") instanceof String)) {
                throw invalid(where + ".text must be a string, got " + Json.describe(example.get("text")));
            }
            int[] ids = intArray(example.get("input_ids"), where + ".input_ids");
            double[] logits = numberArray(example.get("logits"), where + ".logits");
            if (logits.length != labels.size()) {
                throw invalid(where + ".logits has " + logits.length + " values but there are "
                        + labels.size() + " labels");
            }
            Object label = example.get("label");
            if (!labels.contains(label)) {
                throw invalid(where + ".label " + Json.describe(label) + " is not one of labels " + labels);
            }
            out.add(new GoldenExample((String) example.get("text"), ids, logits, (String) label));
        }
        return Collections.unmodifiableList(out);
    }

    private static int[] intArray(Object value, String where) {
        if (!(value instanceof List) || ((List<?>) value).isEmpty()) {
            throw invalid(where + " must be a non-empty list of ints");
        }
        List<?> items = (List<?>) value;
        int[] out = new int[items.size()];
        for (int i = 0; i < out.length; i++) {
            Object item = items.get(i);
            if (!(item instanceof Long) || (Long) item < Integer.MIN_VALUE || (Long) item > Integer.MAX_VALUE) {
                throw invalid(where + " must be a non-empty list of ints");
            }
            out[i] = (int) (long) (Long) item;
        }
        return out;
    }

    private static double[] numberArray(Object value, String where) {
        if (!(value instanceof List)) {
            throw invalid(where + " must be a list of numbers");
        }
        List<?> items = (List<?>) value;
        double[] out = new double[items.size()];
        for (int i = 0; i < out.length; i++) {
            Object item = items.get(i);
            if (!(item instanceof Long) && !(item instanceof Double)) {
                throw invalid(where + " must be a list of numbers");
            }
            out[i] = ((Number) item).doubleValue();
        }
        return out;
    }
}
