// Lip sync and mood as weights at a playback time. Viseme keyframes [t, name, weight] (t in ms
// from the segment's start) arrive with the audio; ai.countenance arrives either tied to a
// point of a segment (speech + t) or for "now". Sample() sets the targets for the time being
// played; Update(dt) moves the weights toward them with separate attack and release times,
// so mouths and faces do not snap. With zero times the weights equal the keyframes exactly.
using System;
using System.Collections.Generic;

namespace EntityBridge
{
    public static class Visemes
    {
        /// <summary>The Oculus/Meta 15, in the protocol's order.</summary>
        public static readonly string[] Names = { "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U" };

        public static int IndexOf(string name)
        {
            for (int i = 0; i < Names.Length; i++) if (string.Equals(Names[i], name, StringComparison.Ordinal)) return i;
            return -1;
        }
    }

    public static class Emotions
    {
        public static readonly string[] Names = { "neutral", "happy", "sad", "angry", "surprised", "afraid", "disgusted" };

        public static int IndexOf(string name)
        {
            for (int i = 0; i < Names.Length; i++) if (string.Equals(Names[i], name, StringComparison.Ordinal)) return i;
            return -1;
        }
    }

    public sealed class FaceTimeline
    {
        struct Key { public int T; public int Viseme; public float Weight; }
        struct Mood { public int T; public int Emotion; public float Intensity; public string Expression; public bool Applied; }

        sealed class Track
        {
            public string Speech;
            public readonly List<Key> Keys = new List<Key>(256);
            public readonly List<Mood> Moods = new List<Mood>(4);
        }

        const int MaxTracks = 8;
        readonly Track[] tracks = new Track[MaxTracks];
        int nextTrack;

        readonly float[] visemeTarget = new float[15];
        readonly float[] visemeWeight = new float[15];
        readonly float[] emotionTarget = new float[7];
        readonly float[] emotionWeight = new float[7];

        /// <summary>Time constants in seconds (0 = follow at once).</summary>
        public float VisemeAttack = 0.04f, VisemeRelease = 0.08f;
        public float EmotionAttack = 0.25f, EmotionRelease = 0.5f;

        /// <summary>The emotion currently targeted, its intensity and the character's expression preset.</summary>
        public string Emotion { get; private set; }
        public float Intensity { get; private set; }
        public string Expression { get; private set; }

        public FaceTimeline()
        {
            for (int i = 0; i < MaxTracks; i++) tracks[i] = new Track();
            Emotion = "neutral";
        }

        Track Get(string speech, bool create)
        {
            for (int i = 0; i < MaxTracks; i++) if (tracks[i].Speech != null && string.Equals(tracks[i].Speech, speech, StringComparison.Ordinal)) return tracks[i];
            if (!create) return null;
            var t = tracks[nextTrack];         // oldest slot, reused
            nextTrack = (nextTrack + 1) % MaxTracks;
            t.Speech = speech;
            t.Keys.Clear();
            t.Moods.Clear();
            return t;
        }

        /// <summary>Adds the keyframes of one ai.speech.audio payload ("visemes": [[t, name, weight], ...]).</summary>
        public void AddKeyframes(string speech, List<object> keyframes)
        {
            if (speech == null || keyframes == null) return;
            var track = Get(speech, true);
            for (int i = 0; i < keyframes.Count; i++)
            {
                var k = keyframes[i] as List<object>;
                if (k == null || k.Count < 3) continue;
                int v = Visemes.IndexOf(k[1] as string);
                if (v < 0) continue;
                track.Keys.Add(new Key { T = (int)ToDouble(k[0]), Viseme = v, Weight = Clamp01((float)ToDouble(k[2])) });
            }
        }

        public void AddKeyframe(string speech, int t, string viseme, float weight)
        {
            int v = Visemes.IndexOf(viseme);
            if (speech == null || v < 0) return;
            Get(speech, true).Keys.Add(new Key { T = t, Viseme = v, Weight = Clamp01(weight) });
        }

