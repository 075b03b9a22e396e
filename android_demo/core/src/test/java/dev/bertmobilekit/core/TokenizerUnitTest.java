package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** WordPiece rules on a ten-token vocabulary; the golden parity tests cover the real one. */
class TokenizerUnitTest {
    static final String VOCAB = "\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"un\": 4, \"##aff\": 5, "
            + "\"##able\": 6, \"cafe\": 7, \"!\": 8, \"我\": 9";

    static String tokenizerJson(String normalizer, int maxChars) {
        return "{\"added_tokens\": [{\"id\": 0, \"content\": \"[PAD]\", \"single_word\": false, \"lstrip\": false, "
                + "\"rstrip\": false, \"normalized\": false, \"special\": true}, {\"id\": 3, \"content\": \"[SEP]\", "
                + "\"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}], "
                + "\"normalizer\": " + normalizer + ", \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, "
                + "\"post_processor\": {\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 3], \"cls\": [\"[CLS]\", 2]}, "
                + "\"padding\": null, \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", "
                + "\"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": " + maxChars + ", \"vocab\": {"
                + VOCAB + "}}}";
    }

    static final String UNCASED = "{\"type\": \"BertNormalizer\", \"clean_text\": true, "
            + "\"handle_chinese_chars\": true, \"strip_accents\": null, \"lowercase\": true}";

    @Test
    void greedyLongestMatchWithUnknownsAndSpecialTokens() {
        BertTokenizer t = BertTokenizer.fromJson(tokenizerJson(UNCASED, 9));
        assertArrayEquals(new int[] {2, 4, 5, 6, 8, 3}, t.encode("UnAffable!", 32).ids());
        assertArrayEquals(new int[] {2, 7, 1, 3}, t.encode("Café unx", 32).ids()); // one bad piece: whole word [UNK]
        assertArrayEquals(new int[] {2, 9, 9, 3}, t.encode("我我", 32).ids()); // CJK split into characters
        assertArrayEquals(new int[] {2, 1, 3}, t.encode("unaffables", 32).ids()); // 10 chars > max 9
        assertArrayEquals(new int[] {2, 7, 3, 7, 3}, t.encode("cafe[SEP]cafe", 32).ids()); // raw-text special token
        assertArrayEquals(new int[] {2, 1, 1, 1, 1, 3}, t.encode("[sep]x", 32).ids()); // case-sensitive, so not special
        assertArrayEquals(new int[] {2, 3}, t.encode("\u0000\u200b ", 32).ids());
        assertEquals(0, t.padId());
    }

    @Test
    void truncatesOnTheRightAndPads() {
        BertTokenizer t = BertTokenizer.fromJson(tokenizerJson(UNCASED, 100));
        Encoding e = t.encode("cafe cafe cafe cafe", 4);
        assertArrayEquals(new int[] {2, 7, 7, 3}, e.ids());
        assertTrue(e.truncated);
        Encoding p = e.padTo(6, t.padId(), t.padTypeId());
        assertArrayEquals(new int[] {2, 7, 7, 3, 0, 0}, p.inputIds);
        assertArrayEquals(new int[] {1, 1, 1, 1, 0, 0}, p.attentionMask);
        assertFalse(t.encode("cafe", 4).truncated);
        assertThrows(IllegalArgumentException.class, () -> t.encode("x", 1));
    }

    @Test
    void casedKeepsCaseAndAccents() {
        String cased = UNCASED.replace("\"lowercase\": true", "\"lowercase\": false");
        BertTokenizer t = BertTokenizer.fromJson(tokenizerJson(cased, 100));
        assertFalse(t.lowercase());
        assertEquals(Arrays.asList("Café", "!"), t.words("Café!"));
    }

    @Test
    void refusesTokenizersItDoesNotImplement() {
        String bpe = tokenizerJson(UNCASED, 100).replace("\"type\": \"WordPiece\"", "\"type\": \"BPE\"");
        BundleException e = assertThrows(BundleException.class, () -> BertTokenizer.fromJson(bpe));
        assertTrue(e.getMessage().contains("only WordPiece"), e.getMessage());
        String lstrip = tokenizerJson(UNCASED, 100).replaceFirst("\"lstrip\": false", "\"lstrip\": true");
        assertThrows(BundleException.class, () -> BertTokenizer.fromJson(lstrip));
    }

    @Test
    void latencyPercentilesMatchNumpy() {
        long[] values = {5, 1, 4, 2, 3, 10};
        assertEquals(3.5, Latency.percentile(values, 50)); // np.percentile([5,1,4,2,3,10], 50)
        assertEquals(7.5, Latency.percentile(values, 90)); // np.percentile(..., 90)
        assertEquals(7.0, Latency.percentile(new long[] {7}, 50));
    }
}
