package io.freshet.udf;

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

    /** The common fields then {@code last} (at index {@code COMMON.length}), for a scan. */
    static Json.Fields fields(String last) {
        String[] names = Arrays.copyOf(COMMON, COMMON.length + 1);
        names[COMMON.length] = last;
        return new Json.Fields(names);
    }

    /**
     * A parse function's output row: {@code (reason, request_id, item_id, user_id, ts,
     * last)}, with only the reason set when the record is invalid.
     */
    RowData row(Object last) {
        if (reason != null) {
            return GenericRowData.of(StringData.fromString(reason), null, null, null, null, null);
        }
        return GenericRowData.of(null, requestId, itemId, userId, ts, last);
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
