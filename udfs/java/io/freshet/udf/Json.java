package io.freshet.udf;

import java.nio.charset.StandardCharsets;

/**
 * A strict JSON (RFC 8259) scanner over UTF-8 bytes: checks a whole document and finds
 * the values of chosen top-level fields of an object, without building a tree.
 *
 * <p>Why not Flink's JSON functions: each call re-parses its input into a Jackson tree,
 * and the regular expressions that then checked the text cost more than reading the
 * record from Kafka (docs/joiner.md). One pass here does the same work.
 *
 * <p>Nesting is scanned with an explicit stack, so no document can overflow the thread's
 * stack (an Error there would fail the job).
 */
final class Json {
    private Json() {}

    /** Offsets of chosen top-level fields: {@code start[k] < 0} when field k is absent. */
    static final class Fields {
        final byte[][] names;
        final int[] start;
        final int[] end;

        Fields(String... names) {
            this.names = new byte[names.length][];
            for (int k = 0; k < names.length; k++) {
                this.names[k] = names[k].getBytes(StandardCharsets.UTF_8);
            }
            this.start = new int[names.length];
            this.end = new int[names.length];
        }

        boolean has(int k) {
            return start[k] >= 0;
        }
    }

    /**
     * Scans {@code b[0, len)} as one JSON object and records where each of {@code f}'s
     * fields' values are (the last one wins for a repeated key, as in Python's json).
     *
     * @return false when the text is not JSON, or JSON but not an object
     */
    static boolean object(byte[] b, int len, Fields f) {
        java.util.Arrays.fill(f.start, -1);
        int i = ws(b, 0, len);
        if (i >= len || b[i] != '{') {
            return false;
        }
        i = ws(b, i + 1, len);
        if (i < len && b[i] == '}') {
            return ws(b, i + 1, len) == len;
        }
        while (true) {
            if (i >= len || b[i] != '"') {
                return false;
            }
            int ks = i;
            i = string(b, i, len);
            if (i < 0) {
                return false;
            }
            int field = match(b, ks, i, f.names);
            i = ws(b, i, len);
            if (i >= len || b[i] != ':') {
                return false;
            }
            int vs = ws(b, i + 1, len);
            i = value(b, vs, len);
            if (i < 0) {
                return false;
            }
            if (field >= 0) {
                f.start[field] = vs;
                f.end[field] = i;
            }
            i = ws(b, i, len);
            if (i >= len) {
                return false;
            }
            if (b[i] == '}') {
                return ws(b, i + 1, len) == len;
            }
            if (b[i] != ',') {
                return false;
            }
            i = ws(b, i + 1, len);
        }
    }

    /** Which of {@code names} the key string {@code b[s, e)} (quotes included) is, or -1. */
    private static int match(byte[] b, int s, int e, byte[][] names) {
        if (hasEscape(b, s, e)) { // rare: "\u0074s" is the key ts too
            String key = decode(b, s, e);
            for (int k = 0; k < names.length; k++) {
                if (key.equals(new String(names[k], StandardCharsets.UTF_8))) {
                    return k;
                }
            }
            return -1;
        }
        int n = e - s - 2;
        for (int k = 0; k < names.length; k++) {
            byte[] name = names[k];
            if (name.length == n && java.util.Arrays.equals(b, s + 1, e - 1, name, 0, n)) {
                return k;
            }
        }
        return -1;
    }

