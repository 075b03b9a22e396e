package dev.bertmobilekit.core;

import java.nio.ByteBuffer;

/**
 * The int8 logits of a full-integer model ({@code int8-full-int8-io}) as floats:
 * {@code real = scale * (q - zeroPoint)}, with the model's output scale and zero point, in float32
 * arithmetic exactly as the Python runtime does it ({@code runtime.backends.dequantize_logits}),
 * so that the self-test compares the same numbers the kit's verify measured.
 */
public final class QuantizedLogits {
    public final float scale;
    public final int zeroPoint;

    /**
     * @param scale the output tensor's scale: positive and finite
     * @param zeroPoint the output tensor's zero point: an int8 value, -128..127
     * @throws BundleException for parameters no int8 output can have (the model is malformed)
     */
    public QuantizedLogits(float scale, int zeroPoint) {
        if (!(scale > 0f) || Float.isInfinite(scale)) {
            throw new BundleException("int8 logits need a positive, finite output scale, the model has " + scale
                    + "; re-export the bundle (or ship one with float logits, e.g. int8-full)");
        }
        if (zeroPoint < -128 || zeroPoint > 127) {
            throw new BundleException("int8 logits need a zero point in -128..127, the model has " + zeroPoint
                    + "; re-export the bundle");
        }
        this.scale = scale;
        this.zeroPoint = zeroPoint;
    }

    /** One float per int8 value, in order. */
    public float[] dequantize(byte[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = value(values[i]);
        }
        return out;
    }

    /** The {@code count} int8 values from the buffer's start (absolute reads: its position is kept). */
    public float[] dequantize(ByteBuffer values, int count) {
        if (count < 0 || count > values.limit()) {
            throw new IllegalArgumentException("asked for " + count + " int8 logits, the buffer holds " + values.limit());
        }
        float[] out = new float[count];
        for (int i = 0; i < count; i++) {
            out[i] = value(values.get(i));
        }
        return out;
    }

    private float value(byte q) {
        // q - zeroPoint is exact in int and in float (|q - zp| <= 255); one float32 rounding, as numpy.
        return (float) (q - zeroPoint) * scale;
    }

    @Override
    public String toString() {
        return "int8 logits (scale " + scale + ", zero point " + zeroPoint + ")";
    }
}
