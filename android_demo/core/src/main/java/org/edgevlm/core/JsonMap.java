package org.edgevlm.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Typed reads from parsed JSON (see {@link Json}); a wrong type is an IllegalArgumentException naming the key. */
public final class JsonMap {
    private JsonMap() {
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> map(Object value, String what) {
        if (!(value instanceof Map)) {
            throw new IllegalArgumentException(what + " is not a JSON object");
        }
        return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    public static List<Object> list(Object value, String what) {
        if (!(value instanceof List)) {
            throw new IllegalArgumentException(what + " is not a JSON array");
        }
        return (List<Object>) value;
    }

    public static Map<String, Object> getMap(Map<String, Object> m, String key) {
        Object v = m.get(key);
        return v == null ? new LinkedHashMap<>() : map(v, key);
    }

    public static List<Object> getList(Map<String, Object> m, String key) {
        Object v = m.get(key);
        return v == null ? new ArrayList<>() : list(v, key);
    }

    public static String getString(Map<String, Object> m, String key, String fallback) {
        Object v = m.containsKey(key) ? m.get(key) : fallback;
        if (v != null && !(v instanceof String)) {
            throw new IllegalArgumentException(key + " is not a string");
        }
        return (String) v;
    }

    public static long getLong(Map<String, Object> m, String key, long fallback) {
        Object v = m.get(key);
        return v == null ? fallback : asLong(v, key);
    }

    public static int getInt(Map<String, Object> m, String key, int fallback) {
        return (int) getLong(m, key, fallback);
    }

    public static double getDouble(Map<String, Object> m, String key, double fallback) {
        Object v = m.get(key);
        return v == null ? fallback : asDouble(v, key);
    }

    public static boolean getBool(Map<String, Object> m, String key, boolean fallback) {
        Object v = m.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof Boolean)) {
            throw new IllegalArgumentException(key + " is not true/false");
        }
        return (Boolean) v;
    }

    public static long asLong(Object v, String what) {
        if (v instanceof Long) {
            return (Long) v;
        }
        if (v instanceof Double && ((Double) v) == Math.rint((Double) v)) {
            return (long) (double) (Double) v;
        }
        throw new IllegalArgumentException(what + " is not an integer");
    }

    public static double asDouble(Object v, String what) {
        if (v instanceof Number) {
            return ((Number) v).doubleValue();
        }
        throw new IllegalArgumentException(what + " is not a number");
    }

    public static int[] intArray(Object v, String what) {
        List<Object> items = list(v, what);
        int[] out = new int[items.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (int) asLong(items.get(i), what);
        }
        return out;
    }

    public static long[] longArray(Object v, String what) {
        List<Object> items = list(v, what);
        long[] out = new long[items.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = asLong(items.get(i), what);
        }
        return out;
    }

    public static List<String> stringList(Object v, String what) {
        List<String> out = new ArrayList<>();
        for (Object item : list(v, what)) {
            if (!(item instanceof String)) {
                throw new IllegalArgumentException(what + " holds a non-string");
            }
            out.add((String) item);
        }
        return out;
    }
}