        internal void AddKeyframe(string speech, int t, int viseme, float weight)
        {
            if (speech == null || viseme < 0 || viseme >= Visemes.Names.Length) return;
            Get(speech, true).Keys.Add(new Key { T = t, Viseme = viseme, Weight = Clamp01(weight) });
        }

        /// <summary>ai.countenance: with a speech id it takes effect when that segment reaches t,
        /// without one at once.</summary>
        public void AddCountenance(string emotion, float intensity, string expression, string speech, int t)
        {
            int e = Emotions.IndexOf(emotion);
            if (e < 0) return;
            if (speech == null) { SetEmotion(e, intensity, expression); return; }
            Get(speech, true).Moods.Add(new Mood { T = t, Emotion = e, Intensity = Clamp01(intensity), Expression = expression });
        }

        void SetEmotion(int e, float intensity, string expression)
        {
            for (int i = 0; i < emotionTarget.Length; i++) emotionTarget[i] = 0f;
            if (e > 0) emotionTarget[e] = Clamp01(intensity);
            Emotion = Emotions.Names[e];
            Intensity = Clamp01(intensity);
            Expression = expression;
        }

        /// <summary>Sets the targets for `ms` into segment `speech` (null = nothing playing:
        /// the mouth closes, the mood stays).</summary>
        public void Sample(string speech, int ms)
        {
            for (int i = 0; i < visemeTarget.Length; i++) visemeTarget[i] = 0f;
            if (speech == null) return;
            var track = Get(speech, false);
            if (track == null) return;
            // The keyframe in force: the latest one at or before ms (keyframes arrive in time order).
            int best = -1;
            for (int i = 0; i < track.Keys.Count; i++)
            {
                if (track.Keys[i].T <= ms) best = i; else break;
            }
            if (best >= 0) visemeTarget[track.Keys[best].Viseme] = track.Keys[best].Weight;
            for (int i = 0; i < track.Moods.Count; i++)
            {
                var m = track.Moods[i];
                if (!m.Applied && m.T <= ms)
                {
                    SetEmotion(m.Emotion, m.Intensity, m.Expression);
                    m.Applied = true;
                    track.Moods[i] = m;
                }
            }
        }

        /// <summary>Moves the weights toward the targets over `dt` seconds.</summary>
        public void Update(float dt)
        {
            Smooth(visemeWeight, visemeTarget, dt, VisemeAttack, VisemeRelease);
            Smooth(emotionWeight, emotionTarget, dt, EmotionAttack, EmotionRelease);
        }

        static void Smooth(float[] w, float[] target, float dt, float attack, float release)
        {
            for (int i = 0; i < w.Length; i++)
            {
                float tau = target[i] > w[i] ? attack : release;
                if (tau <= 0f) { w[i] = target[i]; continue; }
                if (dt <= 0f) continue;
                float a = 1f - (float)Math.Exp(-dt / tau);
                w[i] += (target[i] - w[i]) * a;
            }
        }

        public float VisemeWeight(int index) { return visemeWeight[index]; }
        public float VisemeWeight(string name) { int i = Visemes.IndexOf(name); return i < 0 ? 0f : visemeWeight[i]; }
        public float EmotionWeight(int index) { return emotionWeight[index]; }
        public float EmotionWeight(string name) { int i = Emotions.IndexOf(name); return i < 0 ? 0f : emotionWeight[i]; }

        /// <summary>Drops every keyframe (interrupt, reconnect); the mood stays.</summary>
        public void Clear()
        {
            for (int i = 0; i < MaxTracks; i++) { tracks[i].Speech = null; tracks[i].Keys.Clear(); tracks[i].Moods.Clear(); }
        }

        static float Clamp01(float v) { return v < 0f ? 0f : v > 1f ? 1f : v; }

        static double ToDouble(object o)
        {
            if (o is double) return (double)o;
            if (o is long) return (long)o;
            if (o is ulong) return (ulong)o;
            return 0;
        }
    }