    static int ws(byte[] b, int i, int end) {
        while (i < end) {
            byte c = b[i];
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                break;
            }
            i++;
        }
        return i;
    }

    /** End (after the closing quote) of the string starting at {@code b[i] == '"'}, or -1. */
    static int string(byte[] b, int i, int end) {
        i++;
        while (i < end) {
            int c = b[i] & 0xff;
            if (c == '"') {
                return i + 1;
            }
            if (c == '\\') {
                if (i + 1 >= end) {
                    return -1;
                }
                byte e = b[i + 1];
                if (e == 'u') {
                    if (i + 6 > end) {
                        return -1;
                    }
                    for (int k = i + 2; k < i + 6; k++) {
                        if (hex(b[k]) < 0) {
                            return -1;
                        }
                    }
                    i += 6;
                } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n'
                        || e == 'r' || e == 't') {
                    i += 2;
                } else {
                    return -1;
                }
            } else if (c < 0x20) {
                return -1;
            } else {
                i++;
            }
        }
        return -1;
    }

    /** End of the number starting at {@code b[i]}, or -1. */
    static int number(byte[] b, int i, int end) {
        if (i < end && b[i] == '-') {
            i++;
        }
        if (i >= end) {
            return -1;
        }
        if (b[i] == '0') {
            i++;
        } else if (b[i] >= '1' && b[i] <= '9') {
            i = digits(b, i, end);
        } else {
            return -1;
        }
        if (i < end && b[i] == '.') {
            int s = i + 1;
            i = digits(b, s, end);
            if (i == s) {
                return -1;
            }
        }
        if (i < end && (b[i] == 'e' || b[i] == 'E')) {
            i++;
            if (i < end && (b[i] == '+' || b[i] == '-')) {
                i++;
            }
            int s = i;
            i = digits(b, s, end);
            if (i == s) {
                return -1;
            }
        }
        return i;
    }

    private static int digits(byte[] b, int i, int end) {
        while (i < end && b[i] >= '0' && b[i] <= '9') {
            i++;
        }
        return i;
    }

    /** End of the JSON value starting at {@code b[i]} (no leading whitespace), or -1. */
    static int value(byte[] b, int i, int end) {
        byte[] open = new byte[8]; // the containers we are in: '{' or '['
        int depth = 0;
        while (true) {
            // A value starts at i.
            if (i >= end) {
                return -1;
            }
            byte c = b[i];
            if (c == '{' || c == '[') {
                i = ws(b, i + 1, end);
                if (i < end && b[i] == (c == '{' ? '}' : ']')) {
                    i++; // empty: a complete value
                } else {
                    if (depth == open.length) {
                        open = java.util.Arrays.copyOf(open, depth * 2);
                    }
                    open[depth++] = c;
                    if (c == '{') {
                        i = member(b, i, end);
                        if (i < 0) {
                            return -1;
                        }
                    }
                    continue;
                }
            } else if (c == '"') {
                i = string(b, i, end);
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                i = number(b, i, end);
            } else {
                i = literal(b, i, end);
            }
            if (i < 0) {
                return -1;
            }
            // After a complete value: close containers, or go on to the next element.
            while (true) {
                if (depth == 0) {
                    return i;
                }
                i = ws(b, i, end);
                if (i >= end) {
                    return -1;
                }
                byte top = open[depth - 1];
                if (b[i] == ',') {
                    i = ws(b, i + 1, end);
                    if (top == '{') {
                        i = member(b, i, end);
                        if (i < 0) {
                            return -1;
                        }
                    }
                    break;
                }
                if (b[i] != (top == '{' ? '}' : ']')) {
                    return -1;
                }
                i++;
                depth--;
            }
        }
    }

    /** Past {@code "key" :} and whitespace: where the member's value starts, or -1. */
    private static int member(byte[] b, int i, int end) {
        if (i >= end || b[i] != '"') {
            return -1;
        }
        i = string(b, i, end);
        if (i < 0) {
            return -1;
        }
        i = ws(b, i, end);
        if (i >= end || b[i] != ':') {
            return -1;
        }
        return ws(b, i + 1, end);
    }

    private static int literal(byte[] b, int i, int end) {
        for (byte[] word : LITERALS) {
            if (i + word.length <= end && java.util.Arrays.equals(b, i, i + word.length, word, 0,
                    word.length)) {
                return i + word.length;
            }
        }
        return -1;
    }

    private static final byte[][] LITERALS = {
        "true".getBytes(StandardCharsets.US_ASCII),
        "false".getBytes(StandardCharsets.US_ASCII),
        "null".getBytes(StandardCharsets.US_ASCII),
    };

    private static int hex(byte c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    /**
     * The 64-bit integer written in {@code b[s, e)}, or null when that is not a plain
     * integer (a string, a fraction, an exponent, out of range, ...).
     */
    static Long int64(byte[] b, int s, int e) {
        boolean negative = s < e && b[s] == '-';
        int i = negative ? s + 1 : s;
        if (i >= e || e - i > 19) {
            return null;
        }
        // Accumulate negatively: Long.MIN_VALUE has no positive twin.
        long v = 0;
        for (; i < e; i++) {
            int d = b[i] - '0';
            if (d < 0 || d > 9 || v < (Long.MIN_VALUE + d) / 10) {
                return null;
            }
            v = v * 10 - d;
        }
        if (negative) {
            return v;
        }
        return v == Long.MIN_VALUE ? null : -v;
    }

    /** True when {@code b[s, e)} is a JSON string. */
    static boolean isString(byte[] b, int s, int e) {
        return e > s && b[s] == '"';
    }

    /** True when the string {@code b[s, e)} (quotes included) has an escape. */
    static boolean hasEscape(byte[] b, int s, int e) {
        for (int i = s + 1; i < e - 1; i++) {
            if (b[i] == '\\') {
                return true;
            }
        }
        return false;
    }

    /** The text of the JSON string {@code b[s, e)} (quotes included, already checked). */
    static String decode(byte[] b, int s, int e) {
        if (!hasEscape(b, s, e)) {
            return new String(b, s + 1, e - s - 2, StandardCharsets.UTF_8);
        }
        StringBuilder out = new StringBuilder(e - s);
        int run = s + 1;
        int i = s + 1;
        while (i < e - 1) {
            if (b[i] != '\\') {
                i++;
                continue;
            }
            out.append(new String(b, run, i - run, StandardCharsets.UTF_8));
            byte c = b[i + 1];
            switch (c) {
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'n': out.append('\n'); break;
                case 'r': out.append('\r'); break;
                case 't': out.append('\t'); break;
                case 'u':
                    out.append((char) ((hex(b[i + 2]) << 12) | (hex(b[i + 3]) << 8)
                            | (hex(b[i + 4]) << 4) | hex(b[i + 5])));
                    i += 4;
                    break;
                default: out.append((char) c); // " \ /
            }
            i += 2;
            run = i;
        }
        out.append(new String(b, run, e - 1 - run, StandardCharsets.UTF_8));
        return out.toString();
    }

    /**
     * {@code b[s, e)} as compact JSON when it is an object whose every value is a list of
     * 64-bit integers ({@code {"genre":[4,12],"e":[]}}); null otherwise. Keys are copied
     * as they are written (escapes kept), whitespace is dropped.
     */
    static byte[] idLists(byte[] b, int s, int e) {
        byte[] out = new byte[e - s];
        int n = 0;
        int i = s;
        if (i >= e || b[i] != '{') {
            return null;
        }
        out[n++] = '{';
        i = ws(b, i + 1, e);
        if (i < e && b[i] == '}') {
            out[n++] = '}';
            return ws(b, i + 1, e) == e ? java.util.Arrays.copyOf(out, n) : null;
        }
        while (true) {
            if (i >= e || b[i] != '"') {
                return null;
            }
            int ke = string(b, i, e);
            if (ke < 0) {
                return null;
            }
            System.arraycopy(b, i, out, n, ke - i);
            n += ke - i;
            i = ws(b, ke, e);
            if (i >= e || b[i] != ':') {
                return null;
            }
            out[n++] = ':';
            i = ws(b, i + 1, e);
            if (i >= e || b[i] != '[') {
                return null;
            }
            out[n++] = '[';
            i = ws(b, i + 1, e);
            if (i < e && b[i] == ']') {
                i++;
            } else {
                while (true) {
                    int ne = i < e ? number(b, i, e) : -1;
                    if (ne < 0 || int64(b, i, ne) == null) {
                        return null;
                    }
                    System.arraycopy(b, i, out, n, ne - i);
                    n += ne - i;
                    i = ws(b, ne, e);
                    if (i < e && b[i] == ']') {
                        i++;
                        break;
                    }
                    if (i >= e || b[i] != ',') {
                        return null;
                    }
                    out[n++] = ',';
                    i = ws(b, i + 1, e);
                }
            }
            out[n++] = ']';
            i = ws(b, i, e);
            if (i < e && b[i] == '}') {
                out[n++] = '}';
                return ws(b, i + 1, e) == e ? java.util.Arrays.copyOf(out, n) : null;
            }
            if (i >= e || b[i] != ',') {
                return null;
            }
            out[n++] = ',';
            i = ws(b, i + 1, e);
        }
    }
}
