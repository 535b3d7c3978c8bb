// One character in the scene: creates its entity on the bridge and turns its events into
// UnityEvents. Glue only (not compiled here; see EntityBridgeClient.cs).
using System;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

namespace EntityBridge.Unity
{
    [Serializable] public class EmotionEvent : UnityEvent<string, float> { }
    [Serializable] public class TranscriptEvent : UnityEvent<string, bool> { }

    [AddComponentMenu("Entity Bridge/Bridge Character")]
    public sealed class BridgeCharacter : MonoBehaviour
    {
        public EntityBridgeClient bridge;
        [Tooltip("Unique on the connection; defaults to the GameObject's name.")]
        public string entityName;
        [Tooltip("A character from the bridge's config...")]
        public string characterName = "mira";
        [Tooltip("...or an inline character (wins when set).")]
        public BridgeCharacterProfile inlineProfile;

        [Header("Events (main thread)")]
        public StringEvent onTextDelta = new StringEvent();
        public StringEvent onReply = new StringEvent();
        public StringEvent onAction = new StringEvent();
        public EmotionEvent onEmotion = new EmotionEvent();
        public TranscriptEvent onTranscript = new TranscriptEvent();
        public StringEvent onError = new StringEvent();
        public UnityEvent onReady = new UnityEvent();

        /// <summary>movement.perform: answer with request.Succeed(...) or request.Fail(code, message),
        /// now or later. Without a subscriber the SDK answers an error for you.</summary>
        public event Action<BridgeRequest> PerformRequested;

        public BridgeEntity Entity { get; private set; }

        async void Start()
        {
            if (bridge == null) bridge = FindObjectOfType<EntityBridgeClient>();
            if (bridge == null) { Debug.LogError("[EntityBridge] no EntityBridgeClient in the scene", this); return; }
            try
            {
                var client = await bridge.Ready;
                string name = string.IsNullOrEmpty(entityName) ? gameObject.name : entityName;
                Entity = inlineProfile != null
                    ? await client.InitEntityAsync(name, inlineProfile.ToCharacter())
                    : await client.InitEntityAsync(name, characterName);
                Entity.TextDelta += d => onTextDelta.Invoke(d);
                Entity.ActionPerformed += a => onAction.Invoke(a);
                Entity.Countenance += (emotion, intensity, expression) => onEmotion.Invoke(emotion, intensity);
                Entity.Transcript += (text, final) => onTranscript.Invoke(text, final);
                Entity.Error += (code, message) => onError.Invoke(code + ": " + message);
                Entity.SetRequestHandler("movement.perform", req =>
                {
                    var h = PerformRequested;
                    if (h == null) req.Fail("backend_unavailable", "nothing in the game handles actions for " + name);
                    else h(req);
                });
                foreach (var c in GetComponents<IBridgeCharacterPart>()) c.Attach(Entity);
                onReady.Invoke();
            }
            catch (Exception ex)
            {
                Debug.LogError("[EntityBridge] " + ex.Message, this);
                onError.Invoke(ex.Message);
            }
        }

        /// <summary>The player says something (kind: verbal, nonverbal, combined, nonverbal_delayed).</summary>
        public void Say(string text) { Run(SayAsync(text, UtteranceKind.Verbal)); }
        public void Act(string text) { Run(SayAsync(text, UtteranceKind.Nonverbal)); }

        public async Task<TurnResult> SayAsync(string text, string kind)
        {
            if (Entity == null) throw new InvalidOperationException("the character is not ready yet");
            var turn = await Entity.SayAsync(text, kind);
            onReply.Invoke(turn.Payload.GetString("reply", ""));
            return turn;
        }

        public void SpeakLine(string text) { if (Entity != null) Run(Entity.TtsSayAsync(text)); }
        public void WorldEvent(string text) { if (Entity != null) Run(Entity.WorldEventAsync(text, null, false)); }
        public void Interrupt() { if (Entity != null) Run(Entity.InterruptAsync()); }

        async void Run(Task task)
        {
            try { await task; }
            catch (BridgeException ex) when (ex.Code == "cancelled") { }
            catch (Exception ex) { onError.Invoke(ex.Message); }
        }

        async void OnDestroy()
        {
            var e = Entity;
            Entity = null;
            if (e != null && bridge != null && bridge.Client != null)
            {
                try { await e.RemoveAsync(); } catch (Exception) { }
            }
        }
    }

    /// <summary>Components that need the entity once it exists (voice, lip sync, microphone).</summary>
    public interface IBridgeCharacterPart
    {
        void Attach(BridgeEntity entity);
    }
}
