// The whole loop in one script: the character is greeted when it is ready (call Say from your
// own UI for more, or hold T to talk with a BridgeMicrophone); it answers with streamed text,
// speech, moving lips and a mood; Escape interrupts; actions the LLM asks for
// (movement.perform) are "performed" and reported back.
//
// Scene: one GameObject with EntityBridgeClient; a character GameObject with BridgeCharacter,
// AudioSource + BridgeVoice, BridgeLipSync (face = the head's SkinnedMeshRenderer) and,
// optionally, BridgeMicrophone; this script on the character too.
using System.Collections;
using UnityEngine;

namespace EntityBridge.Unity.Samples
{
    public sealed class ConversationDemo : MonoBehaviour
    {
        public BridgeCharacter character;
        [TextArea] public string firstLine = "Hello! Do you have a room for the night?";
        public KeyCode interruptKey = KeyCode.Escape;

        string subtitle = "";

        void Awake()
        {
            if (character == null) character = GetComponent<BridgeCharacter>();
            character.onReady.AddListener(() => character.Say(firstLine));
            character.onTextDelta.AddListener(delta => subtitle += delta);
            character.onReply.AddListener(reply => { Debug.Log("reply: " + reply); subtitle = ""; });
            character.onAction.AddListener(action => Debug.Log("(" + action + ")"));
            character.onEmotion.AddListener((emotion, intensity) => Debug.Log("mood: " + emotion + " " + intensity));
            character.onTranscript.AddListener((text, final) => { if (final) Debug.Log("player: " + text); });
            character.onError.AddListener(error => Debug.LogWarning(error));
            character.PerformRequested += request => StartCoroutine(Perform(request));
        }

        IEnumerator Perform(BridgeRequest request)
        {
            // A real game would walk, open, draw...; here each action takes half a second.
            foreach (EepMap action in request.Actions)
            {
                Debug.Log("performing " + action.GetString("name") + " " + action.GetMap("args"));
                yield return new WaitForSeconds(0.5f);
            }
            request.Succeed(new EepMap().Set("feedback", "done"));
        }

        void Update()
        {
            if (interruptKey != KeyCode.None && Input.GetKeyDown(interruptKey)) character.Interrupt();
        }

        public string Subtitle { get { return subtitle; } }
    }
}
