extends "res://tests/test_case.gd"
## Lip-sync driver: weights at given times, smoothing, countenance timing, blend shapes of a
## real MeshInstance3D and frames of an AnimatedSprite2D.


func _driver() -> BridgeLipSyncDriver:
	var d := BridgeLipSyncDriver.new()
	d.add_keyframes("sp-1", 0, [[0, "sil", 1.0], [12, "O", 0.7], [28, "FF", 0.9]])
	d.add_keyframes("sp-1", 40, [[44, "nn", 0.8], [60, "bogus", 1.0], ["x", "aa", 1.0]])
	return d


func test_weights_at_given_times() -> void:
	var d := _driver()
	var cases := [[0, "sil", 1.0], [11, "sil", 1.0], [12, "O", 0.7], [27, "O", 0.7], [28, "FF", 0.9], [43, "FF", 0.9], [44, "nn", 0.8], [500, "nn", 0.8]]
	for c in cases:
		var w := d.weights_at("sp-1", c[0])
		near(w[c[1]], c[2], 1e-6, "%s at %d ms" % [c[1], c[0]])
		var others := 0.0
		for v in w:
			if v != c[1]:
				others += w[v]
		near(others, 0.0, 1e-6, "only %s is on at %d ms" % [c[1], c[0]])
	eq(d.weights_at("unknown", 10)["sil"], 1.0, "an unknown segment is silent")
	eq(d.weights_at("sp-1", -5)["sil"], 1.0, "before the first keyframe: sil")


func test_smoothing_approaches_without_snapping() -> void:
	var d := _driver()
	d.smoothing_s = 0.05
	d.update(0.016, "sp-1", 12)
	var first: float = d.visemes["O"]
	check(first > 0.0 and first < 0.7 * 0.5, "after one 16 ms frame O is on its way, not there (%f)" % first)
	near(first, 0.7 * (1.0 - exp(-0.016 / 0.05)), 1e-6, "exponential approach")
	for i in 30:
		d.update(0.016, "sp-1", 12)
	near(d.visemes["O"], 0.7, 0.01, "O reaches its weight")
	near(d.visemes["sil"], 0.0, 0.01, "sil fades out")
	d.smoothing_s = 0.0
	d.update(0.016, "sp-1", 30)
	eq(d.visemes["FF"], 0.9, "smoothing 0 snaps")
	eq(d.dominant_viseme(), "FF", "dominant viseme")


func test_countenance_tied_to_a_segment_time_waits_for_it() -> void:
	var d := BridgeLipSyncDriver.new()
	d.smoothing_s = 0.0
	var fake := BridgeEntity.new(RefCounted.new(), "x", "y")
	d.attach(fake)
	fake.countenance.emit("happy", 0.8, "smile_big", "sp-1", 500)
	d.update(0.016, "sp-1", 100)
	eq(d.emotions["happy"], 0.0, "not before t")
	d.update(0.016, "sp-1", 500)
	near(d.emotions["happy"], 0.8, 1e-6, "at t")
	fake.countenance.emit("sad", 0.5, "", "", -1)
	d.update(0.016, "", 0)
	near(d.emotions["sad"], 0.5, 1e-6, "untimed: at once")
	eq(d.emotions["happy"], 0.0, "one emotion at a time")


func _mesh_with_shapes(names: Array) -> MeshInstance3D:
	var arrays := []
	arrays.resize(Mesh.ARRAY_MAX)
	arrays[Mesh.ARRAY_VERTEX] = PackedVector3Array([Vector3(0, 0, 0), Vector3(1, 0, 0), Vector3(0, 1, 0)])
	var mesh := ArrayMesh.new()
	var shapes := []
	for n in names:
		mesh.add_blend_shape(n)
		var s := []
		s.resize(Mesh.ARRAY_MAX)
		s[Mesh.ARRAY_VERTEX] = PackedVector3Array([Vector3(0, 0, 0.1), Vector3(1, 0, 0.1), Vector3(0, 1, 0.1)])
		shapes.append(s)
	mesh.add_surface_from_arrays(Mesh.PRIMITIVE_TRIANGLES, arrays, shapes)
	var mi := MeshInstance3D.new()
	mi.mesh = mesh
	return mi


func test_blend_shapes_of_a_mesh_follow_the_mapping() -> void:
	var mapping := BridgeLipSyncMapping.new()
	var names: Array = mapping.viseme_shapes.values() + ["mouthSmile", "mouthFrown"]
	var mi := _mesh_with_shapes(names)
	tree.root.add_child(mi)
	var d := _driver()
	d.smoothing_s = 0.0
	d.update(0.016, "sp-1", 20)
	d.set_emotion("happy", 0.6)
	d.update(0.016, "sp-1", 20)
	var n := d.apply_to_mesh(mi, mapping)
	eq(n, 17, "15 visemes + 2 emotion shapes present on the mesh were set")
	near(mi.get_blend_shape_value(mi.find_blend_shape_by_name("viseme_O")), 0.7, 1e-6, "viseme_O")
	near(mi.get_blend_shape_value(mi.find_blend_shape_by_name("viseme_sil")), 0.0, 1e-6, "viseme_sil")
	near(mi.get_blend_shape_value(mi.find_blend_shape_by_name("mouthSmile")), 0.6, 1e-6, "happy -> mouthSmile")
	mapping.expression_shapes = {"smile_big": "mouthFrown"}
	d.set_emotion("happy", 0.9, "smile_big")
	d.update(0.016, "sp-1", 20)
	d.apply_to_mesh(mi, mapping)
	near(mi.get_blend_shape_value(mi.find_blend_shape_by_name("mouthFrown")), 0.9, 1e-6, "an expression preset overrides the emotion's shape")
	mi.queue_free()


func test_a_2d_mouth_shows_the_frame_of_the_dominant_viseme() -> void:
	var frames := SpriteFrames.new()
	for i in 9:
		var img := Image.create(2, 2, false, Image.FORMAT_RGBA8)
		frames.add_frame("default", ImageTexture.create_from_image(img))
	var sprite := AnimatedSprite2D.new()
	sprite.sprite_frames = frames
	tree.root.add_child(sprite)
	var mapping := BridgeLipSyncMapping.new()
	var d := _driver()
	d.smoothing_s = 0.0
	for c in [[5, 0], [15, 7], [30, 1], [50, 2]]:  # sil, O, FF, nn
		d.update(0.016, "sp-1", c[0])
		eq(d.apply_to_sprite(sprite, mapping), c[1], "frame at %d ms" % c[0])
		eq(sprite.frame, c[1], "sprite shows it at %d ms" % c[0])
	sprite.queue_free()
