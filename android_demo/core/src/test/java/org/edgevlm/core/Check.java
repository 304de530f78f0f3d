package org.edgevlm.core;

import java.util.Arrays;
import java.util.Objects;

/** Assertions for the self-contained test runner (no JUnit needed to build and run the core tests). */
final class Check {
    private Check() {
    }

    static final class Failure extends AssertionError {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    static void isTrue(boolean condition, String what) {
        if (!condition) {
            throw new Failure(what);
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            if (expected instanceof String && actual instanceof String) {
                throw new Failure(what + ": " + stringDiff((String) expected, (String) actual));
            }
            throw new Failure(what + ": expected " + show(expected) + ", got " + show(actual));
        }
    }

    /** Where two long strings first differ, with some context. */
    static String stringDiff(String expected, String actual) {
        int i = 0;
        while (i < expected.length() && i < actual.length() && expected.charAt(i) == actual.charAt(i)) {
            i++;
        }
        int from = Math.max(0, i - 40);
        return "differs at character " + i + " (lengths " + expected.length() + " / " + actual.length() + "): expected ..."
                + Py.repr(expected.substring(from, Math.min(expected.length(), i + 40))) + ", got ..."
                + Py.repr(actual.substring(from, Math.min(actual.length(), i + 40)));
    }

    static void equal(long expected, long actual, String what) {
        if (expected != actual) {
            throw new Failure(what + ": expected " + expected + ", got " + actual);
        }
    }

    static void equal(int[] expected, int[] actual, String what) {
        if (!Arrays.equals(expected, actual)) {
            throw new Failure(what + ": expected " + Arrays.toString(expected) + ", got " + Arrays.toString(actual));
        }
    }

    static void equal(long[] expected, long[] actual, String what) {
        if (!Arrays.equals(expected, actual)) {
            throw new Failure(what + ": expected " + Arrays.toString(expected) + ", got " + Arrays.toString(actual));
        }
    }

    /** Runs {@code body}, which must throw {@code type}; returns the exception. */
    static <T extends Throwable> T raises(Class<T> type, Runnable body, String what) {
        try {
            body.run();
        } catch (Throwable t) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
            throw new Failure(what + ": expected " + type.getSimpleName() + ", got " + t);
        }
        throw new Failure(what + ": expected " + type.getSimpleName() + ", nothing was thrown");
    }

    private static String show(Object v) {
        if (v instanceof String) {
            String s = (String) v;
            return Py.repr(s.length() > 400 ? s.substring(0, 400) + "..." : s);
        }
        return String.valueOf(v);
    }
}
