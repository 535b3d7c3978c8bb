// One entity (a character in the scene) on a client: its requests, its events, and
// optionally its voice (SpeechBuffer) and face (FaceTimeline).
using System;
using System.Collections.Generic;
using System.Threading.Tasks;

namespace EntityBridge
{
    public static class UtteranceKind
    {
        public const string Verbal = "verbal";
        public const string Nonverbal = "nonverbal";
        public const string Combined = "combined";
        public const string NonverbalDelayed = "nonverbal_delayed";
    }

    public sealed class BridgeEntity
    {
        public readonly BridgeClient Client;
        public readonly string Name;
        readonly string characterName;
        readonly EepMap inlineCharacter;
        readonly Dictionary<string, Action<BridgeRequest>> handlers = new Dictionary<string, Action<BridgeRequest>>();
        volatile bool removed;
        int micSeq;
        string progressSpeech;
        long lastProgressAt;
        int lastProgressMs = -1;
        volatile string lastTurnRef;

        /// <summary>entity.init's success payload (character, display_name, modules).</summary>
        public EepMap Info { get; internal set; }
        /// <summary>The voice, when AttachSpeech was called: chunks go in on the socket thread.</summary>
        public SpeechBuffer Speech { get; private set; }
        /// <summary>The face, when AttachFace was called: fed in Dispatch.</summary>
        public FaceTimeline Face { get; private set; }
        /// <summary>How often playback.progress is sent while speech plays (ms).</summary>
        public int ProgressIntervalMs = 250;
        public bool Removed { get { return removed; } }
        /// <summary>The played_ms of the last playback.progress sent (-1: none for this segment).</summary>
        public int LastProgressMs { get { return lastProgressMs; } }
        /// <summary>How many playback.done reports were sent.</summary>
        public int PlaybackDoneSent { get; private set; }

        // Raised in Dispatch (the game's thread).
        public event Action<BridgeEvent> EventReceived;
        public event Action<string> TextDelta;
        public event Action<string> ActionPerformed;
        /// <summary>emotion, intensity, expression preset (raised when the event arrives; the
        /// face applies a segment-tied one at its time).</summary>
        public event Action<string, float, string> Countenance;
        /// <summary>text, final</summary>
        public event Action<string, bool> Transcript;
        /// <summary>speech id, text</summary>
        public event Action<string, string> SpeechStarted;
        /// <summary>code, message: error events about this entity and failed fire-and-forget reports.</summary>
        public event Action<string, string> Error;

        internal BridgeEntity(BridgeClient client, string name, string character, EepMap inline)
        {
            Client = client;
            Name = name;
            characterName = character;
            inlineCharacter = inline;
            Info = new EepMap();
        }

        internal EepMap InitPayload()
        {
            return new EepMap().Set("character", (object)characterName ?? inlineCharacter);
        }

        /// <summary>Gives the entity a voice at the game's output rate (e.g. AudioSettings.outputSampleRate).</summary>
        public SpeechBuffer AttachSpeech(int outputRate, double capacitySeconds = 15)
        {
            Speech = new SpeechBuffer(outputRate, capacitySeconds);
            return Speech;
        }

        public FaceTimeline AttachFace()
        {
            if (Face == null) Face = new FaceTimeline();
            return Face;
        }

        // ------------------------------------------------------------------ requests

        /// <summary>A player utterance (kind: verbal, nonverbal, combined, nonverbal_delayed);
        /// completes when the character's turn is over, with every output of the turn.</summary>
        public Task<TurnResult> SayAsync(string text, string kind = UtteranceKind.Verbal, string speaker = null, TimeSpan? timeout = null)
        {
            return StartSay(text, kind, speaker, timeout).Task;
        }

        public PendingRequest StartSay(string text, string kind = UtteranceKind.Verbal, string speaker = null, TimeSpan? timeout = null)
        {
            var p = new EepMap().Set("kind", kind).Set("text", text);
            if (speaker != null) p.Set("speaker", speaker);
            return Client.Send("user.utterance", p, Name, true, true, timeout);
        }

        /// <summary>Something happened in the game; with respond the character reacts now (a turn).</summary>
        public Task<TurnResult> WorldEventAsync(string text, string actor = null, bool respond = false, TimeSpan? timeout = null)
        {
            var p = new EepMap().Set("text", text);
            if (actor != null) p.Set("actor", actor);
            p.Set("respond", respond);
            return Client.TurnAsync("world.event", p, Name, timeout);
        }

        /// <summary>tts.say: the character speaks the given line as is (no LLM).</summary>
        public Task<TurnResult> TtsSayAsync(string text, TimeSpan? timeout = null)
        {
            return StartTtsSay(text, timeout).Task;
        }

        public PendingRequest StartTtsSay(string text, TimeSpan? timeout = null)
        {
            return Client.Send("tts.say", new EepMap().Set("text", text), Name, true, true, timeout);
        }

