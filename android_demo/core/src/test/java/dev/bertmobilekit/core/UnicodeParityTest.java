package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Every Unicode code point through BertNormalizer (each tokenizer configuration) and
 * BertPreTokenizer, against {@code tokenizers} itself.
 */
class UnicodeParityTest {
    @Test
    void everyCodePointNormalizesAndSplitsLikeTokenizers() throws Exception {
        Map<String, TextNormalizer> normalizers = new LinkedHashMap<>();
        List<String> mismatches = new ArrayList<>();
        long codePoints = 0;
        for (Map<String, Object> row : Goldens.jsonLines("unicode_golden.jsonl")) {
            int first = (int) (long) (Long) row.get("first");
            int last = (int) (long) (Long) row.get("last");
            if (row.get("kind").equals("words")) {
                codePoints += count(first, last);
                List<String> expected = new ArrayList<>();
                for (Object w : Json.asArray(row.get("words"), "words")) {
                    expected.add((String) w);
                }
                List<String> actual = TextNormalizer.preTokenize(raw(first, last).codePoints().toArray());
                if (!expected.equals(actual)) {
                    mismatches.add(String.format("pre-tokenizer U+%04X..U+%04X: %s", first, last,
                            firstDifference(String.join("|", expected), String.join("|", actual))));
                }
                continue;
            }
            String config = (String) row.get("config");
            if (!normalizers.containsKey(config)) {
                normalizers.put(config, normalizerOf(config));
            }
            int[] normalized = normalizers.get(config).normalize(separated(first, last));
            String actual = new String(normalized, 0, normalized.length);
            if (!row.get("text").equals(actual)) {
                mismatches.add(String.format("normalizer [%s] U+%04X..U+%04X: %s", config, first, last,
                        firstDifference((String) row.get("text"), actual)));
            }
        }
        System.out.printf("unicode parity: %d code points x %d normalizer configurations %s + pre-tokenizer, "
                + "%d mismatching chunks (tables from tokenizers %s)%n", codePoints, normalizers.size(),
                normalizers.keySet(), mismatches.size(), UnicodeTables.TOKENIZERS_VERSION);
        mismatches.stream().limit(10).forEach(System.out::println);
        assertEquals((Long) Goldens.summary().get("unicode_code_points"), codePoints);
        assertTrue(mismatches.isEmpty(), mismatches.size() + " chunks differ from tokenizers");
    }

    private static TextNormalizer normalizerOf(String config) throws Exception {
        Map<String, Object> json = Json.asObject(Json.parse(Goldens.read(
                Goldens.file("tokenizers/" + config + "/tokenizer.json"))), "tokenizer.json");
        Map<String, Object> n = Json.asObject(json.get("normalizer"), "normalizer");
        return new TextNormalizer((Boolean) n.get("clean_text"), (Boolean) n.get("handle_chinese_chars"),
                (Boolean) n.get("strip_accents"), (Boolean) n.get("lowercase"));
    }

    private static int count(int first, int last) {
        int n = 0;
        for (int cp = first; cp <= last; cp++) {
            n += isSurrogate(cp) ? 0 : 1;
        }
        return n;
    }

    /** "a{c}a " for every code point, as Python wrote it. */
    private static String separated(int first, int last) {
        StringBuilder b = new StringBuilder();
        for (int cp = first; cp <= last; cp++) {
            if (!isSurrogate(cp)) {
                b.append('a').appendCodePoint(cp).append("a ");
            }
        }
        return b.toString();
    }

    private static String raw(int first, int last) {
        StringBuilder b = new StringBuilder();
        for (int cp = first; cp <= last; cp++) {
            if (!isSurrogate(cp)) {
                b.appendCodePoint(cp);
            }
        }
        return b.toString();
    }

    private static boolean isSurrogate(int cp) {
        return cp >= 0xD800 && cp <= 0xDFFF;
    }

    private static String firstDifference(String expected, String actual) {
        int i = 0;
        while (i < expected.length() && i < actual.length() && expected.charAt(i) == actual.charAt(i)) {
            i++;
        }
        return String.format("first difference at char %d: python %s, java %s", i, hex(expected, i), hex(actual, i));
    }

    private static String hex(String s, int at) {
        StringBuilder b = new StringBuilder("[");
        s.substring(Math.max(0, at - 4), Math.min(s.length(), at + 8)).codePoints()
                .forEach(cp -> b.append(String.format("%04X ", cp)));
        return b.append("]").toString();
    }
}
