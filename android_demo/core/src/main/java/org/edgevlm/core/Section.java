package org.edgevlm.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * One typed section of a manifest read from parsed JSON, with the checks of manifest/schema.py
 * {@code _Section.from_dict}: a section that is not an object, or has unknown or missing fields, is an error with
 * Python's message. Python's dataclasses do not check value types; here a value of the wrong JSON type is an
 * error naming the field (a message Python has no counterpart for).
 */
final class Section {
    private final Map<String, Object> data;
    private final String where;

    private Section(Map<String, Object> data, String where) {
        this.data = data;
        this.where = where;
    }

    /** {@code where} names the section, e.g. "bundle/manifest.json: text"; {@code type} is the Python class name. */
    static Section read(Object json, String type, String where, List<String> required, List<String> optional) {
        if (!(json instanceof Map)) {
            throw new BundleException(where + ": " + type + " is not a JSON object. Re-export the bundle.");
        }
        Map<String, Object> data = JsonMap.map(json, type);
        TreeSet<String> unknown = new TreeSet<>(data.keySet());
        unknown.removeAll(required);
        unknown.removeAll(optional);
        TreeSet<String> missing = new TreeSet<>(required);
        missing.removeAll(data.keySet());
        if (!unknown.isEmpty() || !missing.isEmpty()) {
            throw new BundleException(where + ": " + type + " has unknown fields " + Py.repr(new ArrayList<Object>(unknown))
                    + " / lacks " + Py.repr(new ArrayList<Object>(missing)) + ". Re-export the bundle or upgrade edgevlm.");
        }
        return new Section(data, where);
    }

    private BundleException wrong(String key, String expected) {
        return new BundleException(where + ": " + key + " is " + Py.repr(data.get(key)) + ", not " + expected
                + ". Re-export the bundle.");
    }

    /** A string; null when the value is null or absent with a null fallback. */
    String string(String key, String fallback) {
        Object v = data.containsKey(key) ? data.get(key) : fallback;
        if (v != null && !(v instanceof String)) {
            throw wrong(key, "a string");
        }
        return (String) v;
    }

    int integer(String key, int fallback) {
        if (!data.containsKey(key)) {
            return fallback;
        }
        Integer v = nullableInteger(key);
        if (v == null) {
            throw wrong(key, "an integer");
        }
        return v;
    }

    /** An integer or null (absent: null). */
    Integer nullableInteger(String key) {
        Long v = nullableLong(key);
        if (v != null && (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE)) {
            throw wrong(key, "an integer in the int range");
        }
        return v == null ? null : (int) (long) v;
    }

    Long nullableLong(String key) {
        Object v = data.get(key);
        try {
            return v == null ? null : JsonMap.asLong(v, key);
        } catch (IllegalArgumentException ex) {
            throw wrong(key, "an integer");
        }
    }

    /** A JSON object (absent: empty). */
    Map<String, Object> map(String key) {
        Object v = data.get(key);
        if (v == null && !data.containsKey(key)) {
            return new LinkedHashMap<>();
        }
        if (!(v instanceof Map)) {
            throw wrong(key, "a JSON object");
        }
        return JsonMap.map(v, key);
    }

    /** A list of strings (absent: empty); with {@code nulls}, null entries are kept (paths a later check refuses). */
    List<String> strings(String key, boolean nulls) {
        List<String> out = new ArrayList<>();
        for (Object item : list(key)) {
            if (!(item instanceof String) && !(nulls && item == null)) {
                throw wrong(key, "a list of strings");
            }
            out.add((String) item);
        }
        return out;
    }

    List<Long> longs(String key) {
        List<Long> out = new ArrayList<>();
        for (Object item : list(key)) {
            try {
                out.add(JsonMap.asLong(item, key));
            } catch (IllegalArgumentException ex) {
                throw wrong(key, "a list of integers");
            }
        }
        return out;
    }

    private List<Object> list(String key) {
        Object v = data.get(key);
        if (v == null && !data.containsKey(key)) {
            return new ArrayList<>();
        }
        if (!(v instanceof List)) {
            throw wrong(key, "a JSON array");
        }
        return JsonMap.list(v, key);
    }
}
