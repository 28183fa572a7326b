package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * {@code decayed(ts, half_life_ms, ttl_ms, shown, positive, liked, value)}: one key's
 * exponentially decayed sums, point in time, as ps/signals.py defines them; for an OVER
 * window {@code PARTITION BY key ORDER BY rowtime ROWS BETWEEN UNBOUNDED PRECEDING AND
 * CURRENT ROW}.
 *
 * <p>Returns 12 doubles. [0, 6): the sums of every event of whole seconds strictly
 * before the current row's second, decayed to the start of that second (what an
 * impression of that second may see). [6, 12): the sums after the current row (every
 * event up to and including it), decayed to its {@code ts} (the changelog's state).
 * Each six: decayed impressions, positives, likes, values seen, their sum, their sum
 * of squares ({@code ps.signals} N, POS, LIKE, VN, VSUM, VSQ).
 *
 * <p>State: the sums through the previous second ({@code committed}) and the sums
 * through the current row ({@code latest}); a row of a later second first makes
 * {@code latest} the committed state. Folding the rows in rowtime order into
 * {@code latest} is exactly ps.signals' fold, so no row list is kept. A key whose last
 * update is more than {@code ttl_ms} of event time before a row starts again from
 * zero (the reference drops such keys when it checks, every ttl / 8).
 */
public final class Decayed extends AggregateFunction<Double[], Decayed.Acc> {
    private static final long serialVersionUID = 1L;
    static final int FIELDS = 6;

    /** The accumulator (Flink keeps it in state, one per key). */
    public static final class Acc {
        public double[] committed = new double[FIELDS];
        public long committedTs;
        public double[] latest = new double[FIELDS];
        public long latestTs;
        public long second = Long.MIN_VALUE; // the current row's second (ts / 1000)
        public double halfLifeMs = 1.0;
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, Long ts, Double halfLifeMs, Long ttlMs, Integer shown,
            Integer positive, Integer liked, Double value) {
        if (ts == null) {
            return;
        }
        acc.halfLifeMs = halfLifeMs;
        long sec = Math.floorDiv(ts, 1000L);
        if (sec != acc.second) {
            acc.second = sec;
            if (acc.latestTs < ts - ttlMs) { // idle for longer than the TTL: dropped
                acc.latest = new double[FIELDS];
                acc.latestTs = 0L;
            }
            acc.committed = acc.latest.clone();
            acc.committedTs = acc.latestTs;
        }
        double[] s = at(acc.latest, acc.latestTs, ts, halfLifeMs);
        acc.latest = s;
        acc.latestTs = Math.max(acc.latestTs, ts);
        s[0] += shown == null ? 0 : shown;
        s[1] += positive == null ? 0 : positive;
        s[2] += liked == null ? 0 : liked;
        if (value != null) {
            s[3] += 1.0;
            s[4] += value;
            s[5] += value * value;
        }
    }

    /** {@code sums} of time {@code from} decayed to {@code to} (ps.signals _Counter.at). */
    static double[] at(double[] sums, long from, long to, double halfLifeMs) {
        double f = to > from ? Math.pow(2.0, -(to - from) / halfLifeMs) : 1.0;
        double[] out = new double[FIELDS];
        for (int k = 0; k < FIELDS; k++) {
            out[k] = sums[k] * f;
        }
        return out;
    }

    public @DataTypeHint("ARRAY<DOUBLE>") Double[] getValue(Acc acc) {
        double[] pit = at(acc.committed, acc.committedTs, acc.second * 1000L, acc.halfLifeMs);
        Double[] out = new Double[2 * FIELDS];
        for (int k = 0; k < FIELDS; k++) {
            out[k] = pit[k];
            out[FIELDS + k] = acc.latest[k];
        }
        return out;
    }
}
