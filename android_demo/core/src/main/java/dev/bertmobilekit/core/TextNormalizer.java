package dev.bertmobilekit.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Hugging Face {@code BertNormalizer} followed by {@code BertPreTokenizer}, character for
 * character: clean_text (drop controls, format characters, U+0000 and U+FFFD; whitespace to a
 * space), handle_chinese_chars (spaces around CJK ideographs), strip_accents (NFD, then drop
 * nonspacing marks; follows lowercase when null), lowercase, then split on whitespace and
 * isolate punctuation.
 *
 * <p>Character classes come from {@link UnicodeTables}, measured on {@code tokenizers} itself,
 * so the result does not depend on the JVM's or the Android release's Unicode version. Lone
 * UTF-16 surrogates (which a Rust string cannot hold) are dropped.
 */
public final class TextNormalizer {
    private static final RangeSet REMOVED = RangeSet.parse(UnicodeTables.REMOVED);
    private static final RangeSet SPACE = RangeSet.parse(UnicodeTables.SPACE);
    private static final RangeSet CHINESE = RangeSet.parse(UnicodeTables.CHINESE);
    private static final RangeSet STRIP_REMOVED = RangeSet.parse(UnicodeTables.STRIP_REMOVED);
    private static final RangeSet SPLIT_SPACE = RangeSet.parse(UnicodeTables.SPLIT_SPACE);
    private static final RangeSet PUNCT = RangeSet.parse(UnicodeTables.PUNCT);
    private static final Map<Integer, int[]> STRIP_MAP = parseMap(UnicodeTables.STRIP_MAP);
    private static final Map<Integer, int[]> LOWER_MAP = parseMap(UnicodeTables.LOWER_MAP);
    private static final int HANGUL_FIRST = 0xAC00;
    private static final int HANGUL_LAST = 0xD7A3;

    final boolean cleanText;
    final boolean handleChineseChars;
    final boolean stripAccents;
    final boolean lowercase;

    /**
     * @param stripAccents {@code null} follows {@code lowercase}, as in {@code tokenizers}
     */
    public TextNormalizer(boolean cleanText, boolean handleChineseChars, Boolean stripAccents, boolean lowercase) {
        this.cleanText = cleanText;
        this.handleChineseChars = handleChineseChars;
        this.stripAccents = stripAccents == null ? lowercase : stripAccents;
        this.lowercase = lowercase;
    }

    /** Normalizes then pre-tokenizes: the words WordPiece sees. */
    public List<String> words(String text) {
        return preTokenize(normalize(text));
    }

    /** Returns the normalized text as code points. */
    public int[] normalize(String text) {
        IntList out = new IntList(text.length() + 8);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                continue;
            }
            if (cleanText) {
                if (REMOVED.contains(cp)) {
                    continue;
                }
                if (SPACE.contains(cp)) {
                    cp = ' ';
                }
            }
            if (handleChineseChars && CHINESE.contains(cp)) {
                out.add(' ');
                out.add(cp);
                out.add(' ');
            } else {
                out.add(cp);
            }
        }
        if (stripAccents) {
            out = strip(out);
        }
        if (lowercase) {
            out = map(out, LOWER_MAP);
        }
        return out.toArray();
    }

    /** Splits on whitespace (dropped) and punctuation (kept as one-character words). */
    public static List<String> preTokenize(int[] cps) {
        List<String> words = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < cps.length; i++) {
            int cp = cps[i];
            boolean space = SPLIT_SPACE.contains(cp);
            if (space || PUNCT.contains(cp)) {
                if (i > start) {
                    words.add(new String(cps, start, i - start));
                }
                if (!space) {
                    words.add(new String(cps, i, 1));
                }
                start = i + 1;
            }
        }
        if (cps.length > start) {
            words.add(new String(cps, start, cps.length - start));
        }
        return words;
    }

    private static IntList strip(IntList in) {
        IntList out = new IntList(in.size + 8);
        for (int k = 0; k < in.size; k++) {
            int cp = in.data[k];
            if (cp >= HANGUL_FIRST && cp <= HANGUL_LAST) { // NFD of Hangul is algorithmic
                int s = cp - HANGUL_FIRST;
                out.add(0x1100 + s / 588);
                out.add(0x1161 + (s % 588) / 28);
                if (s % 28 != 0) {
                    out.add(0x11A7 + s % 28);
                }
            } else if (!STRIP_REMOVED.contains(cp)) {
                int[] mapped = STRIP_MAP.get(cp);
                if (mapped == null) {
                    out.add(cp);
                } else {
                    out.addAll(mapped);
                }
            }
        }
        return out;
    }

    private static IntList map(IntList in, Map<Integer, int[]> table) {
        IntList out = new IntList(in.size + 8);
        for (int k = 0; k < in.size; k++) {
            int[] mapped = table.get(in.data[k]);
            if (mapped == null) {
                out.add(in.data[k]);
            } else {
                out.addAll(mapped);
            }
        }
        return out;
    }

    private static Map<Integer, int[]> parseMap(String table) {
        Map<Integer, int[]> out = new HashMap<>();
        for (String entry : table.split(",")) {
            int colon = entry.indexOf(':');
            String[] values = entry.substring(colon + 1).split(" ");
            int[] cps = new int[values.length];
            for (int i = 0; i < cps.length; i++) {
                cps[i] = Integer.parseInt(values[i], 16);
            }
            out.put(Integer.parseInt(entry.substring(0, colon), 16), cps);
        }
        return out;
    }

    /** Sorted, disjoint inclusive code point ranges; membership by binary search. */
    static final class RangeSet {
        private final int[] starts;
        private final int[] ends;

        private RangeSet(int[] starts, int[] ends) {
            this.starts = starts;
            this.ends = ends;
        }

        static RangeSet parse(String table) {
            String[] items = table.split(",");
            int[] starts = new int[items.length];
            int[] ends = new int[items.length];
            for (int i = 0; i < items.length; i++) {
                int dash = items[i].indexOf('-');
                starts[i] = Integer.parseInt(dash < 0 ? items[i] : items[i].substring(0, dash), 16);
                ends[i] = dash < 0 ? starts[i] : Integer.parseInt(items[i].substring(dash + 1), 16);
            }
            return new RangeSet(starts, ends);
        }

        boolean contains(int cp) {
            int i = Arrays.binarySearch(starts, cp);
            if (i >= 0) {
                return true;
            }
            int before = -i - 2;
            return before >= 0 && cp <= ends[before];
        }
    }

    /** A growable int array, to avoid boxing every code point. */
    private static final class IntList {
        int[] data;
        int size;

        IntList(int capacity) {
            data = new int[Math.max(capacity, 8)];
        }

        void add(int value) {
            if (size == data.length) {
                data = Arrays.copyOf(data, size * 2);
            }
            data[size++] = value;
        }

        void addAll(int[] values) {
            for (int v : values) {
                add(v);
            }
        }

        int[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }
}
