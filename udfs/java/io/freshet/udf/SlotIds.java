package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code slot_ids(slots, name)}: the IDs of slot {@code name} of a parsed impression's
 * {@code slots} (the compact JSON object parse.sql validated), or an empty array when
 * it has no such slot; null for a null {@code slots}.
 */
public final class SlotIds extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private transient Json.Fields fields;
    private transient String fieldName;

    public @DataTypeHint("ARRAY<BIGINT>") Long[] eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData slots,
            String name) {
        if (slots == null || name == null) {
            return null;
        }
        if (fields == null || !name.equals(fieldName)) {
            fields = new Json.Fields(name);
            fieldName = name;
        }
        byte[] b = slots.toBytes();
        if (!Json.object(b, b.length, fields) || !fields.has(0)) {
            return new Long[0];
        }
        // A validated list of integers: '[' int (',' int)* ']', without whitespace.
        int s = fields.start[0] + 1;
        int e = fields.end[0] - 1;
        java.util.List<Long> ids = new java.util.ArrayList<>();
        int i = s;
        while (i < e) {
            int j = i;
            while (j < e && b[j] != ',') {
                j++;
            }
            ids.add(Json.int64(b, i, j));
            i = j + 1;
        }
        return ids.toArray(new Long[0]);
    }
}
