package io.freshet.udf;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code signal_bucket(stat, s, p, g, prior)}: the bucket ID of statistic {@code stat}
 * ({@code n}, {@code rate}, {@code like}, {@code vmean}, {@code vstd}) of the decayed
 * sums {@code s}, the prior's sums {@code p} (the user's, for a (user, category)
 * signal; null: the global prior) and the global sums {@code g}: a line-by-line twin
 * of ps/signals.py's {@code _bucket} and its bucket functions (the first six of each
 * array, see {@link Decayed}). tests/jobs/test_stats.py compares the two on many values.
 */
public final class SignalBucket extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    static final int COUNT_BUCKETS = 16;
    static final int RATE_BUCKETS = 20;
    static final double STD_STEP = 0.05;
    static final int STD_BUCKETS = 10;
    private static final int N = 0, POS = 1, LIKE = 2, VN = 3, VSUM = 4, VSQ = 5;

    public Integer eval(String stat, @DataTypeHint("ARRAY<DOUBLE>") Double[] s,
            @DataTypeHint("ARRAY<DOUBLE>") Double[] p, @DataTypeHint("ARRAY<DOUBLE>") Double[] g,
            Double prior) {
        if (stat == null || s == null || g == null || prior == null) {
            return null;
        }
        return bucket(stat, s, p, g, prior);
    }

    /** {@code floor(log2(1 + c))}, exactly, as the binary exponent. */
    static int countBucket(double c) {
        return 1 + Math.min(Math.getExponent(1.0 + Math.max(c, 0.0)), COUNT_BUCKETS - 1);
    }

    static int rateBucket(double r) {
        return 1 + Math.min(Math.max((int) (r * RATE_BUCKETS), 0), RATE_BUCKETS - 1);
    }

    static int stdBucket(double s) {
        return 1 + Math.min((int) (Math.max(s, 0.0) / STD_STEP), STD_BUCKETS - 1);
    }

    static int bucket(String stat, Double[] s, Double[] p, Double[] g, double prior) {
        switch (stat) {
            case "n":
                return countBucket(s[N]);
            case "rate":
            case "like": {
                int col = stat.equals("rate") ? POS : LIKE;
                double gr = (g[col] + 1.0) / (g[N] + 2.0);
                double pr = p != null ? (p[col] + prior * gr) / (p[N] + prior) : gr;
                return rateBucket((s[col] + prior * pr) / (s[N] + prior));
            }
            case "vmean":
            case "vstd": {
                double gm = (g[VSUM] + 0.5) / (g[VN] + 1.0);
                double mean = (s[VSUM] + prior * gm) / (s[VN] + prior);
                if (stat.equals("vmean")) {
                    return rateBucket(mean);
                }
                double gv = Math.max((g[VSQ] + 0.25) / (g[VN] + 1.0) - gm * gm, 0.0);
                double var = (s[VSQ] + prior * (gv + gm * gm)) / (s[VN] + prior) - mean * mean;
                return stdBucket(Math.sqrt(Math.max(var, 0.0)));
            }
            default:
                throw new IllegalArgumentException("unknown statistic " + stat);
        }
    }
}
