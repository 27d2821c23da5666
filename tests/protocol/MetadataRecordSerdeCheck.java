// Kafka 3.9's own serde judges kafkalike's metadata and control records (java single-file launcher,
// run by tests/protocol/test_metadata_records.py with -cp 'reference/lib/*').
// stdin: lines "NAME HEX" (a MetadataRecordSerde value) or "NAME control:TYPE HEX" (a control value
// at version 0, TYPE 2 LeaderChange, 3 SnapshotHeader, 4 SnapshotFooter).
// stdout: "NAME HEX JSON": Kafka's re-serialization of what it read, and its JSON of the message.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.util.HexFormat;

import org.apache.kafka.common.message.LeaderChangeMessage;
import org.apache.kafka.common.message.LeaderChangeMessageJsonConverter;
import org.apache.kafka.common.message.SnapshotFooterRecord;
import org.apache.kafka.common.message.SnapshotFooterRecordJsonConverter;
import org.apache.kafka.common.message.SnapshotHeaderRecord;
import org.apache.kafka.common.message.SnapshotHeaderRecordJsonConverter;
import org.apache.kafka.common.metadata.MetadataJsonConverters;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.MessageUtil;
import org.apache.kafka.common.protocol.ObjectSerializationCache;
import org.apache.kafka.metadata.MetadataRecordSerde;
import org.apache.kafka.server.common.ApiMessageAndVersion;

public class MetadataRecordSerdeCheck {
    public static void main(String[] args) throws Exception {
        HexFormat hex = HexFormat.of();
        MetadataRecordSerde serde = MetadataRecordSerde.INSTANCE;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.trim().split(" ");
            if (parts.length < 2) continue;
            String name = parts[0];
            if (parts[1].startsWith("control:")) {
                int type = Integer.parseInt(parts[1].substring(8));
                ByteBuffer buf = ByteBuffer.wrap(hex.parseHex(parts[2]));
                String json;
                ByteBuffer again;
                if (type == 2) {
                    LeaderChangeMessage m = new LeaderChangeMessage(new ByteBufferAccessor(buf), (short) 0);
                    again = MessageUtil.toByteBuffer(m, (short) 0);
                    json = LeaderChangeMessageJsonConverter.write(m, (short) 0).toString();
                } else if (type == 3) {
                    SnapshotHeaderRecord m = new SnapshotHeaderRecord(new ByteBufferAccessor(buf), (short) 0);
                    again = MessageUtil.toByteBuffer(m, (short) 0);
                    json = SnapshotHeaderRecordJsonConverter.write(m, (short) 0).toString();
                } else {
                    SnapshotFooterRecord m = new SnapshotFooterRecord(new ByteBufferAccessor(buf), (short) 0);
                    again = MessageUtil.toByteBuffer(m, (short) 0);
                    json = SnapshotFooterRecordJsonConverter.write(m, (short) 0).toString();
                }
                System.out.println(name + " " + hex.formatHex(toArray(again)) + " " + json);
                continue;
            }
            byte[] value = hex.parseHex(parts[1]);
            ApiMessageAndVersion record = serde.read(new ByteBufferAccessor(ByteBuffer.wrap(value)), value.length);
            ObjectSerializationCache cache = new ObjectSerializationCache();
            int size = serde.recordSize(record, cache);
            ByteBuffer out = ByteBuffer.allocate(size);
            serde.write(record, cache, new ByteBufferAccessor(out));
            out.flip();
            String json = MetadataJsonConverters.writeJson(record.message(), record.version()).toString();
            System.out.println(name + " " + hex.formatHex(toArray(out)) + " " + json);
        }
    }

    private static byte[] toArray(ByteBuffer buf) {
        byte[] bytes = new byte[buf.remaining()];
        buf.duplicate().get(bytes);
        return bytes;
    }
}
