package dev.bertmobilekit.core;

import java.io.ByteArrayOutputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Map;

/**
 * A verified bundle: its manifest, every listed file checked against its sha256, and the
 * tokenizer built from the bundle's {@code tokenizer.json}. Mirrors {@code load_manifest} in
 * {@code runtime/bundle.py}: anything that does not match is refused, never half-used.
 */
public final class Bundle {
    public final Manifest manifest;
    public final BertTokenizer tokenizer;
    private final BundleSource source;

    private Bundle(Manifest manifest, BertTokenizer tokenizer, BundleSource source) {
        this.manifest = manifest;
        this.tokenizer = tokenizer;
        this.source = source;
    }

    /**
     * Reads the manifest, checks the sha256 of every file it lists, and builds the tokenizer.
     *
     * @throws BundleException the manifest is missing or invalid, a file is missing or altered,
     *     the tokenizer is not a BERT WordPiece tokenizer, or it disagrees with the manifest
     */
    public static Bundle load(BundleSource source) {
        String where = source.describe();
        byte[] manifestBytes;
        try {
            manifestBytes = readAll(source, Manifest.FILE_NAME);
        } catch (FileNotFoundException e) {
            throw new BundleException("no " + Manifest.FILE_NAME + " in " + where + ": not a bundle, "
                    + "or it was never sealed; copy one with `python -m export android`");
        } catch (IOException e) {
            throw new BundleException("cannot read " + Manifest.FILE_NAME + " in " + where + ": " + e, e);
        }
        Manifest manifest;
        try {
            manifest = Manifest.parse(new String(manifestBytes, StandardCharsets.UTF_8));
        } catch (BundleException e) {
            throw new BundleException(where + "/" + Manifest.FILE_NAME + ": " + e.getMessage(), e);
        }
        for (Map.Entry<String, String> file : manifest.files.entrySet()) {
            verify(source, file.getKey(), file.getValue());
        }
        byte[] tokenizerJson;
        try {
            tokenizerJson = readAll(source, manifest.tokenizerFile);
        } catch (IOException e) {
            throw new BundleException("cannot read " + manifest.tokenizerFile + " in " + where + ": " + e, e);
        }
        BertTokenizer tokenizer = BertTokenizer.fromJson(new String(tokenizerJson, StandardCharsets.UTF_8));
        if (tokenizer.lowercase() != manifest.lowercase) {
            throw new BundleException("bundle " + where + " is inconsistent: manifest says lowercase="
                    + manifest.lowercase + " but " + manifest.tokenizerFile + " normalizer has lowercase="
                    + tokenizer.lowercase() + "; re-export the bundle");
        }
        return new Bundle(manifest, tokenizer, source);
    }

    /** Opens a file of the bundle, e.g. the model; it was verified by {@link #load}. */
    public InputStream open(String name) throws IOException {
        if (!manifest.files.containsKey(name)) {
            throw new FileNotFoundException(name + " is not listed in " + Manifest.FILE_NAME);
        }
        return source.open(name);
    }

    /**
     * The model file as a read-only buffer, memory-mapped where the source allows (see
     * {@link BundleSource#map}); its sha256 was checked by {@link #load} as a stream.
     */
    public java.nio.ByteBuffer mapModel() throws IOException {
        return source.map(manifest.modelFile);
    }

    /** Returns the lowercase hex sha256 of a stream, read in 64 KiB chunks; closes it. */
    public static String sha256(InputStream in) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required on every Java platform", e);
        }
        try (InputStream stream = in) {
            byte[] buffer = new byte[1 << 16];
            for (int n; (n = stream.read(buffer)) > 0; ) {
                digest.update(buffer, 0, n);
            }
        }
        StringBuilder hex = new StringBuilder(64);
        for (byte b : digest.digest()) {
            hex.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
        }
        return hex.toString();
    }

    private static void verify(BundleSource source, String name, String expected) {
        String actual;
        try {
            actual = sha256(source.open(name));
        } catch (FileNotFoundException e) {
            throw new BundleException("bundle " + source.describe() + " is incomplete: file '" + name
                    + "' listed in " + Manifest.FILE_NAME + " is missing; copy the whole bundle again");
        } catch (IOException e) {
            throw new BundleException("cannot read bundle file '" + name + "': " + e, e);
        }
        if (!actual.equals(expected)) {
            throw new BundleException("bundle file '" + name + "' in " + source.describe() + " does not match "
                    + Manifest.FILE_NAME + ": sha256 expected " + expected.substring(0, 12) + "..., got "
                    + actual.substring(0, 12) + "...; it was modified or truncated after export, "
                    + "copy the bundle again with `python -m export android`");
        }
    }

    static byte[] readAll(BundleSource source, String name) throws IOException {
        try (InputStream in = source.open(name)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[1 << 16];
            for (int n; (n = in.read(buffer)) > 0; ) {
                out.write(buffer, 0, n);
            }
            return out.toByteArray();
        }
    }
}
