package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Java WordPiece encodings equal the Hugging Face fast tokenizer's, id for id and mask for mask. */
class TokenizerParityTest {
    @Test
    void idsAndMasksEqualHuggingFace() throws Exception {
        List<Map<String, Object>> rows = Goldens.jsonLines("tokenizer_golden.jsonl");
        Map<String, BertTokenizer> tokenizers = new LinkedHashMap<>();
        Set<String> sentences = new LinkedHashSet<>();
        List<String> mismatches = new ArrayList<>();
        for (Map<String, Object> row : rows) {
            String config = (String) row.get("config");
            if (!tokenizers.containsKey(config)) {
                tokenizers.put(config, Goldens.tokenizer(config));
            }
            BertTokenizer tokenizer = tokenizers.get(config);
            String text = (String) row.get("text");
            sentences.add(text);
            Encoding enc = tokenizer.encode(text, (int) (long) (Long) row.get("max_length"));
            Object padTo = row.get("pad_to");
            if (padTo != null) {
                enc = enc.padTo((int) (long) (Long) padTo, tokenizer.padId(), tokenizer.padTypeId());
            }
            int[] ids = Goldens.ints(row.get("input_ids"));
            int[] mask = Goldens.ints(row.get("attention_mask"));
            if (!Arrays.equals(ids, enc.inputIds) || !Arrays.equals(mask, enc.attentionMask)) {
                mismatches.add(String.format("[%s] %s%n    python ids %s mask %s%n    java   ids %s mask %s", config,
                        Json.describe(text), Arrays.toString(ids), Arrays.toString(mask),
                        Arrays.toString(enc.inputIds), Arrays.toString(enc.attentionMask)));
            }
        }
        System.out.printf("tokenizer parity: %d golden sentences x %d configurations %s = %d encodings, %d mismatches%n",
                sentences.size(), tokenizers.size(), tokenizers.keySet(), rows.size(), mismatches.size());
        mismatches.stream().limit(10).forEach(System.out::println);
        long expected = (Long) Goldens.summary().get("sentences");
        assertEquals(expected, sentences.size(), "sentences read vs summary.json");
        assertEquals(expected * tokenizers.size(), rows.size(), "every sentence in every configuration");
        assertTrue(mismatches.isEmpty(), mismatches.size() + " of " + rows.size() + " encodings differ from Python");
    }
}
