package org.edgevlm.core;

import java.util.List;
import java.util.Map;

/**
 * The few Python behaviours the port must reproduce exactly: {@code str.strip()}'s whitespace set,
 * {@code str.format} with named fields, {@code repr()} in error messages, banker's {@code round}.
 */
public final class Py {
    private Py() {
    }

    /** Python's str.isspace for one UTF-16 unit (it differs from Character.isWhitespace: NBSP, U+2007, ...). */
    public static boolean isSpace(char c) {
        if (c >= '\t' && c <= '\r') {
            return true;
        }
        switch (c) {
            case ' ': case '\u001c': case '\u001d': case '\u001e': case '\u001f': case '\u0085': case '\u00a0':
            case '\u1680': case '\u2028': case '\u2029': case '\u202f': case '\u205f': case '\u3000':
                return true;
            default:
                return c >= '\u2000' && c <= '\u200a';
        }
    }

    /** Python's str.strip() with no argument. */
    public static String strip(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && isSpace(s.charAt(start))) {
            start++;
        }
        while (end > start && isSpace(s.charAt(end - 1))) {
            end--;
        }
        return s.substring(start, end);
    }

    /** Python's {@code template.format(**fields)} for plain named fields and {{ / }} escapes. */
    public static String format(String template, Map<String, String> fields) {
        StringBuilder out = new StringBuilder();
        int i = 0;
        while (i < template.length()) {
            char c = template.charAt(i);
            if (c == '{' && i + 1 < template.length() && template.charAt(i + 1) == '{') {
                out.append('{');
                i += 2;
            } else if (c == '}' && i + 1 < template.length() && template.charAt(i + 1) == '}') {
                out.append('}');
                i += 2;
            } else if (c == '{') {
                int close = template.indexOf('}', i);
                if (close < 0) {
                    throw new IllegalArgumentException("unclosed '{' in template " + repr(template));
                }
                String name = template.substring(i + 1, close);
                if (!fields.containsKey(name)) {
                    throw new IllegalArgumentException("template " + repr(template) + " uses unknown field {" + name + "}");
                }
                out.append(fields.get(name));
                i = close + 1;
            } else if (c == '}') {
                throw new IllegalArgumentException("single '}' in template " + repr(template));
            } else {
                out.append(c);
                i++;
            }
        }
        return out.toString();
    }

    public static String format(String template, String name, String value) {
        return format(template, java.util.Collections.singletonMap(name, value));
    }

    /** Python's repr() of JSON-like values (None, bool, int, float, str, list, tuple-as-list). */
    public static String repr(Object v) {
        if (v == null) {
            return "None";
        }
        if (v instanceof Boolean) {
            return ((Boolean) v) ? "True" : "False";
        }
        if (v instanceof String) {
            return reprString((String) v);
        }
        if (v instanceof Double) {
            double d = (Double) v;
            if (d == Math.rint(d) && Math.abs(d) < 1e16) {
                return (long) d + ".0";
            }
            return Double.toString(d);
        }
        if (v instanceof List) {
            StringBuilder out = new StringBuilder("[");
            List<?> items = (List<?>) v;
            for (int i = 0; i < items.size(); i++) {
                out.append(i == 0 ? "" : ", ").append(repr(items.get(i)));
            }
            return out.append(']').toString();
        }
        return String.valueOf(v);
    }

    /** repr() of a tuple of strings, e.g. ('onnx', 'gguf', 'coreml'). */
    public static String reprTuple(String... items) {
        StringBuilder out = new StringBuilder("(");
        for (int i = 0; i < items.length; i++) {
            out.append(i == 0 ? "" : ", ").append(reprString(items[i]));
        }
        return out.append(items.length == 1 ? ",)" : ")").toString();
    }

    private static String reprString(String s) {
        char quote = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        StringBuilder out = new StringBuilder().append(quote);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == quote || c == '\\') {
                out.append('\\').append(c);
            } else if (c == '\n') {
                out.append("\\n");
            } else if (c == '\r') {
                out.append("\\r");
            } else if (c == '\t') {
                out.append("\\t");
            } else if (c < 0x20 || c == 0x7f) {
                out.append(String.format("\\x%02x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append(quote).toString();
    }

    /** Python's {@code s * n} (String.repeat is missing below Android API 33). */
    public static String repeat(String s, int n) {
        StringBuilder out = new StringBuilder(s.length() * Math.max(n, 0));
        for (int i = 0; i < n; i++) {
            out.append(s);
        }
        return out.toString();
    }

    /** Python's round(x) for a float: to the nearest integer, halves to even. */
    public static long roundHalfEven(double x) {
        return (long) Math.rint(x);
    }
}
