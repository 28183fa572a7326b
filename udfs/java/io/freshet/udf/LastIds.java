package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code last_ids(ids)}: the last non-null ID list of the window (rows in rowtime
 * order). The statistics job reads an item's categories off its latest impression with
 * it, for the actions on that item, which carry none.
 */
public final class LastIds extends AggregateFunction<Long[], LastIds.Acc> {
    private static final long serialVersionUID = 1L;

    /** The accumulator: the last list seen. */
    public static final class Acc {
        public @DataTypeHint("ARRAY<BIGINT>") Long[] ids;
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, @DataTypeHint("ARRAY<BIGINT>") Long[] ids) {
        if (ids != null) {
            acc.ids = ids;
        }
    }

    public @DataTypeHint("ARRAY<BIGINT>") Long[] getValue(Acc acc) {
        return acc.ids;
    }
}
