package android.content.res;

import java.io.Closeable;
import java.io.FileDescriptor;
import java.io.IOException;

public class AssetFileDescriptor implements Closeable {
    public FileDescriptor getFileDescriptor() { throw new UnsupportedOperationException("stub"); }

    public long getStartOffset() { throw new UnsupportedOperationException("stub"); }

    public long getDeclaredLength() { throw new UnsupportedOperationException("stub"); }

    @Override
    public void close() throws IOException {}
}
