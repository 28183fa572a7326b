package io.freshet.udf;

import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The joiner's batching: one examples-topic message per shard and batch interval,
 * stamped with the event time up to which the joiner has decided.
 *
 * <p>Input: the joiner's output rows {@code (kind, message, shard)}; rows of kind
 * {@code example} are collected per {@code shard} (keyed state) and flushed every
 * {@code intervalMs} of processing time as {@code {"v":1,"examples":[...]}}, and at the
 * end of a bounded input (its final watermark). Output: {@code (message, decided)}.
 *
 * <p>{@code decided} is one millisecond below this operator's event-time watermark at its
 * previous flush (the minimum over every upstream join subtask of its output
 * watermark, which the interval join holds back by its window; see
 * {@link #decidedBelow}). Every impression up to it has had its example
 * emitted, and records and watermarks travel in order on each channel, so every such
 * example routed here reached an earlier message. With one writer per partition
 * (the examples sink's fixed partitioner) the stamps of a partition never decrease,
 * and the trainer's watermark (the minimum over partitions) releases an example only
 * once nothing at or before its time can still arrive (udfs/hold.py).
 */
public final class ExampleBatcher extends KeyedProcessFunction<Integer, Row, Row> {
    private static final long serialVersionUID = 1L;
    private static final String PREFIX = "{\"v\":1,\"examples\":[";
    // The end of a bounded input: its final watermark, less any delay an upstream
    // operator holds back (the interval join emits the final watermark minus its window).
    static final long END_OF_TIME = Long.MAX_VALUE / 2;

    private final long intervalMs;
    private transient ListState<String> pending;
    // Every key flushes at the same times, a pass: the first pass after a row arrived
    // (the last pass's time plus the interval, which may already be due). A message's
    // stamp is what was decided at the previous pass (decidedBelow of its watermark):
    // every row up to it had arrived by then, so that pass or an earlier one flushed
    // it, whereas this pass's messages go out one key after another. Transient: after a restore, stamps start again at 0.
    private transient long lastPass;
    private transient long passDecided;
    private transient long stamp;
    private transient Map<Integer, Long> flushAt;  // timers set, to set each once
    private transient Set<Integer> endArmed;

    public ExampleBatcher(long intervalMs) {
        this.intervalMs = Math.max(intervalMs, 1);
    }

    /** The output rows' type: {@code (message STRING, decided TIMESTAMP_LTZ)}. */
    public static TypeInformation<Row> outputType() {
        return Types.ROW_NAMED(new String[] {"message", "decided"}, Types.STRING, Types.INSTANT);
    }

    /**
     * Batches {@code joined}'s example rows (fields: kind, message, shard); called
     * from Python (jobs/join.py) on the Java DataStream behind the joiner's output view.
     */
    public static DataStream<Row> attach(DataStream<Row> joined, long intervalMs) {
        return joined
                .filter(r -> "example".equals(r.getField(0)))
                .name("examples only")
                .keyBy(r -> (Integer) r.getField(2), Types.INT)
                .process(new ExampleBatcher(intervalMs))
                .returns(outputType())
                .name("batch examples")
                .uid("batch-examples");
    }

    @Override
    public void open(OpenContext context) {
        pending = getRuntimeContext().getListState(
                new ListStateDescriptor<>("pending", Types.STRING));
        flushAt = new HashMap<>();
        endArmed = new HashSet<>();
        lastPass = -1L;
        passDecided = 0L;
        stamp = 0L;
    }

    @Override
    public void processElement(Row row, Context ctx, Collector<Row> out) throws Exception {
        pending.add((String) row.getField(1));
        Integer key = ctx.getCurrentKey();
        if (lastPass < 0) {
            lastPass = ctx.timerService().currentProcessingTime();
        }
        long next = lastPass + intervalMs;
        Long at = flushAt.get(key);
        if (at == null || at != next) {
            ctx.timerService().registerProcessingTimeTimer(next);
            flushAt.put(key, next);
        }
        if (endArmed.add(key)) {
            ctx.timerService().registerEventTimeTimer(END_OF_TIME);
        }
    }

    /**
     * The event time up to which every row has reached this operator, given its
     * watermark {@code w}: {@code w - 1}. The interval join emits an unmatched row at
     * {@code t} once its input watermark exceeds {@code t + window} (its expiry is
     * {@code watermark - window - 1}) but forwards {@code watermark - window}, so at
     * an output watermark {@code w} a row at exactly {@code w} may still follow.
     */
    static long decidedBelow(long w) {
        return w == Long.MIN_VALUE ? Long.MIN_VALUE : w - 1;
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
        long watermark = ctx.timerService().currentWatermark();
        if (watermark >= END_OF_TIME) {
            stamp = passDecided;  // the final flush: every row up to the last pass is out
        } else if (timestamp != lastPass) {  // the first key of a new pass
            stamp = passDecided;
            passDecided = Math.max(passDecided, decidedBelow(watermark));
            lastPass = timestamp;
        }
        Iterable<String> rows = pending.get();
        if (rows == null) {
            return;
        }
        StringBuilder b = new StringBuilder(PREFIX);
        boolean first = true;
        for (String r : rows) {
            if (!first) {
                b.append(',');
            }
            b.append(r);
            first = false;
        }
        if (first) {
            return;
        }
        b.append("]}");
        out.collect(Row.of(b.toString(), Instant.ofEpochMilli(stamp)));
        pending.clear();
    }
}
