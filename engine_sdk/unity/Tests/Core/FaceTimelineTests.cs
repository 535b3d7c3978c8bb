using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class FaceTimelineTests
    {
        static List<object> K(int t, string v, double w) { return new List<object> { (long)t, v, w }; }

        [Test]
        public void WithoutSmoothingWeightsAreTheKeyframeInForce()
        {
            var face = new FaceTimeline { VisemeAttack = 0, VisemeRelease = 0 };
            face.AddKeyframes("sp-1", new List<object> { K(0, "sil", 1.0), K(12, "O", 0.7), K(28, "FF", 0.9) });
            face.AddKeyframes("sp-1", new List<object> { K(44, "nn", 0.8) });
            var expect = new[] { Tuple.Create(0, "sil", 1.0f), Tuple.Create(11, "sil", 1.0f), Tuple.Create(12, "O", 0.7f),
                                 Tuple.Create(27, "O", 0.7f), Tuple.Create(30, "FF", 0.9f), Tuple.Create(500, "nn", 0.8f) };
            foreach (var e in expect)
            {
                face.Sample("sp-1", e.Item1);
                face.Update(0.016f);
                Assert.That(face.VisemeWeight(e.Item2), Is.EqualTo(e.Item3).Within(1e-6), "t=" + e.Item1);
                float others = 0;
                foreach (var name in Visemes.Names) if (name != e.Item2) others += face.VisemeWeight(name);
                Assert.That(others, Is.EqualTo(0f), "only one viseme at t=" + e.Item1);
            }
            face.Sample(null, 0);
            face.Update(0.016f);
            Assert.That(face.VisemeWeight("nn"), Is.EqualTo(0f), "the mouth closes when nothing plays");
        }

        [Test]
        public void SmoothingRisesAndFallsWithoutSnapping()
        {
            var face = new FaceTimeline { VisemeAttack = 0.05f, VisemeRelease = 0.1f };
            face.AddKeyframe("s", 0, "aa", 1.0f);
            face.AddKeyframe("s", 200, "sil", 0.0f);
            float prev = 0;
            for (int frame = 1; frame <= 12; frame++)              // 12 frames of 1/60 s, inside the "aa" keyframe
            {
                face.Sample("s", frame * 16);
                face.Update(1f / 60);
                float w = face.VisemeWeight("aa");
                Assert.That(w, Is.GreaterThan(prev), "rising at frame " + frame);
                Assert.That(w, Is.LessThan(1f));
                prev = w;
            }
            Assert.That(prev, Is.GreaterThan(0.95f), "close to the target after four time constants");
            face.Sample("s", 250);
            face.Update(1f / 60);
            float after = face.VisemeWeight("aa");
            Assert.That(after, Is.LessThan(prev).And.GreaterThan(prev * 0.75f), "release is gradual too");
        }

        [Test]
        public void CountenanceTiedToASegmentWaitsForItsTime()
        {
            var face = new FaceTimeline { EmotionAttack = 0, EmotionRelease = 0 };
            face.AddCountenance("sad", 0.4f, "frown", null, 0);
            face.Update(0.016f);
            Assert.That(face.EmotionWeight("sad"), Is.EqualTo(0.4f).Within(1e-6), "untimed: at once");
            face.AddCountenance("happy", 0.8f, "smile_big", "sp-2", 300);
            face.Sample("sp-2", 299);
            face.Update(0.016f);
            Assert.That(face.Emotion, Is.EqualTo("sad"));
            face.Sample("sp-2", 300);
            face.Update(0.016f);
            Assert.That(face.Emotion, Is.EqualTo("happy"));
            Assert.That(face.Expression, Is.EqualTo("smile_big"));
            Assert.That(face.EmotionWeight("happy"), Is.EqualTo(0.8f).Within(1e-6));
            Assert.That(face.EmotionWeight("sad"), Is.EqualTo(0f));
        }

        [Test]
        public void MappingDrivesNamedBlendShapes()
        {
            var face = new FaceTimeline { VisemeAttack = 0, VisemeRelease = 0, EmotionAttack = 0, EmotionRelease = 0 };
            var map = BlendShapeMapping.Default();
            Assert.That(map.Shapes, Has.Member("viseme_aa").And.Member("mouthSmileLeft"));
            face.AddKeyframe("s", 0, "aa", 0.6f);
            face.AddCountenance("happy", 0.5f, null, null, 0);
            face.Sample("s", 10);
            face.Update(0.016f);
            var w = new float[map.Shapes.Count];
            map.Evaluate(face, w);
            Assert.That(w[map.Shapes.IndexOf("viseme_aa")], Is.EqualTo(0.6f).Within(1e-6));
            Assert.That(w[map.Shapes.IndexOf("viseme_PP")], Is.EqualTo(0f));
            Assert.That(w[map.Shapes.IndexOf("mouthSmileLeft")], Is.EqualTo(0.5f).Within(1e-6));
            Assert.That(w[map.Shapes.IndexOf("cheekSquintLeft")], Is.EqualTo(0.25f).Within(1e-6), "scaled");
            Assert.Throws<ArgumentException>(() => map.MapViseme("XX", "nope"));
        }
    }
}
