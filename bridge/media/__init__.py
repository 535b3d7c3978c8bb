"""Audio primitives shared by the providers and the speech stage: PCM, decoding, phonemes."""
