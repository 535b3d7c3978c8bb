// Hand-written stand-ins for the few UnityEngine members Runtime/Unity uses, with the
// signatures of Unity's scripting reference, so run-tests.sh can at least compile the glue
// layer with mcs. They prove the glue is consistent C# 7.2 against these declarations; they
// do not prove Unity's real API matches (only an editor can). Never shipped (folder ends in ~).
using System;

namespace UnityEngine.Events
{
    public class UnityEvent { public void Invoke() { } public void AddListener(UnityEngine.Events.UnityAction call) { } }
    public class UnityEvent<T0> { public void Invoke(T0 a) { } public void AddListener(UnityAction<T0> call) { } }
    public class UnityEvent<T0, T1> { public void Invoke(T0 a, T1 b) { } public void AddListener(UnityAction<T0, T1> call) { } }
    public delegate void UnityAction();
    public delegate void UnityAction<T0>(T0 arg0);
    public delegate void UnityAction<T0, T1>(T0 arg0, T1 arg1);
}

namespace UnityEngine
{
    public class Object
    {
        public static T FindObjectOfType<T>() where T : Object { return null; }
    }
    public class Component : Object
    {
        public GameObject gameObject { get { return null; } }
        public T GetComponent<T>() { return default(T); }
        public T[] GetComponents<T>() { return new T[0]; }
    }
    public class Behaviour : Component { public bool enabled { get; set; } }
    public class MonoBehaviour : Behaviour
    {
        public Coroutine StartCoroutine(System.Collections.IEnumerator routine) { return null; }
    }
    public sealed class Coroutine { }
    public class YieldInstruction { }
    public sealed class WaitForSeconds : YieldInstruction { public WaitForSeconds(float seconds) { } }
    public class ScriptableObject : Object { }
    public sealed class GameObject : Object { public string name { get; set; } }
    public sealed class Mesh : Object { public int GetBlendShapeIndex(string blendShapeName) { return -1; } }
    public class Renderer : Component { }
    public class SkinnedMeshRenderer : Renderer
    {
        public Mesh sharedMesh { get; set; }
        public void SetBlendShapeWeight(int index, float value) { }
    }
    public sealed class AudioClip : Object
    {
        public int samples { get { return 0; } }
        public bool GetData(float[] data, int offsetSamples) { return true; }
    }
    public sealed class AudioSource : Behaviour
    {
        public bool playOnAwake { get; set; }
        public bool loop { get; set; }
        public bool isPlaying { get { return false; } }
        public void Play() { }
    }
    public sealed class AudioSettings { public static int outputSampleRate { get { return 48000; } } }
    public static class Microphone
    {
        public static AudioClip Start(string deviceName, bool loop, int lengthSec, int frequency) { return null; }
        public static void End(string deviceName) { }
        public static bool IsRecording(string deviceName) { return false; }
        public static int GetPosition(string deviceName) { return 0; }
    }
    public enum KeyCode { None = 0, Escape = 27, T = 116 }
    public static class Input
    {
        public static bool GetKeyDown(KeyCode key) { return false; }
        public static bool GetKeyUp(KeyCode key) { return false; }
        public static bool GetKey(KeyCode key) { return false; }
    }
    public struct Mathf { public static float Clamp(float value, float min, float max) { return value; } }
    public static class Time { public static float deltaTime { get { return 0f; } } }
    public static class Application
    {
        public static string unityVersion { get { return ""; } }
        public static string streamingAssetsPath { get { return ""; } }
    }
    public static class Debug
    {
        public static void Log(object message, Object context) { }
        public static void Log(object message) { }
        public static void LogWarning(object message, Object context) { }
        public static void LogWarning(object message) { }
        public static void LogError(object message, Object context) { }
        public static void LogException(Exception exception, Object context) { }
    }
    public class PropertyAttribute : Attribute { }
    public sealed class HeaderAttribute : PropertyAttribute { public HeaderAttribute(string header) { } }
    public sealed class TooltipAttribute : PropertyAttribute { public TooltipAttribute(string tooltip) { } }
    public sealed class TextAreaAttribute : PropertyAttribute { public TextAreaAttribute() { } public TextAreaAttribute(int minLines, int maxLines) { } }
    public sealed class RangeAttribute : PropertyAttribute { public RangeAttribute(float min, float max) { } }
    public sealed class CreateAssetMenuAttribute : Attribute { public string menuName { get; set; } public string fileName { get; set; } }
    public sealed class AddComponentMenuAttribute : Attribute { public AddComponentMenuAttribute(string menuName) { } }
    public sealed class DisallowMultipleComponentAttribute : Attribute { }
    public sealed class RequireComponentAttribute : Attribute { public RequireComponentAttribute(Type requiredComponent) { } }
}

