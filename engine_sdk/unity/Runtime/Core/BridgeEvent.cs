// One EEP/1 event: the envelope's fields, typed, plus the payload map. Built from a decoded
// wire map (FromWire) and turned back into one (ToWire); EventCodec does the framing.
using System;
using System.Text;

namespace EntityBridge
{
    public static class EventStatus
    {
        public const string New = "new";
        public const string Pending = "pending";
        public const string Success = "success";
        public const string Error = "error";
    }

    public enum Framing { MsgPack, Json }

    public sealed class BridgeEvent
    {
        public string Type;
        public string Id;
        public string Entity;
        public string Status = EventStatus.New;
        public string Ref;
        /// <summary>The payload map; null when the wire held nil (or no payload at all).</summary>
        public EepMap Payload;

        public BridgeEvent() { }

        public BridgeEvent(string type, string id, string entity, EepMap payload)
        {
            Type = type;
            Id = id;
            Entity = entity;
            Payload = payload;
        }

        public bool IsFinal { get { return Status == EventStatus.Success || Status == EventStatus.Error; } }
        public bool IsError { get { return Status == EventStatus.Error; } }

        /// <summary>The error code of an error reply or an `error` event ("" otherwise).</summary>
        public string ErrorCode { get { return Payload != null ? Payload.GetString("code", "") : ""; } }
        public string ErrorMessage { get { return Payload != null ? Payload.GetString("message", "") : ""; } }

        public static BridgeEvent FromWire(object decoded)
        {
            var wire = decoded as EepMap;
            if (wire == null)
                throw new EepCodecException("not_map", "frame does not hold a map but " + (decoded == null ? "nil" : decoded.GetType().Name), 0);
            var e = new BridgeEvent();
            e.Type = wire["type"] as string;
            object id = wire["id"];
            e.Id = id as string ?? (id != null ? Convert.ToString(id, System.Globalization.CultureInfo.InvariantCulture) : null);
            e.Entity = wire["entity"] as string;
            e.Status = wire["status"] as string ?? EventStatus.New;
            e.Ref = wire["ref"] as string;
            e.Payload = wire["payload"] as EepMap;
            if (e.Type == null) throw new EepCodecException("type", "event has no string 'type'", 0);
            return e;
        }

        public EepMap ToWire()
        {
            var w = new EepMap(6);
            w.Append("type", Type);
            w.Append("id", Id);
            if (Entity != null) w.Append("entity", Entity);
            if (Status != null && Status != EventStatus.New) w.Append("status", Status);
            if (Ref != null) w.Append("ref", Ref);
            w.Append("payload", Payload);
            return w;
        }

        public override string ToString()
        {
            var sb = new StringBuilder();
            sb.Append(Type).Append(' ').Append(Id);
            if (Status != EventStatus.New) sb.Append(" [").Append(Status).Append(']');
            if (Entity != null) sb.Append(" entity=").Append(Entity);
            if (Ref != null) sb.Append(" ref=").Append(Ref);
            sb.Append(' ').Append(Payload == null ? "null" : Json.Encode(Payload));
            return sb.ToString();
        }
    }

    /// <summary>Frames events for the wire in either framing. In JSON, the protocol's binary
    /// fields (payload.audio of stt.audio, stt.transcribe and ai.speech.audio) travel as base64
    /// and are turned back into bytes here; no other string is ever decoded.</summary>
    public sealed class EventCodec
    {
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);
        readonly MsgPackReader reader = new MsgPackReader();
        readonly MsgPackWriter writer = new MsgPackWriter(1024);

        public static bool HasBinaryAudio(string type)
        {
            return type == "ai.speech.audio" || type == "stt.audio" || type == "stt.transcribe";
        }

        /// <summary>The reader behind DecodeBinary; its KeyT / KeyViseme / KeyWeight arrays hold
        /// the keyframes of the last TryScanAudio.</summary>
        public MsgPackReader Reader { get { return reader; } }

        /// <summary>See MsgPackReader.TryScanAudio: an ai.speech.audio frame read in place.</summary>
        public bool TryScanAudio(byte[] data, int offset, int count, ref AudioChunk chunk)
        {
            return reader.TryScanAudio(data, offset, count, ref chunk);
        }

        public BridgeEvent DecodeBinary(byte[] data, int offset, int count)
        {
            return BridgeEvent.FromWire(reader.Read(data, offset, count));
        }

        public BridgeEvent DecodeText(byte[] utf8, int offset, int count)
        {
            string text;
            try { text = StrictUtf8.GetString(utf8, offset, count); }
            catch (ArgumentException) { throw new EepCodecException("utf8", "JSON frame is not valid UTF-8", 0); }
            return DecodeText(text);
        }

        public BridgeEvent DecodeText(string text)
        {
            return BridgeEvent.FromWire(DecodeTextWire(text));
        }

        /// <summary>A JSON frame as a wire map, with the protocol's binary fields as bytes.</summary>
        public static EepMap DecodeTextWire(string text)
        {
            object decoded = Json.Decode(text);
            var wire = decoded as EepMap;
            if (wire == null) return BridgeEvent.FromWire(decoded).ToWire();   // throws not_map
            var payload = wire["payload"] as EepMap;
            if (payload != null && HasBinaryAudio(wire["type"] as string))
            {
                var b64 = payload["audio"] as string;
                if (b64 != null)
                {
                    try { payload.Set("audio", Convert.FromBase64String(b64)); }
                    catch (FormatException) { throw new EepCodecException("syntax", "payload.audio is not valid base64", 0); }
                }
            }
            return wire;
        }

        /// <summary>Encodes into the codec's reusable buffer: valid until the next call. The
        /// returned segment is copied by the caller when it must outlive that.</summary>
        public ArraySegment<byte> EncodeBinary(BridgeEvent e)
        {
            writer.Reset();
            writer.Write(e.ToWire());
            return new ArraySegment<byte>(writer.Buffer, 0, writer.Length);
        }

        public byte[] Encode(BridgeEvent e, Framing framing)
        {
            if (framing == Framing.Json) return Encoding.UTF8.GetBytes(Json.Encode(e.ToWire()));
            var seg = EncodeBinary(e);
            var a = new byte[seg.Count];
            Buffer.BlockCopy(seg.Array, 0, a, 0, seg.Count);
            return a;
        }
    }
}
