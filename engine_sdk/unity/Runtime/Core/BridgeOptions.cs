using System;

namespace EntityBridge
{
    /// <summary>How to connect and what to ask for in session.hello.</summary>
    public sealed class BridgeOptions
    {
        public string Url = "ws://127.0.0.1:8765/";
        public Framing Framing = Framing.MsgPack;
        public string ClientName = "EntityBridge.Unity/0.1.0";
        /// <summary>The bridge's shared secret (required when it listens beyond loopback).</summary>
        public string Token;
        /// <summary>Speech the game wants: sample rate (8000, 16000, 22050, 24000, 44100, 48000),
        /// chunk and lead in ms. Zero leaves the bridge's default.</summary>
        public int AudioOutSampleRate;
        public int AudioOutChunkMs;
        public int AudioOutLeadMs = -1;
        /// <summary>The microphone rate the game will send (0 = bridge default 16000).</summary>
        public int AudioInSampleRate;
        public string Visemes = "ovr15";
        public bool TextDeltas = true;
        /// <summary>The player's or save game's id: whose conversation memory to use.</summary>
        public string Scope;
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
        public TimeSpan RequestTimeout = TimeSpan.FromSeconds(60);
        public int MaxFrameBytes = 16 * 1024 * 1024;
        /// <summary>Reconnect after the connection drops (not after CloseAsync), re-creating
        /// every entity; delays double from Initial to Max; 0 attempts = keep trying.</summary>
        public bool AutoReconnect = true;
        public TimeSpan ReconnectInitialDelay = TimeSpan.FromMilliseconds(200);
        public TimeSpan ReconnectMaxDelay = TimeSpan.FromSeconds(5);
        public int MaxReconnectAttempts;

        /// <summary>False: ai.speech.audio frames for an entity with a voice attached skip the
        /// event machinery: the PCM goes from the receive buffer into the SpeechBuffer and the
        /// keyframes into the FaceTimeline, allocating nothing per chunk; they then do not appear
        /// in EventReceived or TurnResult.Events. True (default): every chunk is an event too.</summary>
        public bool DispatchAudioEvents = true;

        public BridgeOptions Clone() { return (BridgeOptions)MemberwiseClone(); }

        public EepMap HelloPayload()
        {
            var p = new EepMap(10);
            p.Append("protocol", 1L);
            p.Append("client", ClientName);
            p.Append("visemes", Visemes);
            p.Append("text_deltas", TextDeltas);
            if (Token != null) p.Append("token", Token);
            if (AudioOutSampleRate > 0 || AudioOutChunkMs > 0 || AudioOutLeadMs >= 0)
            {
                var a = new EepMap().Set("encoding", "pcm_s16le");
                if (AudioOutSampleRate > 0) a.Set("sample_rate", (long)AudioOutSampleRate);
                if (AudioOutChunkMs > 0) a.Set("chunk_ms", (long)AudioOutChunkMs);
                if (AudioOutLeadMs >= 0) a.Set("lead_ms", (long)AudioOutLeadMs);
                p.Append("audio_out", a);
            }
            if (AudioInSampleRate > 0)
                p.Append("audio_in", new EepMap().Set("encoding", "pcm_s16le").Set("sample_rate", (long)AudioInSampleRate));
            if (Scope != null) p.Append("scope", Scope);
            return p;
        }
    }
}
