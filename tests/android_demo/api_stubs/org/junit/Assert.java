package org.junit;

public class Assert {
    public static void assertTrue(String message, boolean condition) { throw new UnsupportedOperationException("stub"); }
}
