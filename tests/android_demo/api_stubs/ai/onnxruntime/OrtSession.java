package ai.onnxruntime;

import java.util.Iterator;
import java.util.Map;
import java.util.Set;

public class OrtSession implements AutoCloseable {
    public static class SessionOptions implements AutoCloseable {
        public enum OptLevel { NO_OPT, BASIC_OPT, EXTENDED_OPT, LAYOUT_OPT, ALL_OPT }

        public SessionOptions() {}

        public void setIntraOpNumThreads(int numThreads) throws OrtException {
            throw new UnsupportedOperationException("stub");
        }

        public void setOptimizationLevel(OptLevel level) throws OrtException {
            throw new UnsupportedOperationException("stub");
        }

        @Override
        public void close() {}
    }

    public static class Result implements AutoCloseable, Iterable<Map.Entry<String, OnnxValue>> {
        public OnnxValue get(int index) { throw new UnsupportedOperationException("stub"); }

        public int size() { throw new UnsupportedOperationException("stub"); }

        @Override
        public Iterator<Map.Entry<String, OnnxValue>> iterator() { throw new UnsupportedOperationException("stub"); }

        @Override
        public void close() {}
    }

    public Set<String> getInputNames() { throw new UnsupportedOperationException("stub"); }

    public Set<String> getOutputNames() { throw new UnsupportedOperationException("stub"); }

    public Map<String, NodeInfo> getInputInfo() throws OrtException { throw new UnsupportedOperationException("stub"); }

    public Result run(Map<String, ? extends OnnxTensorLike> inputs) throws OrtException {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void close() throws OrtException {}
}
