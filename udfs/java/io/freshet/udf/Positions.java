package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.types.Row;
import org.apache.flink.table.functions.TableFunction;

/**
 * {@code positions(ids)}: one row {@code (id, pos)} per element of {@code ids}, pos
 * counting from 1, in order (a repeated ID gives a row per occurrence); a single row
 * {@code (NULL, NULL)} when {@code ids} is null or empty, so that a lateral join with
 * it keeps every row of its input.
 */
@FunctionHint(output = @DataTypeHint("ROW<id BIGINT, pos BIGINT>"))
public final class Positions extends TableFunction<Row> {
    private static final long serialVersionUID = 1L;

    public void eval(@DataTypeHint("ARRAY<BIGINT>") Long[] ids) {
        if (ids == null || ids.length == 0) {
            collect(Row.of(null, null));
            return;
        }
        for (int k = 0; k < ids.length; k++) {
            collect(Row.of(ids[k], (long) k + 1));
        }
    }
}
