package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The golden files written by Python ({@code export.android.write_java_goldens}), found through
 * the {@code golden.dir} system property or the {@code BMK_GOLDEN_DIR} environment variable.
 * Tests that need them are skipped, with the command to make them, when neither is set.
 */
final class Goldens {
    private Goldens() {}

    static File dir() {
        String path = System.getProperty("golden.dir");
        if (path == null || path.isEmpty()) {
            path = System.getenv("BMK_GOLDEN_DIR");
        }
        assumeTrue(path != null && !path.isEmpty(), "no golden files: run `pytest tests/android_demo/test_core.py` "
                + "(it writes them and runs these tests), or pass -Dgolden.dir=DIR / -PgoldenDir=DIR");
        File dir = new File(path);
        if (!new File(dir, "summary.json").isFile()) {
            throw new IllegalStateException("golden.dir " + dir + " has no summary.json; regenerate it");
        }
        return dir;
    }

    static File file(String name) {
        return new File(dir(), name);
    }

    static Map<String, Object> summary() throws IOException {
        return Json.asObject(Json.parse(read(file("summary.json"))), "summary.json");
    }

    static String read(File file) throws IOException {
        return new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8);
    }

    /** Parses a JSON-lines file into one object per line. */
    static List<Map<String, Object>> jsonLines(String name) throws IOException {
        List<Map<String, Object>> rows = new ArrayList<>();
        try (BufferedReader reader = Files.newBufferedReader(file(name).toPath(), StandardCharsets.UTF_8)) {
            for (String line; (line = reader.readLine()) != null; ) {
                if (!line.isEmpty()) {
                    rows.add(Json.asObject(Json.parse(line), name));
                }
            }
        }
        return rows;
    }

    static int[] ints(Object list) {
        List<Object> items = Json.asArray(list, "ints");
        int[] out = new int[items.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (int) (long) (Long) items.get(i);
        }
        return out;
    }

    static double[] doubles(Object list) {
        List<Object> items = Json.asArray(list, "numbers");
        double[] out = new double[items.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) items.get(i)).doubleValue();
        }
        return out;
    }

    static BertTokenizer tokenizer(String config) throws IOException {
        return BertTokenizer.fromJson(read(new File(dir(), "tokenizers/" + config + "/tokenizer.json")));
    }
}
