@tool
class_name BridgeLipSyncMapping
extends Resource
## Which blend shape (3D) or sprite frame (2D) shows each of the bridge's 15 OVR visemes and
## 7 emotions. The defaults follow the common "viseme_XX" blend-shape names (Ready Player Me,
## Oculus LipSync, many VRoid/CC exports) and ARKit-style expression names; edit them in the
## inspector for a rig that names its shapes differently. A name missing from the mesh is
## skipped.

const VISEMES: Array[String] = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"]
const EMOTIONS: Array[String] = ["neutral", "happy", "sad", "angry", "surprised", "afraid", "disgusted"]

## Viseme -> blend shape name of a MeshInstance3D.
@export var viseme_shapes: Dictionary = {
	"sil": "viseme_sil", "PP": "viseme_PP", "FF": "viseme_FF", "TH": "viseme_TH", "DD": "viseme_DD",
	"kk": "viseme_kk", "CH": "viseme_CH", "SS": "viseme_SS", "nn": "viseme_nn", "RR": "viseme_RR",
	"aa": "viseme_aa", "E": "viseme_E", "I": "viseme_I", "O": "viseme_O", "U": "viseme_U",
}
## Emotion -> blend shape name (neutral has none: every emotion shape at 0).
@export var emotion_shapes: Dictionary = {
	"happy": "mouthSmile", "sad": "mouthFrown", "angry": "browDown", "surprised": "browInnerUp",
	"afraid": "eyeWide", "disgusted": "noseSneer",
}
## Viseme -> frame of a 2D mouth AnimatedSprite2D (a 9-frame mouth chart:
## 0 closed, 1 lip-teeth, 2 tongue/teeth, 3 wide teeth, 4 rounded small, 5 open, 6 spread, 7 round, 8 pucker).
@export var sprite_frames: Dictionary = {
	"sil": 0, "PP": 0, "FF": 1, "TH": 2, "DD": 2, "kk": 2, "CH": 3, "SS": 3, "nn": 2,
	"RR": 4, "aa": 5, "E": 6, "I": 6, "O": 7, "U": 8,
}
## The countenance's `expression` name -> blend shape, overriding emotion_shapes when the
## character's config names presets (e.g. "smile_big").
@export var expression_shapes: Dictionary = {}
