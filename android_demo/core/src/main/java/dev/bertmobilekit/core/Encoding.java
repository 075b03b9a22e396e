package dev.bertmobilekit.core;

import java.util.Arrays;

/**
 * One tokenized text: ids with their attention mask and token type ids, padded to
 * {@link #paddedLength()} (or unpadded when {@code length == paddedLength()}).
 */
public final class Encoding {
    /** Token ids, {@code [CLS] ... [SEP]} then padding. */
    public final int[] inputIds;
    /** 1 for real tokens, 0 for padding. */
    public final int[] attentionMask;
    /** Segment ids from the post-processor; the pad type id for padding. */
    public final int[] tokenTypeIds;
    /** Number of real tokens, special tokens included. */
    public final int length;
    /** Whether the text was cut at max_length. */
    public final boolean truncated;

    Encoding(int[] inputIds, int[] attentionMask, int[] tokenTypeIds, int length, boolean truncated) {
        this.inputIds = inputIds;
        this.attentionMask = attentionMask;
        this.tokenTypeIds = tokenTypeIds;
        this.length = length;
        this.truncated = truncated;
    }

    public int paddedLength() {
        return inputIds.length;
    }

    /** Returns the real (unpadded) token ids. */
    public int[] ids() {
        return Arrays.copyOf(inputIds, length);
    }

    /**
     * Pads on the right to exactly {@code width} tokens, like the Python runtime.
     *
     * @throws IllegalArgumentException {@code width} is shorter than the real tokens
     */
    public Encoding padTo(int width, int padId, int padTypeId) {
        if (width < length) {
            throw new IllegalArgumentException("cannot pad " + length + " tokens to " + width);
        }
        int[] ids = Arrays.copyOf(Arrays.copyOf(inputIds, length), width);
        int[] mask = new int[width];
        int[] types = Arrays.copyOf(Arrays.copyOf(tokenTypeIds, length), width);
        Arrays.fill(ids, length, width, padId);
        Arrays.fill(mask, 0, length, 1);
        Arrays.fill(types, length, width, padTypeId);
        return new Encoding(ids, mask, types, length, truncated);
    }
}
