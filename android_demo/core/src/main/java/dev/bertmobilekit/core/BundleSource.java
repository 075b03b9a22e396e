package dev.bertmobilekit.core;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;

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
        };
    }
}
