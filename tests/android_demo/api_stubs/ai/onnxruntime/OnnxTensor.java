package ai.onnxruntime;

import java.nio.IntBuffer;
import java.nio.LongBuffer;

public class OnnxTensor extends OnnxTensorLike {
    public static OnnxTensor createTensor(OrtEnvironment env, LongBuffer data, long[] shape) throws OrtException {
        throw new UnsupportedOperationException("stub");
    }

    public static OnnxTensor createTensor(OrtEnvironment env, IntBuffer data, long[] shape) throws OrtException {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public Object getValue() throws OrtException { throw new UnsupportedOperationException("stub"); }

    @Override
    public void close() {}
}
