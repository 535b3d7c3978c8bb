"""Backend modules (LLM, TTS, STT, VAD, countenance) behind the interfaces in `base`."""
