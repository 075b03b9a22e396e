package dev.bertmobilekit.core;

/** A bundle that cannot be trusted or used: missing, malformed, tampered with, or unsupported. */
public class BundleException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public BundleException(String message) {
        super(message);
    }

    public BundleException(String message, Throwable cause) {
        super(message, cause);
    }
}
