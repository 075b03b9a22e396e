package ai.onnxruntime;

public class NodeInfo {
    public String getName() { throw new UnsupportedOperationException("stub"); }

    public ValueInfo getInfo() { throw new UnsupportedOperationException("stub"); }
}
