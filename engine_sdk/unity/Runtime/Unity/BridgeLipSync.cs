// Drives a SkinnedMeshRenderer's blend shapes from the entity's face timeline at the time the
// voice is playing: visemes for the mouth, countenance for the face. Glue only (not compiled here).
using System.Collections.Generic;
using UnityEngine;

namespace EntityBridge.Unity
{
    [AddComponentMenu("Entity Bridge/Bridge Lip Sync")]
    public sealed class BridgeLipSync : MonoBehaviour, IBridgeCharacterPart
    {
        public SkinnedMeshRenderer face;
        [Tooltip("Which blend shapes the visemes and emotions drive; empty = BlendShapeMapping.Default().")]
        public BlendShapeMappingAsset mapping;
        [Tooltip("Unity blend-shape weights run 0..100.")]
        public float weightScale = 100f;
        public float visemeAttack = 0.04f, visemeRelease = 0.08f, emotionAttack = 0.25f, emotionRelease = 0.5f;

        BridgeEntity entity;
        BlendShapeMapping map;
        int[] shapeIndex;
        float[] weights;

        public void Attach(BridgeEntity e)
        {
            entity = e;
            var timeline = e.AttachFace();
            timeline.VisemeAttack = visemeAttack; timeline.VisemeRelease = visemeRelease;
            timeline.EmotionAttack = emotionAttack; timeline.EmotionRelease = emotionRelease;
            map = mapping != null ? mapping.Build() : BlendShapeMapping.Default();
            var mesh = face != null ? face.sharedMesh : null;
            shapeIndex = new int[map.Shapes.Count];
            for (int i = 0; i < shapeIndex.Length; i++)
                shapeIndex[i] = mesh != null ? mesh.GetBlendShapeIndex(map.Shapes[i]) : -1;   // -1: the rig lacks it
            weights = new float[map.Shapes.Count];
        }

        void LateUpdate()
        {
            if (entity == null || entity.Face == null || face == null) return;
            int playedMs = 0;
            string speech = entity.Speech != null ? entity.Speech.Current(out playedMs) : null;
            entity.Face.Sample(speech, playedMs);
            entity.Face.Update(Time.deltaTime);
            map.Evaluate(entity.Face, weights);
            for (int i = 0; i < weights.Length; i++)
                if (shapeIndex[i] >= 0) face.SetBlendShapeWeight(shapeIndex[i], weights[i] * weightScale);
        }
    }
}
