extends Control
## The demo: type a line, the innkeeper answers in text and speech, with a 2D mouth.
## Run `make serve` (or enable the sidecar in Project Settings > entity_bridge) first.

@onready var innkeeper: BridgeCharacter = $Innkeeper
@onready var mouth: AnimatedSprite2D = $Mouth
@onready var log_label: RichTextLabel = $Panel/Log
@onready var input: LineEdit = $Panel/Input


func _ready() -> void:
	mouth.sprite_frames = _mouth_frames()
	innkeeper.text.connect(func(delta: String) -> void: log_label.add_text(delta))
	innkeeper.action.connect(func(t: String, _k: String) -> void: log_label.add_text(" *%s* " % t))
	innkeeper.replied.connect(func(_p: Dictionary) -> void: log_label.add_text("\n"))
	innkeeper.error.connect(func(code: String, message: String) -> void: log_label.add_text("\n[%s] %s\n" % [code, message]))
	input.text_submitted.connect(_on_submit)
	$Panel/Stop.pressed.connect(func() -> void: innkeeper.interrupt())


func _on_submit(line: String) -> void:
	if line.strip_edges() == "":
		return
	log_label.add_text("> %s\n" % line)
	input.clear()
	innkeeper.say(line)


## Nine mouth shapes drawn at run time (the default BridgeLipSyncMapping frame chart):
## closed, lip-teeth, tongue, wide teeth, small round, open, spread, round, pucker.
static func _mouth_frames() -> SpriteFrames:
	var shapes := [[28, 2], [24, 5], [26, 8], [30, 8], [14, 10], [24, 20], [32, 10], [18, 16], [10, 8]]
	var frames := SpriteFrames.new()
	for s in shapes:
		var img := Image.create(64, 32, false, Image.FORMAT_RGBA8)
		for y in 32:
			for x in 64:
				var dx := (x - 32.0) / float(s[0])
				var dy := (y - 16.0) / float(s[1])
				if dx * dx + dy * dy <= 1.0:
					img.set_pixel(x, y, Color(0.45, 0.05, 0.1))
		frames.add_frame("default", ImageTexture.create_from_image(img))
	return frames
