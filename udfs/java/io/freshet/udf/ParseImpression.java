package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.TableFunction;

/**
 * {@code parse_impression(payload)}: one row per record of the features topic.
 *
 * <p>{@code reason} is null for a valid impression (docs/events.md), else the first
 * problem found and every other column is null. {@code slots} is the slots object as
 * compact JSON text; {@code served_score}, {@code model_seq} and
 * {@code table_version} (what serving scored it with) are null when the record has
 * none. Never throws on bad input: it is data, dead-lettered by SQL.
 */
@FunctionHint(output = @DataTypeHint(
        value = "ROW<reason STRING, request_id STRING, item_id BIGINT, user_id BIGINT, "
                + "ts BIGINT, slots STRING, served_score DOUBLE, model_seq BIGINT, "
                + "table_version BIGINT>",
        bridgedTo = RowData.class))
public final class ParseImpression extends TableFunction<RowData> {
    private static final long serialVersionUID = 1L;
    private static final int SLOTS = Record.COMMON.length;
    private static final int SCORE = SLOTS + 1;
    private static final int MODEL = SLOTS + 2;
    private static final int TABLE = SLOTS + 3;
    private transient Json.Fields fields;

    public void eval(@DataTypeHint(value = "STRING", bridgedTo = StringData.class)
            StringData payload) {
        if (fields == null) {
            fields = Record.fields("slots", "served_score", "model_seq", "table_version");
        }
        Record r = Record.check(payload, fields);
        byte[] slots = null;
        if (r.reason == null) {
            slots = fields.has(SLOTS)
                    ? Json.idLists(r.bytes, fields.start[SLOTS], fields.end[SLOTS]) : null;
            if (slots == null) {
                r.reason = "slots: missing, or not an object of integer ID lists";
            }
        }
        Double score = r.optionalProbability(SCORE, "served_score");
        Long model = r.optionalCount(MODEL, "model_seq");
        Long table = r.optionalCount(TABLE, "table_version");
        collect(r.row(slots == null ? null : StringData.fromBytes(slots), score, model, table));
    }
}
