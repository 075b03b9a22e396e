package android.content.res;

import java.io.IOException;
import java.io.InputStream;

public final class AssetManager implements AutoCloseable {
    public InputStream open(String fileName) throws IOException { throw new UnsupportedOperationException("stub"); }

    public AssetFileDescriptor openFd(String fileName) throws IOException {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void close() {}
}
