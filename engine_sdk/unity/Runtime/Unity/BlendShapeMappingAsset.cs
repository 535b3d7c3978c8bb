// Which blend shapes of a rig the 15 OVR visemes and 7 emotions drive, as an asset the
// artist edits. Glue only (not compiled here against Unity).
using System.Collections.Generic;
using UnityEngine;

namespace EntityBridge.Unity
{
    [CreateAssetMenu(menuName = "Entity Bridge/Blend Shape Mapping", fileName = "BlendShapeMapping")]
    public sealed class BlendShapeMappingAsset : ScriptableObject
    {
        [System.Serializable]
        public struct Entry
        {
            [Tooltip("An OVR viseme (sil PP FF TH DD kk CH SS nn RR aa E I O U) or an emotion (happy sad angry surprised afraid disgusted).")]
            public string source;
            public string blendShape;
            [Range(0f, 2f)] public float scale;
        }

        [Tooltip("Start from the default mapping (viseme_<name>, ARKit face shapes) and add the entries below.")]
        public bool startFromDefaults = true;
        public List<Entry> entries = new List<Entry>();

        public BlendShapeMapping Build()
        {
            var m = startFromDefaults ? BlendShapeMapping.Default() : new BlendShapeMapping();
            foreach (var e in entries)
            {
                float scale = e.scale == 0f ? 1f : e.scale;
                if (Visemes.IndexOf(e.source) >= 0) m.MapViseme(e.source, e.blendShape, scale);
                else if (Emotions.IndexOf(e.source) >= 0) m.MapEmotion(e.source, e.blendShape, scale);
                else Debug.LogWarning("[EntityBridge] mapping entry with unknown source '" + e.source + "'", this);
            }
            return m;
        }
    }
}
