package io.freshet.udf;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;

/**
 * What the parse functions share: the checks of one record's common fields, in the
 * order a diagnosis reports them (docs/joiner.md, "Bad input"), and the reasons' text.
 */
final class Record {
    static final String NOT_AN_OBJECT = "not a JSON object";
    static final String BAD_VERSION = "v: unsupported schema version";

    // Common fields: their indexes in every parse function's Json.Fields.
    static final int V = 0;
    static final int REQUEST_ID = 1;
    static final int ITEM_ID = 2;
    static final int USER_ID = 3;
    static final int TS = 4;
    static final String[] COMMON = {"v", "request_id", "item_id", "user_id", "ts"};

    final byte[] bytes;
    final Json.Fields fields;
    String reason;
    StringData requestId;
    Long itemId;
    Long userId;
    Long ts;

    private Record(byte[] bytes, Json.Fields fields) {
        this.bytes = bytes;
        this.fields = fields;
    }

    /** The common fields then {@code more} (from index {@code COMMON.length}), for a scan. */
    static Json.Fields fields(String... more) {
        String[] names = Arrays.copyOf(COMMON, COMMON.length + more.length);
        System.arraycopy(more, 0, names, COMMON.length, more.length);
        return new Json.Fields(names);
    }

    /**
     * A parse function's output row: {@code (reason, request_id, item_id, user_id, ts,
     * more...)}, with only the reason set when the record is invalid.
     */
    RowData row(Object... more) {
        GenericRowData row = new GenericRowData(COMMON.length + more.length);
        if (reason != null) {
            row.setField(0, StringData.fromString(reason));
            return row;
        }
        row.setField(1, requestId);
        row.setField(2, itemId);
        row.setField(3, userId);
        row.setField(4, ts);
        for (int k = 0; k < more.length; k++) {
            row.setField(COMMON.length + k, more[k]);
        }
        return row;
    }

    /**
     * Optional field {@code k} as a 64-bit integer: null when absent or JSON null; else
     * the value, or the reason set when it is not a non-negative 64-bit integer.
     */
    Long optionalCount(int k, String name) {
        if (reason != null || !fields.has(k) || isNull(k)) {
            return null;
        }
        Long v = Json.int64(bytes, fields.start[k], fields.end[k]);
        if (v == null || v < 0) {
            reason = name + ": not a non-negative 64-bit integer";
        }
        return v;
    }

    /**
     * Optional field {@code k} as a probability: null when absent or JSON null; else the
     * value, or the reason set when it is not a number in [0, 1].
     */
    Double optionalProbability(int k, String name) {
        if (reason != null || !fields.has(k) || isNull(k)) {
            return null;
        }
        int s = fields.start[k];
        int e = fields.end[k];
        Double v = null;
        if (b(s) == '-' || (b(s) >= '0' && b(s) <= '9')) { // a number (already scanned)
            v = Double.parseDouble(new String(bytes, s, e - s, StandardCharsets.US_ASCII));
        }
        if (v == null || !(v >= 0.0 && v <= 1.0)) {
            reason = name + ": not a number in [0, 1]";
            return null;
        }
        return v;
    }

    private boolean isNull(int k) {
        return fields.end[k] - fields.start[k] == 4 && b(fields.start[k]) == 'n';
    }

    private byte b(int i) {
        return bytes[i];
    }

    /** Scans {@code payload} and checks the common fields; {@code reason} is null if valid. */
    static Record check(StringData payload, Json.Fields fields) {
        byte[] b = payload == null ? new byte[0] : payload.toBytes();
        Record r = new Record(b, fields);
        if (!Json.object(b, b.length, fields)) {
            r.reason = NOT_AN_OBJECT;
            return r;
        }
        if (fields.has(V) && !(fields.end[V] - fields.start[V] == 1 && b[fields.start[V]] == '1')) {
            r.reason = BAD_VERSION;
            return r;
        }
        int s = fields.start[REQUEST_ID];
        int e = fields.end[REQUEST_ID];
        if (!fields.has(REQUEST_ID) || !Json.isString(b, s, e)) {
            r.reason = "request_id: missing or not a string";
            return r;
        }
        r.requestId = Json.hasEscape(b, s, e)
                ? StringData.fromString(Json.decode(b, s, e))
                : StringData.fromBytes(Arrays.copyOfRange(b, s + 1, e - 1));
        r.itemId = integer(r, ITEM_ID, "item_id");
        r.userId = r.reason == null ? integer(r, USER_ID, "user_id") : null;
        r.ts = r.reason == null ? integer(r, TS, "ts") : null;
        return r;
    }

    private static Long integer(Record r, int k, String name) {
        Json.Fields f = r.fields;
        Long v = f.has(k) ? Json.int64(r.bytes, f.start[k], f.end[k]) : null;
        if (v == null) {
            r.reason = name + ": missing or not a 64-bit integer";
        }
        return v;
    }
}
