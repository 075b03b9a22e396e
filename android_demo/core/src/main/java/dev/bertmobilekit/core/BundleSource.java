package dev.bertmobilekit.core;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;

/**
 * Where a bundle's files are read from: a directory on the JVM, the APK's assets on Android.
 */
public interface BundleSource {
    /**
     * Opens one file of the bundle by its plain name.
     *
     * @throws FileNotFoundException the file does not exist
     * @throws IOException it cannot be read
     */
    InputStream open(String name) throws IOException;

    /** Describes the source in error messages, e.g. a path. */
    String describe();

    /**
     * The whole file as a read-only buffer, memory-mapped where the source can (a directory, an
     * uncompressed APK asset): the model is then never copied onto the Java heap, so loading it
     * costs its size once, not twice. This default copies the stream into a direct buffer, for
     * sources that cannot map.
     *
     * @throws FileNotFoundException the file does not exist
     * @throws IOException it cannot be read or mapped
     */
    default ByteBuffer map(String name) throws IOException {
        byte[] bytes = Bundle.readAll(this, name);
        ByteBuffer buffer = ByteBuffer.allocateDirect(bytes.length).order(ByteOrder.nativeOrder());
        buffer.put(bytes).rewind();
        // asReadOnlyBuffer() answers BIG_ENDIAN; LiteRT takes a direct buffer only in native order.
        return buffer.asReadOnlyBuffer().order(ByteOrder.nativeOrder());
    }

    /** A bundle directory on the file system. */
    static BundleSource directory(File dir) {
        return new BundleSource() {
            @Override
            public InputStream open(String name) throws IOException {
                File file = new File(dir, name);
                if (!file.isFile()) {
                    throw new FileNotFoundException(file.getPath());
                }
                return new FileInputStream(file);
            }

            @Override
            public String describe() {
                return dir.getPath();
            }

            @Override
            public ByteBuffer map(String name) throws IOException {
                File file = new File(dir, name);
                if (!file.isFile()) {
                    throw new FileNotFoundException(file.getPath());
                }
                // The mapping stays valid after the channel closes.
                try (RandomAccessFile raf = new RandomAccessFile(file, "r"); FileChannel channel = raf.getChannel()) {
                    return channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size()).order(ByteOrder.nativeOrder());
                }
            }
        };
    }
}