    /// <summary>Which blend shapes the 15 visemes and 7 emotions drive, with a scale each.
    /// Evaluate writes one weight (0..1) per shape: the sum of its sources, clamped.</summary>
    public sealed class BlendShapeMapping
    {
        struct Link { public bool Emotion; public int Source; public int Shape; public float Scale; }

        readonly List<string> shapes = new List<string>();
        readonly List<Link> links = new List<Link>();

        public IList<string> Shapes { get { return shapes.AsReadOnly(); } }

        int ShapeIndex(string shape)
        {
            int i = shapes.IndexOf(shape);
            if (i >= 0) return i;
            shapes.Add(shape);
            return shapes.Count - 1;
        }

        public BlendShapeMapping MapViseme(string viseme, string shape, float scale = 1f)
        {
            int v = Visemes.IndexOf(viseme);
            if (v < 0) throw new ArgumentException("not an OVR viseme: " + viseme);
            links.Add(new Link { Emotion = false, Source = v, Shape = ShapeIndex(shape), Scale = scale });
            return this;
        }

        public BlendShapeMapping MapEmotion(string emotion, string shape, float scale = 1f)
        {
            int e = Emotions.IndexOf(emotion);
            if (e < 0) throw new ArgumentException("not an EEP/1 emotion: " + emotion);
            links.Add(new Link { Emotion = true, Source = e, Shape = ShapeIndex(shape), Scale = scale });
            return this;
        }

        /// <summary>weights.Length must be at least Shapes.Count.</summary>
        public void Evaluate(FaceTimeline face, float[] weights)
        {
            for (int i = 0; i < shapes.Count; i++) weights[i] = 0f;
            for (int i = 0; i < links.Count; i++)
            {
                var l = links[i];
                float w = l.Emotion ? face.EmotionWeight(l.Source) : face.VisemeWeight(l.Source);
                weights[l.Shape] += w * l.Scale;
            }
            for (int i = 0; i < shapes.Count; i++) weights[i] = weights[i] < 0f ? 0f : weights[i] > 1f ? 1f : weights[i];
        }

        /// <summary>Shape names of the common avatar rigs: `viseme_<name>` for the visemes (the
        /// Oculus/Ready Player Me convention) and ARKit face shapes for the emotions.</summary>
        public static BlendShapeMapping Default()
        {
            var m = new BlendShapeMapping();
            foreach (var v in Visemes.Names) m.MapViseme(v, "viseme_" + v);
            m.MapEmotion("happy", "mouthSmileLeft").MapEmotion("happy", "mouthSmileRight").MapEmotion("happy", "cheekSquintLeft", 0.5f).MapEmotion("happy", "cheekSquintRight", 0.5f);
            m.MapEmotion("sad", "mouthFrownLeft").MapEmotion("sad", "mouthFrownRight").MapEmotion("sad", "browInnerUp", 0.8f);
            m.MapEmotion("angry", "browDownLeft").MapEmotion("angry", "browDownRight").MapEmotion("angry", "noseSneerLeft", 0.5f).MapEmotion("angry", "noseSneerRight", 0.5f);
            m.MapEmotion("surprised", "browInnerUp").MapEmotion("surprised", "eyeWideLeft").MapEmotion("surprised", "eyeWideRight").MapEmotion("surprised", "jawOpen", 0.3f);
            m.MapEmotion("afraid", "browInnerUp", 0.7f).MapEmotion("afraid", "eyeWideLeft", 0.8f).MapEmotion("afraid", "eyeWideRight", 0.8f).MapEmotion("afraid", "mouthStretchLeft", 0.5f).MapEmotion("afraid", "mouthStretchRight", 0.5f);
            m.MapEmotion("disgusted", "noseSneerLeft").MapEmotion("disgusted", "noseSneerRight").MapEmotion("disgusted", "mouthUpperUpLeft", 0.6f).MapEmotion("disgusted", "mouthUpperUpRight", 0.6f);
            return m;
        }
    }
}
