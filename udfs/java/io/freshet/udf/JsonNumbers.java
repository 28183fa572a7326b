package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code json_numbers(values, from, to)}: elements {@code [from, to)} (0-based) of a
 * double array as a JSON array, each the shortest text that reads back as the same
 * double ({@code Double.toString}); a non-finite value is written as null.
 */
public final class JsonNumbers extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    public String eval(@DataTypeHint("ARRAY<DOUBLE>") Double[] values, Integer from, Integer to) {
        if (values == null || from == null || to == null) {
            return null;
        }
        StringBuilder b = new StringBuilder("[");
        for (int k = from; k < Math.min(to, values.length); k++) {
            if (k > from) {
                b.append(',');
            }
            Double v = values[k];
            b.append(v == null || v.isNaN() || v.isInfinite() ? "null" : Double.toString(v));
        }
        return b.append(']').toString();
    }
}
