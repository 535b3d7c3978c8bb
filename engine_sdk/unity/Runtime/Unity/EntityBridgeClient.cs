// The scene's connection to the bridge: connects (or first launches the bridge as a sidecar),
// and calls Dispatch() every frame so that every SDK callback runs on Unity's main thread.
// Glue only: all logic is in EntityBridge.Core (tested outside Unity). This file was written
// against Unity's documented API and has not been compiled here (no UnityEngine assemblies).
using System;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

namespace EntityBridge.Unity
{
    [Serializable] public class StringEvent : UnityEvent<string> { }

    [DisallowMultipleComponent]
    [AddComponentMenu("Entity Bridge/Entity Bridge Client")]
    public sealed class EntityBridgeClient : MonoBehaviour
    {
        [Header("Connection")]
        [Tooltip("Used when Launch Sidecar is off.")]
        public string url = "ws://127.0.0.1:8765/";
        public bool useJsonFraming;
        [Tooltip("The player's or save game's id: whose conversation memory the bridge uses.")]
        public string scope;
        [Tooltip("Shared secret, when the bridge listens beyond loopback.")]
        public string token;
        public bool connectOnStart = true;
        [Tooltip("Off: speech chunks of characters with a BridgeVoice go straight to the voice and the face without becoming events (no garbage per chunk).")]
        public bool dispatchAudioEvents;

        [Header("Sidecar (start the bridge with the game)")]
        public bool launchSidecar;
        [Tooltip("Path of the entity-bridge executable (or a name on PATH).")]
        public string sidecarExecutable = "entity-bridge";
        [Tooltip("bridge.toml; relative paths are resolved against Application.streamingAssetsPath.")]
        public string sidecarConfig = "bridge.toml";
        public float sidecarStartTimeoutSeconds = 30f;

        [Header("Events")]
        public UnityEvent onConnected = new UnityEvent();
        public StringEvent onDisconnected = new StringEvent();
        public UnityEvent onReconnected = new UnityEvent();
        public StringEvent onError = new StringEvent();

        SidecarLauncher sidecar;
        readonly TaskCompletionSource<BridgeClient> ready = new TaskCompletionSource<BridgeClient>();

        public BridgeClient Client { get; private set; }
        /// <summary>Completes (on the main thread, via Unity's context) once connected.</summary>
        public Task<BridgeClient> Ready { get { return ready.Task; } }

        async void Start()
        {
            if (connectOnStart) await ConnectAsync();
        }

        public async Task ConnectAsync()
        {
            if (Client != null) return;
            try
            {
                string target = url;
                if (launchSidecar)
                {
                    var options = new SidecarOptions
                    {
                        Executable = sidecarExecutable,
                        ConfigPath = ResolveConfig(sidecarConfig),
                        StartTimeout = TimeSpan.FromSeconds(sidecarStartTimeoutSeconds),
                    };
                    // Start blocks until READY: keep it off the main thread.
                    sidecar = await Task.Run(() => SidecarLauncher.Start(options));
                    target = sidecar.Url;
                }
                var bridgeOptions = new BridgeOptions
                {
                    Url = target,
                    Framing = useJsonFraming ? Framing.Json : Framing.MsgPack,
                    Scope = string.IsNullOrEmpty(scope) ? null : scope,
                    Token = string.IsNullOrEmpty(token) ? null : token,
                    ClientName = "EntityBridge.Unity/0.1.0 (" + Application.unityVersion + ")",
                    AudioOutSampleRate = SupportedRate(AudioSettings.outputSampleRate),
                    DispatchAudioEvents = dispatchAudioEvents,
                };
                Client = await BridgeClient.ConnectAsync(bridgeOptions);
                Client.Disconnected += reason => onDisconnected.Invoke(reason);
                Client.Reconnected += () => onReconnected.Invoke();
                Client.Log += message => Debug.Log("[EntityBridge] " + message, this);
                Client.HandlerException += ex => Debug.LogException(ex, this);
                ready.TrySetResult(Client);
                onConnected.Invoke();
            }
            catch (Exception ex)
            {
                Debug.LogError("[EntityBridge] " + ex.Message, this);
                onError.Invoke(ex.Message);
                ready.TrySetException(ex);
            }
        }

        /// <summary>The bridge's rates are 8000, 16000, 22050, 24000, 44100, 48000; ask for the
        /// output rate when it is one of them, so the speech buffer need not resample.</summary>
        static int SupportedRate(int rate)
        {
            foreach (int r in new[] { 8000, 16000, 22050, 24000, 44100, 48000 }) if (r == rate) return r;
            return 0;
        }

        static string ResolveConfig(string path)
        {
            if (string.IsNullOrEmpty(path)) return null;
            return System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Combine(Application.streamingAssetsPath, path);
        }

        void Update()
        {
            if (Client != null) Client.Dispatch();
        }

        async void OnDestroy()
        {
            var c = Client;
            Client = null;
            if (c != null)
            {
                try { await c.CloseAsync(TimeSpan.FromSeconds(1)); } catch (Exception) { }
            }
            StopSidecar();
        }

        void OnApplicationQuit() { StopSidecar(); }

        void StopSidecar()
        {
            if (sidecar == null) return;
            sidecar.Dispose();
            sidecar = null;
        }
    }
}
