// The character's voice: an AudioSource whose samples come from the entity's speech buffer,
// pulled on Unity's audio thread in OnAudioFilterRead (the buffer is thread-safe and does not
// allocate). Glue only (not compiled here).
using UnityEngine;

namespace EntityBridge.Unity
{
    [RequireComponent(typeof(AudioSource))]
    [AddComponentMenu("Entity Bridge/Bridge Voice")]
    public sealed class BridgeVoice : MonoBehaviour, IBridgeCharacterPart
    {
        [Tooltip("Seconds of speech the buffer holds (the bridge sends lead_ms ahead, 200 ms by default).")]
        public float bufferSeconds = 15f;
        volatile SpeechBuffer speech;
        int outputRate;

        public SpeechBuffer Speech { get { return speech; } }

        void Awake()
        {
            outputRate = AudioSettings.outputSampleRate;   // read here: not callable from the audio thread
            var source = GetComponent<AudioSource>();
            source.playOnAwake = true;
            source.loop = true;
            if (!source.isPlaying) source.Play();           // no clip: the filter below is the signal
        }

        public void Attach(BridgeEntity entity)
        {
            speech = entity.AttachSpeech(outputRate, bufferSeconds);
        }

        void OnAudioFilterRead(float[] data, int channels)
        {
            var sp = speech;
            if (sp == null) return;
            sp.Read(data, 0, data.Length / channels, channels);
        }
    }
}
