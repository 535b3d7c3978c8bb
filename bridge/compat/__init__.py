"""Other wire protocols translated onto our entities and turns (Harmony Link)."""