        /// <summary>Stops the running turn. With a voice attached, its buffer is flushed at once
        /// (nothing more is played, later chunks of the turn are dropped) and played_ms reports
        /// what was heard of the segment, unless the caller gives its own figure.</summary>
        public Task<BridgeEvent> InterruptAsync(int? playedMs = null)
        {
            int heard = -1;
            if (Speech != null)
            {
                int ms;
                if (Speech.Flush(out ms) != null) heard = ms;
                if (lastTurnRef != null) Speech.CutTurn(lastTurnRef);
            }
            if (Face != null) Face.Clear();
            if (playedMs.HasValue) heard = playedMs.Value;
            var p = new EepMap();
            if (heard >= 0) p.Set("played_ms", (long)heard);
            return Client.RequestAsync("entity.interrupt", p, Name);
        }

        public async Task<BridgeEvent> RemoveAsync()
        {
            var reply = await Client.RequestAsync("entity.remove", new EepMap(), Name).ConfigureAwait(false);
            removed = true;
            Client.Forget(this);
            if (Speech != null) Speech.Reset();
            return reply;
        }

        /// <summary>chat.history: the conversation in this session's scope, oldest first.</summary>
        public async Task<List<object>> ChatHistoryAsync(int limit = 0)
        {
            var p = new EepMap();
            if (limit > 0) p.Set("limit", (long)limit);
            var reply = await Client.RequestAsync("chat.history", p, Name).ConfigureAwait(false);
            return (reply.Payload != null ? reply.Payload.GetList("messages") : null) ?? new List<object>();
        }

        /// <summary>chat.clear: returns how many messages were deleted.</summary>
        public async Task<long> ChatClearAsync()
        {
            var reply = await Client.RequestAsync("chat.clear", null, Name).ConfigureAwait(false);
            return reply.Payload != null ? reply.Payload.GetLong("cleared") : 0;
        }

        /// <summary>movement.actions: what the character can do ([{name, description, params?, examples?}]).</summary>
        public Task<BridgeEvent> SetActionsAsync(List<object> actions)
        {
            return Client.RequestAsync("movement.actions", new EepMap().Set("actions", actions), Name);
        }

        /// <summary>movement.scene: what the character perceives ({characters, objects}).</summary>
        public Task<BridgeEvent> SetSceneAsync(EepMap scene)
        {
            return Client.RequestAsync("movement.scene", scene, Name);
        }

        public Task<BridgeEvent> ListenStartAsync(string mode = "vad")
        {
            micSeq = 0;
            return Client.RequestAsync("stt.listen.start", new EepMap().Set("mode", mode), Name);
        }

        public Task<BridgeEvent> ListenStopAsync()
        {
            return Client.RequestAsync("stt.listen.stop", null, Name);
        }

        /// <summary>stt.audio: one chunk of microphone PCM (16-bit LE mono, the hello's audio_in
        /// rate). Not answered on success; a failure reaches the Error event.</summary>
        public bool SendMicrophone(byte[] pcm16)
        {
            var p = new EepMap(2).Set("seq", (long)micSeq++).Set("audio", pcm16);
            return Client.SendUntracked("stt.audio", p, Name);
        }

        /// <summary>Answers this entity's bridge requests of `type` (wins over the client's handler).</summary>
        public void SetRequestHandler(string type, Action<BridgeRequest> handler)
        {
            lock (handlers)
            {
                if (handler == null) handlers.Remove(type); else handlers[type] = handler;
            }
        }

        internal Action<BridgeRequest> GetRequestHandler(string type)
        {
            lock (handlers)
            {
                Action<BridgeRequest> h;
                return handlers.TryGetValue(type, out h) ? h : null;
            }
        }

        // ------------------------------------------------------------------ incoming

        struct QueuedKey { public string Speech; public int T; public int Viseme; public float Weight; }
        const int KeyQueueSize = 1024;
        readonly QueuedKey[] keyQueue = new QueuedKey[KeyQueueSize];
        int keyHead, keyCount;

        /// <summary>Socket thread, audio fast path: the PCM goes from the frame buffer into the
        /// voice, the keyframes into a fixed queue that Dispatch hands to the face.</summary>
        internal void OnAudioChunk(ref AudioChunk c, byte[] frame, MsgPackReader keys)
        {
            if (c.Ref != null) lastTurnRef = c.Ref;
            var sp = Speech;
            if (sp != null) sp.PushPcm16(c.Speech, frame, c.AudioOffset, c.AudioCount);
            if (Face == null || c.KeyCount == 0) return;
            lock (keyQueue)
            {
                for (int i = 0; i < c.KeyCount; i++)
                {
                    if (keyCount == KeyQueueSize) { keyHead = (keyHead + 1) % KeyQueueSize; keyCount--; }
                    int at = (keyHead + keyCount) % KeyQueueSize;
                    keyQueue[at] = new QueuedKey { Speech = c.Speech, T = keys.KeyT[i], Viseme = keys.KeyViseme[i], Weight = keys.KeyWeight[i] };
                    keyCount++;
                }
            }
        }

