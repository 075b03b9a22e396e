package dev.bertmobilekit.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A BERT WordPiece tokenizer built from a Hugging Face {@code tokenizer.json}, equal to the fast
 * tokenizer the Python runtime uses: added (special) tokens matched on the raw text,
 * {@link TextNormalizer}, greedy longest-match WordPiece with {@code ##} continuations and
 * {@code [UNK]} for words it cannot cover or longer than {@code max_input_chars_per_word}, the
 * post-processor's {@code [CLS] ... [SEP]}, right truncation at max_length.
 *
 * <p>Anything else (BPE, other normalizers, added tokens with lstrip/rstrip/single_word or
 * matched after normalization) is refused with {@link BundleException} rather than approximated.
 * Instances are immutable and may be shared between threads.
 */
public final class BertTokenizer {
    private final TextNormalizer normalizer;
    private final Map<String, Integer> vocab;
    private final int unkId;
    private final String prefix;
    private final int maxInputCharsPerWord;
    private final List<String> addedContents = new ArrayList<>();
    private final List<Integer> addedIds = new ArrayList<>();
    private final int[] headIds;
    private final int[] headTypes;
    private final int[] tailIds;
    private final int[] tailTypes;
    private final int sequenceTypeId;
    private final int padId;
    private final int padTypeId;

    private BertTokenizer(Map<String, Object> json) {
        normalizer = normalizer(json.get("normalizer"));
        Map<String, Object> pre = Json.asObject(json.get("pre_tokenizer"), "tokenizer.json pre_tokenizer");
        if (!"BertPreTokenizer".equals(pre.get("type"))) {
            throw unsupported("pre_tokenizer " + Json.describe(pre.get("type")) + "; only BertPreTokenizer is implemented");
        }
        Map<String, Object> model = Json.asObject(json.get("model"), "tokenizer.json model");
        if (!"WordPiece".equals(model.get("type"))) {
            throw unsupported("model " + Json.describe(model.get("type")) + "; only WordPiece is implemented");
        }
        vocab = new HashMap<>();
        for (Map.Entry<String, Object> e : Json.asObject(model.get("vocab"), "tokenizer.json model.vocab").entrySet()) {
            vocab.put(e.getKey(), toInt(e.getValue(), "model.vocab['" + e.getKey() + "']"));
        }
        String unk = string(model, "unk_token", "[UNK]");
        if (!vocab.containsKey(unk)) {
            throw new BundleException("tokenizer.json: unk_token '" + unk + "' is not in the vocabulary");
        }
        unkId = vocab.get(unk);
        prefix = string(model, "continuing_subword_prefix", "##");
        maxInputCharsPerWord = model.containsKey("max_input_chars_per_word")
                ? toInt(model.get("max_input_chars_per_word"), "model.max_input_chars_per_word") : 100;

        Map<String, Integer> tokenIds = new HashMap<>(vocab);
        Object added = json.get("added_tokens");
        for (Object item : added == null ? Collections.emptyList() : Json.asArray(added, "added_tokens")) {
            Map<String, Object> token = Json.asObject(item, "tokenizer.json added_tokens[]");
            String content = string(token, "content", null);
            for (String flag : new String[] {"single_word", "lstrip", "rstrip", "normalized"}) {
                if (Boolean.TRUE.equals(token.get(flag))) {
                    throw unsupported("added token '" + content + "' has " + flag + "=true");
                }
            }
            int id = toInt(token.get("id"), "added token '" + content + "' id");
            addedContents.add(content);
            addedIds.add(id);
            tokenIds.put(content, id);
        }

        List<int[]> template = postProcessor(json.get("post_processor"), tokenIds);
        headIds = template.get(0);
        headTypes = template.get(1);
        tailIds = template.get(2);
        tailTypes = template.get(3);
        sequenceTypeId = template.get(4)[0];

        Object padding = json.get("padding");
        if (padding != null) {
            Map<String, Object> pad = Json.asObject(padding, "tokenizer.json padding");
            padId = toInt(pad.get("pad_id"), "padding.pad_id");
            padTypeId = pad.containsKey("pad_type_id") ? toInt(pad.get("pad_type_id"), "padding.pad_type_id") : 0;
        } else if (tokenIds.containsKey("[PAD]") || tokenIds.containsKey("<pad>")) {
            padId = tokenIds.containsKey("[PAD]") ? tokenIds.get("[PAD]") : tokenIds.get("<pad>");
            padTypeId = 0;
        } else {
            throw new BundleException("tokenizer.json defines no padding token (no padding config, no [PAD] or "
                    + "<pad> token); re-export the tokenizer with a pad token");
        }
    }

    /**
     * Builds a tokenizer from the text of a {@code tokenizer.json}.
     *
     * @throws BundleException the JSON is invalid or describes a tokenizer this class does not implement
     */
    public static BertTokenizer fromJson(String json) {
        Object parsed;
        try {
            parsed = Json.parse(json);
        } catch (Json.JsonException e) {
            throw new BundleException("tokenizer.json is not valid JSON: " + e.getMessage(), e);
        }
        return new BertTokenizer(Json.asObject(parsed, "tokenizer.json"));
    }

    public boolean lowercase() {
        return normalizer.lowercase;
    }

    public int padId() {
        return padId;
    }

    public int padTypeId() {
        return padTypeId;
    }

    /** The number of special tokens the post-processor adds around a single text. */
    public int specialTokenCount() {
        return headIds.length + tailIds.length;
    }

    /** The normalized, pre-tokenized words of a text (added tokens are not split out). */
    public List<String> words(String text) {
        return normalizer.words(text);
    }

    /**
     * Tokenizes one text without padding, truncating on the right so that the result, special
     * tokens included, has at most {@code maxLength} tokens.
     *
     * @throws IllegalArgumentException {@code maxLength} cannot even hold the special tokens
     */
    public Encoding encode(String text, int maxLength) {
        int budget = maxLength - specialTokenCount();
        if (budget < 0) {
            throw new IllegalArgumentException("max_length " + maxLength + " is shorter than the "
                    + specialTokenCount() + " special tokens");
        }
        List<Integer> ids = new ArrayList<>();
        int segmentStart = 0;
        for (int i = 0; i < text.length(); ) {
            int match = longestAddedToken(text, i);
            if (match < 0) {
                i += Character.charCount(text.codePointAt(i));
                continue;
            }
            wordPieces(text.substring(segmentStart, i), ids);
            ids.add(addedIds.get(match));
            i += addedContents.get(match).length();
            segmentStart = i;
        }
        wordPieces(text.substring(segmentStart), ids);

        boolean truncated = ids.size() > budget;
        int kept = Math.min(ids.size(), budget);
        int total = headIds.length + kept + tailIds.length;
        int[] out = new int[total];
        int[] types = new int[total];
        System.arraycopy(headIds, 0, out, 0, headIds.length);
        System.arraycopy(headTypes, 0, types, 0, headIds.length);
        for (int k = 0; k < kept; k++) {
            out[headIds.length + k] = ids.get(k);
            types[headIds.length + k] = sequenceTypeId;
        }
        System.arraycopy(tailIds, 0, out, headIds.length + kept, tailIds.length);
        System.arraycopy(tailTypes, 0, types, headIds.length + kept, tailIds.length);
        int[] mask = new int[total];
        Arrays.fill(mask, 1);
        return new Encoding(out, mask, types, total, truncated);
    }

    /** Leftmost-longest match of an added token at {@code at} on the raw text, or -1. */
    private int longestAddedToken(String text, int at) {
        int best = -1;
        for (int t = 0; t < addedContents.size(); t++) {
            String content = addedContents.get(t);
            if (!content.isEmpty() && text.startsWith(content, at)
                    && (best < 0 || content.length() > addedContents.get(best).length())) {
                best = t;
            }
        }
        return best;
    }

    private void wordPieces(String segment, List<Integer> ids) {
        if (segment.isEmpty()) {
            return;
        }
        for (String word : normalizer.words(segment)) {
            wordPiece(word, ids);
        }
    }

    private void wordPiece(String word, List<Integer> ids) {
        int[] cps = word.codePoints().toArray();
        if (cps.length > maxInputCharsPerWord) {
            ids.add(unkId);
            return;
        }
        List<Integer> pieces = new ArrayList<>();
        for (int start = 0; start < cps.length; ) {
            Integer found = null;
            int end = cps.length;
            for (; end > start; end--) {
                String piece = new String(cps, start, end - start);
                found = vocab.get(start > 0 ? prefix + piece : piece);
                if (found != null) {
                    break;
                }
            }
            if (found == null) {
                ids.add(unkId);
                return;
            }
            pieces.add(found);
            start = end;
        }
        ids.addAll(pieces);
    }

    // --- tokenizer.json sections ----------------------------------------------------------

    private static TextNormalizer normalizer(Object section) {
        Map<String, Object> n = Json.asObject(section, "tokenizer.json normalizer");
        if (!"BertNormalizer".equals(n.get("type"))) {
            throw unsupported("normalizer " + Json.describe(n.get("type")) + "; only BertNormalizer is implemented");
        }
        Object strip = n.get("strip_accents");
        if (strip != null && !(strip instanceof Boolean)) {
            throw new BundleException("tokenizer.json normalizer.strip_accents must be a bool or null");
        }
        return new TextNormalizer(flag(n, "clean_text"), flag(n, "handle_chinese_chars"), (Boolean) strip,
                flag(n, "lowercase"));
    }

    /** Returns {headIds, headTypes, tailIds, tailTypes, {sequenceTypeId}} for a single text. */
    private static List<int[]> postProcessor(Object section, Map<String, Integer> tokenIds) {
        List<Integer> ids = new ArrayList<>();
        List<Integer> types = new ArrayList<>();
        int split = -1;
        int sequenceType = 0;
        if (section == null) {
            split = 0;
        } else {
            Map<String, Object> p = Json.asObject(section, "tokenizer.json post_processor");
            Object type = p.get("type");
            if ("BertProcessing".equals(type)) {
                List<Object> cls = Json.asArray(p.get("cls"), "post_processor.cls");
                List<Object> sep = Json.asArray(p.get("sep"), "post_processor.sep");
                ids.add(toInt(cls.get(1), "post_processor.cls id"));
                types.add(0);
                split = 1;
                ids.add(toInt(sep.get(1), "post_processor.sep id"));
                types.add(0);
            } else if ("TemplateProcessing".equals(type)) {
                Map<String, Object> specials = Json.asObject(p.get("special_tokens"), "post_processor.special_tokens");
                for (Object item : Json.asArray(p.get("single"), "post_processor.single")) {
                    Map<String, Object> piece = Json.asObject(item, "post_processor.single[]");
                    if (piece.containsKey("Sequence")) {
                        if (split >= 0) {
                            throw unsupported("post_processor template with two sequences for a single text");
                        }
                        split = ids.size();
                        sequenceType = toInt(Json.asObject(piece.get("Sequence"), "Sequence").get("type_id"), "type_id");
                        continue;
                    }
                    Map<String, Object> special = Json.asObject(piece.get("SpecialToken"), "post_processor SpecialToken");
                    Map<String, Object> entry = Json.asObject(specials.get(special.get("id")),
                            "post_processor.special_tokens['" + special.get("id") + "']");
                    int typeId = toInt(special.get("type_id"), "type_id");
                    for (Object id : Json.asArray(entry.get("ids"), "special_tokens ids")) {
                        ids.add(toInt(id, "special token id"));
                        types.add(typeId);
                    }
                }
            } else {
                throw unsupported("post_processor " + Json.describe(type) + "; BertProcessing and TemplateProcessing are implemented");
            }
        }
        if (split < 0) {
            throw unsupported("post_processor template without the text (no Sequence piece)");
        }
        int[] all = ids.stream().mapToInt(Integer::intValue).toArray();
        int[] allTypes = types.stream().mapToInt(Integer::intValue).toArray();
        List<int[]> out = new ArrayList<>();
        out.add(Arrays.copyOfRange(all, 0, split));
        out.add(Arrays.copyOfRange(allTypes, 0, split));
        out.add(Arrays.copyOfRange(all, split, all.length));
        out.add(Arrays.copyOfRange(allTypes, split, all.length));
        out.add(new int[] {sequenceType});
        return out;
    }

    private static boolean flag(Map<String, Object> section, String key) {
        Object value = section.get(key);
        if (!(value instanceof Boolean)) {
            throw new BundleException("tokenizer.json normalizer." + key + " must be a bool, got " + Json.describe(value));
        }
        return (Boolean) value;
    }

    private static String string(Map<String, Object> section, String key, String fallback) {
        Object value = section.containsKey(key) ? section.get(key) : fallback;
        if (!(value instanceof String)) {
            throw new BundleException("tokenizer.json: '" + key + "' must be a string, got " + Json.describe(value));
        }
        return (String) value;
    }

    private static int toInt(Object value, String where) {
        if (!(value instanceof Long) || (Long) value < 0 || (Long) value > Integer.MAX_VALUE) {
            throw new BundleException("tokenizer.json: " + where + " must be a non-negative int, got " + Json.describe(value));
        }
        return (int) (long) (Long) value;
    }

    private static BundleException unsupported(String what) {
        return new BundleException("unsupported tokenizer.json: " + what + " (the Java core implements BERT "
                + "WordPiece tokenizers: BertNormalizer, BertPreTokenizer, WordPiece)");
    }
}
