package android.os;

public class Bundle {
    public Bundle() {}

    public void putString(String key, String value) { throw new UnsupportedOperationException("stub"); }
}
