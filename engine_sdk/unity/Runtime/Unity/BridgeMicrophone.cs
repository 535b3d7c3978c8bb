// The player's voice to the character: Microphone capture cut into 20 ms stt.audio frames at
// the bridge's audio_in rate, push-to-talk (hold a key) or VAD (the bridge finds the speech).
// Glue only (not compiled here).
using UnityEngine;

namespace EntityBridge.Unity
{
    [AddComponentMenu("Entity Bridge/Bridge Microphone")]
    public sealed class BridgeMicrophone : MonoBehaviour, IBridgeCharacterPart
    {
        public enum Mode { PushToTalk, Vad }

        public Mode mode = Mode.PushToTalk;
        public KeyCode talkKey = KeyCode.T;
        [Tooltip("Empty = the default device.")]
        public string device;
        [Tooltip("Must match the hello's audio_in rate (the bridge's default is 16000).")]
        public int sampleRate = 16000;

        BridgeEntity entity;
        AudioClip clip;
        int readPos;
        float[] block;
        byte[] frame;
        bool listening;

        public void Attach(BridgeEntity e)
        {
            entity = e;
            int frameSamples = sampleRate / 50;              // 20 ms
            block = new float[frameSamples];
            frame = new byte[frameSamples * 2];              // reused: SendMicrophone encodes before it returns
            clip = Microphone.Start(string.IsNullOrEmpty(device) ? null : device, true, 2, sampleRate);
            readPos = 0;
            if (mode == Mode.Vad) StartListening();
        }

        async void StartListening()
        {
            if (listening || entity == null) return;
            listening = true;
            try { await entity.ListenStartAsync(mode == Mode.Vad ? "vad" : "push_to_talk"); }
            catch (System.Exception ex) { listening = false; Debug.LogWarning("[EntityBridge] " + ex.Message, this); }
        }

        async void StopListening()
        {
            if (!listening || entity == null) return;
            listening = false;
            try { await entity.ListenStopAsync(); }
            catch (System.Exception ex) { Debug.LogWarning("[EntityBridge] " + ex.Message, this); }
        }

        void Update()
        {
            if (entity == null || clip == null) return;
            if (mode == Mode.PushToTalk)
            {
                if (Input.GetKeyDown(talkKey)) StartListening();
                if (Input.GetKeyUp(talkKey)) StopListening();
            }
            int pos = Microphone.GetPosition(string.IsNullOrEmpty(device) ? null : device);
            int available = (pos - readPos + clip.samples) % clip.samples;
            while (available >= block.Length)
            {
                clip.GetData(block, readPos);                // wraps around the looping clip
                if (listening)
                {
                    for (int i = 0; i < block.Length; i++)
                    {
                        int s = (int)(Mathf.Clamp(block[i], -1f, 1f) * 32767f);
                        frame[2 * i] = (byte)s;
                        frame[2 * i + 1] = (byte)(s >> 8);
                    }
                    entity.SendMicrophone(frame);
                }
                readPos = (readPos + block.Length) % clip.samples;
                available -= block.Length;
            }
        }

        void OnDisable()
        {
            StopListening();
            if (Microphone.IsRecording(string.IsNullOrEmpty(device) ? null : device)) Microphone.End(string.IsNullOrEmpty(device) ? null : device);
        }
    }
}