        internal void DrainKeyframes()
        {
            var face = Face;
            if (face == null) return;
            lock (keyQueue)
            {
                while (keyCount > 0)
                {
                    var k = keyQueue[keyHead];
                    keyQueue[keyHead] = default(QueuedKey);
                    keyHead = (keyHead + 1) % KeyQueueSize;
                    keyCount--;
                    face.AddKeyframe(k.Speech, k.T, k.Viseme, k.Weight);
                }
            }
        }

        /// <summary>Socket thread: audio goes straight into the voice, so playback never waits
        /// for the game's frame.</summary>
        internal void OnReceiveThread(BridgeEvent e)
        {
            var sp = Speech;
            var p = e.Payload;
            switch (e.Type)
            {
                case "ai.speech.start":
                    if (e.Ref != null) lastTurnRef = e.Ref;
                    if (sp != null && p != null) sp.BeginSegment(p.GetString("speech"), e.Ref, (int)p.GetLong("sample_rate", sp.OutputRate));
                    break;
                case "ai.speech.audio":
                    if (sp != null && p != null)
                    {
                        var audio = p.GetBytes("audio");
                        if (audio != null) sp.PushPcm16(p.GetString("speech"), audio, 0, audio.Length);
                    }
                    break;
                case "ai.speech.end":
                    if (sp != null && p != null) sp.EndSegment(p.GetString("speech"));
                    break;
                case "ai.speech.interrupted":
                    if (sp != null) sp.CutTurn(e.Ref);
                    break;
            }
        }

        /// <summary>Dispatch thread: typed events, the face, then the generic event.</summary>
        internal void OnMainThread(BridgeEvent e)
        {
            var p = e.Payload;
            switch (e.Type)
            {
                case "ai.text":
                    if (TextDelta != null && p != null) TextDelta(p.GetString("delta", ""));
                    break;
                case "ai.action":
                    if (ActionPerformed != null && p != null) ActionPerformed(p.GetString("text", ""));
                    break;
                case "ai.speech.start":
                    if (SpeechStarted != null && p != null) SpeechStarted(p.GetString("speech"), p.GetString("text", ""));
                    break;
                case "ai.speech.audio":
                    if (Face != null && p != null) Face.AddKeyframes(p.GetString("speech"), p.GetList("visemes"));
                    break;
                case "ai.speech.interrupted":
                    if (Face != null) Face.Clear();
                    break;
                case "ai.countenance":
                    if (p != null)
                    {
                        string emotion = p.GetString("emotion", "neutral");
                        float intensity = (float)p.GetDouble("intensity", 1.0);
                        string expression = p.GetString("expression");
                        if (Face != null) Face.AddCountenance(emotion, intensity, expression, p.GetString("speech"), (int)p.GetLong("t"));
                        if (Countenance != null) Countenance(emotion, intensity, expression);
                    }
                    break;
                case "stt.transcript":
                    if (Transcript != null && p != null) Transcript(p.GetString("text", ""), p.GetBool("final"));
                    break;
            }
            if (e.IsError && Error != null) Error(e.ErrorCode, e.Type + " " + e.Id + ": " + e.ErrorMessage);
            else if (e.Type == "error" && Error != null && p != null) Error(p.GetString("code", ""), p.GetString("message", ""));
            var h = EventReceived;
            if (h != null) h(e);
        }

        internal void RaiseError(string code, string message)
        {
            if (Error != null) Error(code, message);
        }

        /// <summary>Dispatch thread, once a frame: playback.progress every ProgressIntervalMs while
        /// a segment plays, playback.done for each segment played to its end.</summary>
        internal void Tick(long nowMs)
        {
            DrainKeyframes();
            var sp = Speech;
            if (sp == null || removed) return;
            string done;
            while (sp.TryTakeFinished(out done))
            {
                if (done == progressSpeech) { progressSpeech = null; lastProgressMs = -1; }
                if (Client.SendUntracked("playback.done", new EepMap(1).Set("speech", done), Name)) PlaybackDoneSent++;
            }
            int played;
            string speech = sp.Current(out played);
            if (speech == null) return;
            if (speech != progressSpeech) { progressSpeech = speech; lastProgressAt = nowMs; lastProgressMs = -1; return; }
            if (nowMs - lastProgressAt >= ProgressIntervalMs && played != lastProgressMs)
            {
                lastProgressAt = nowMs;
                lastProgressMs = played;
                Client.SendUntracked("playback.progress", new EepMap(2).Set("speech", speech).Set("played_ms", (long)played), Name);
            }
        }

        internal void ConnectionLost()
        {
            var sp = Speech;
            if (sp != null) sp.Reset();
            progressSpeech = null;
        }
    }
}
