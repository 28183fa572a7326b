package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code recent_items(ts, item, flag, n, ttl_ms)}: one user's last {@code n} items of
 * the rows with {@code flag} = 1, most recent first, an item seen again moving to the
 * front (ps.signals' {@code hist_pos} and {@code hist_shown}); for the same OVER window
 * as {@link Decayed}, with the same point-in-time rule.
 *
 * <p>Returns two strings of comma-separated item IDs: [1] the history as of the start
 * of the current row's second (events of earlier seconds only), [2] after the current
 * row. A user without any row for more than {@code ttl_ms} of event time starts empty.
 */
public final class RecentItems extends AggregateFunction<String[], RecentItems.Acc> {
    private static final long serialVersionUID = 1L;

    /** The accumulator: items most recent first. */
    public static final class Acc {
        public long[] committed = new long[0];
        public long[] latest = new long[0];
        public long lastTs = Long.MIN_VALUE;
        public long second = Long.MIN_VALUE;
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, Long ts, Long item, Integer flag, Integer n, Long ttlMs) {
        if (ts == null) {
            return;
        }
        long sec = Math.floorDiv(ts, 1000L);
        if (sec != acc.second) {
            acc.second = sec;
            if (acc.lastTs != Long.MIN_VALUE && acc.lastTs < ts - ttlMs) {
                acc.latest = new long[0];
            }
            acc.committed = acc.latest;
        }
        acc.lastTs = Math.max(acc.lastTs, ts);
        if (flag != null && flag != 0 && item != null) {
            acc.latest = push(acc.latest, item, n);
        }
    }

    /** {@code item} in front, without an older copy of it, at most {@code n} items. */
    static long[] push(long[] items, long item, int n) {
        long[] out = new long[Math.min(n, items.length + 1)];
        out[0] = item;
        int k = 1;
        for (int i = 0; i < items.length && k < out.length; i++) {
            if (items[i] != item) {
                out[k++] = items[i];
            }
        }
        return k == out.length ? out : java.util.Arrays.copyOf(out, k);
    }

    static String csv(long[] items) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < items.length; i++) {
            if (i > 0) {
                b.append(',');
            }
            b.append(items[i]);
        }
        return b.toString();
    }

    public @DataTypeHint("ARRAY<STRING>") String[] getValue(Acc acc) {
        return new String[] {csv(acc.committed), csv(acc.latest)};
    }
}
