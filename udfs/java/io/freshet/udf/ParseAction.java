package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.TableFunction;

/**
 * {@code parse_action(payload, action_types)}: one row per record of the actions topic.
 *
 * <p>{@code action_types} lists the accepted actions separated by {@code |}
 * ({@code 'click|like|finish'}, from freshet.topics.ACTION_TYPES). {@code reason} is null
 * for a valid action, else the first problem found and every other column is null.
 */
@FunctionHint(output = @DataTypeHint(
        value = "ROW<reason STRING, request_id STRING, item_id BIGINT, user_id BIGINT, "
                + "ts BIGINT, action STRING>",
        bridgedTo = RowData.class))
public final class ParseAction extends TableFunction<RowData> {
    private static final long serialVersionUID = 1L;
    private static final int ACTION = Record.COMMON.length;
    private transient Json.Fields fields;
    private transient String typesText;
    private transient String[] types;
    private transient StringData[] typeData;

    public void eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData payload,
            String actionTypes) {
        if (fields == null) {
            fields = Record.fields("action");
        }
        if (!actionTypes.equals(typesText)) { // a literal: split once
            typesText = actionTypes;
            types = actionTypes.split("\\|");
            typeData = new StringData[types.length];
            for (int k = 0; k < types.length; k++) {
                typeData[k] = StringData.fromString(types[k]);
            }
        }
        Record r = Record.check(payload, fields);
        StringData action = null;
        if (r.reason == null) {
            int s = fields.start[ACTION];
            int e = fields.end[ACTION];
            if (fields.has(ACTION) && Json.isString(r.bytes, s, e)) {
                String text = Json.decode(r.bytes, s, e);
                for (int k = 0; k < types.length; k++) {
                    if (types[k].equals(text)) {
                        action = typeData[k];
                    }
                }
            }
            if (action == null) {
                r.reason = "action: missing or not one of " + String.join("/", types);
            }
        }
        collect(r.row(action));
    }
}
