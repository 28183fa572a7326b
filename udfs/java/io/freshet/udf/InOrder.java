package io.freshet.udf;

import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code in_order(pos, id)}: the IDs of a group as comma-separated text, in the order of
 * {@code pos}, one per position (a redelivered copy of a row adds nothing). The
 * statistics job gathers an impression's per-category bucket IDs with it, in the order
 * of the impression's categories.
 */
public final class InOrder extends AggregateFunction<String, InOrder.Acc> {
    private static final long serialVersionUID = 1L;

    /** The accumulator: position -> ID. */
    public static final class Acc {
        public @DataTypeHint("MAP<BIGINT, BIGINT>") Map<Long, Long> ids = new TreeMap<>();
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, Long pos, Long id) {
        if (pos != null && id != null) {
            acc.ids.put(pos, id);
        }
    }

    public void merge(Acc acc, Iterable<Acc> others) {
        for (Acc o : others) {
            acc.ids.putAll(o.ids);
        }
    }

    public String getValue(Acc acc) {
        StringBuilder b = new StringBuilder();
        for (Long id : new TreeMap<>(acc.ids).values()) {
            if (b.length() > 0) {
                b.append(',');
            }
            b.append(id);
        }
        return b.toString();
    }
}
