// An inline character as an asset (entity.init with a character map instead of a name).
using UnityEngine;

namespace EntityBridge.Unity
{
    [CreateAssetMenu(menuName = "Entity Bridge/Character Profile", fileName = "CharacterProfile")]
    public sealed class BridgeCharacterProfile : ScriptableObject
    {
        public string characterName = "guard";
        public string displayName = "Captain Rhys";
        [TextArea(3, 10)] public string persona;
        public string greeting;
        public string voice;
        [Tooltip("Module names from the bridge config per kind; empty = the bridge's default, \"none\" = off.")]
        public string llm, tts, stt, vad, countenance;

        public EepMap ToCharacter()
        {
            var c = new EepMap().Set("name", characterName);
            if (!string.IsNullOrEmpty(displayName)) c.Set("display_name", displayName);
            if (!string.IsNullOrEmpty(persona)) c.Set("persona", persona);
            if (!string.IsNullOrEmpty(greeting)) c.Set("greeting", greeting);
            if (!string.IsNullOrEmpty(voice)) c.Set("voice", voice);
            var m = new EepMap();
            if (!string.IsNullOrEmpty(llm)) m.Set("llm", llm);
            if (!string.IsNullOrEmpty(tts)) m.Set("tts", tts);
            if (!string.IsNullOrEmpty(stt)) m.Set("stt", stt);
            if (!string.IsNullOrEmpty(vad)) m.Set("vad", vad);
            if (!string.IsNullOrEmpty(countenance)) m.Set("countenance", countenance);
            if (m.Count > 0) c.Set("modules", m);
            return c;
        }
    }
}
