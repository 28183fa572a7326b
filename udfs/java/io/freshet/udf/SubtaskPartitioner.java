package io.freshet.udf;

import java.util.Arrays;
import org.apache.flink.connector.kafka.sink.KafkaPartitioner;

/**
 * Each sink subtask writes to one partition: the {@code i}-th of the topic's partitions
 * in id order for subtask {@code i} (modulo their number).
 *
 * <p>The examples sink needs one writer per partition, so that a partition's message
 * timestamps never decrease (ExampleBatcher). Flink's own {@code fixed} partitioner
 * indexes the partitions in the order the broker lists them, which need not be stable.
 */
public final class SubtaskPartitioner<T> implements KafkaPartitioner<T> {
    private static final long serialVersionUID = 1L;
    private int subtask;

    @Override
    public void open(int parallelInstanceId, int parallelInstances) {
        this.subtask = parallelInstanceId;
    }

    @Override
    public int partition(T record, byte[] key, byte[] value, String topic, int[] partitions) {
        int[] sorted = partitions.clone();
        Arrays.sort(sorted);
        return sorted[subtask % sorted.length];
    }
}
