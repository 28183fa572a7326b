import io.freshet.udf.ParseAction;
import io.freshet.udf.ParseImpression;
import io.freshet.udf.RecordTs;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.util.Collector;

/**
 * Test driver for the parse functions, without Flink: reads lines "kind TAB base64(payload)"
 * (kind I = parse_impression, A = parse_action, T = record_ts), prints one line per
 * input: the row's fields TAB-separated, strings base64, SQL NULL as "-".
 */
public final class ParseDriver {
    private static final Base64.Encoder B64 = Base64.getEncoder();

    public static void main(String[] args) throws Exception {
        StringBuilder out = new StringBuilder();
        RowData[] last = new RowData[1];
        Collector<RowData> sink = new Collector<>() {
            @Override public void collect(RowData row) {
                last[0] = row;
            }
            @Override public void close() {}
        };
        ParseImpression impression = new ParseImpression();
        ParseAction action = new ParseAction();
        RecordTs ts = new RecordTs();
        impression.setCollector(sink);
        action.setCollector(sink);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.split("\t", -1);
            StringData payload = StringData.fromBytes(Base64.getDecoder().decode(parts[1]));
            if (parts[0].equals("T")) {
                Long v = ts.eval(payload);
                out.append(v == null ? "-" : v.toString()).append('\n');
                continue;
            }
            last[0] = null;
            if (parts[0].equals("I")) {
                impression.eval(payload);
            } else {
                action.eval(payload, "click|like|finish");
            }
            RowData r = last[0];
            for (int k = 0; k < r.getArity(); k++) {
                if (k > 0) {
                    out.append('\t');
                }
                if (r.isNullAt(k)) {
                    out.append('-');
                } else if ((k >= 2 && k <= 4) || k >= 7) {
                    out.append(r.getLong(k));
                } else if (k == 6) {
                    out.append(r.getDouble(k));
                } else {
                    out.append(B64.encodeToString(r.getString(k).toBytes()));
                }
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}
