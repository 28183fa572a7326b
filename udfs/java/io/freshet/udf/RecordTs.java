package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code record_ts(payload)}: the top-level {@code ts} of a JSON object record as a
 * 64-bit integer, or null (not JSON, not an object, no integer {@code ts}). For the
 * source tables' event time, before the record is parsed in full.
 */
public final class RecordTs extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private transient Json.Fields fields;

    public @DataTypeHint("BIGINT") Long eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload) {
        if (payload == null) {
            return null;
        }
        if (fields == null) {
            fields = new Json.Fields("ts");
        }
        byte[] b = payload.toBytes();
        if (!Json.object(b, b.length, fields) || !fields.has(0)) {
            return null;
        }
        return Json.int64(b, fields.start[0], fields.end[0]);
    }
}
