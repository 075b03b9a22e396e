package org.tensorflow.lite;

public interface Tensor {
    class QuantizationParams {
        public QuantizationParams(float scale, int zeroPoint) {}

        public float getScale() { throw new UnsupportedOperationException("stub"); }

        public int getZeroPoint() { throw new UnsupportedOperationException("stub"); }
    }

    DataType dataType();

    int[] shape();

    QuantizationParams quantizationParams();
}
