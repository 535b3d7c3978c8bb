"""Which options each provider reads from its `[modules.NAME]` table.

The config loader rejects any other key (with a "did you mean"), so a typo such as
`api_kye_env` is an error at start-up instead of a module that silently runs without its
key. A provider that learns a new option adds it here; `tests/test_config_check.py` checks
that every option the example config and docs use is known.
"""

from __future__ import annotations

#: Every module table has these two; they say which provider the rest belongs to.
MODULE_KEYS = frozenset({"kind", "provider"})

#: Options of `bridge.providers.http` (timeouts, retries on 429/503, connection pool).
HTTP = frozenset({"timeout", "connect_timeout", "max_connections", "max_retries", "max_retry_after"})
#: Sampling options an LLM module passes on (`bridge.providers.llm._common.SAMPLING_KEYS`).
SAMPLING = frozenset({"temperature", "max_tokens", "top_p", "stop"})


def _secret(*names: str) -> frozenset[str]:
    """A secret may be given inline or, better, as the name of an environment variable."""
    return frozenset(n for name in names for n in (name, f"{name}_env"))


_ELEVENLABS_COMMON = frozenset(
    {"voice", "model", "output_format", "voice_settings", "language", "alignment", "alignment_times"}
)

#: (kind, provider) -> the option keys that provider reads.
OPTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("llm", "openai"): frozenset({"base_url", "model", "extra_body", "tools"}) | _secret("api_key") | SAMPLING | HTTP,
    ("llm", "textgen"): frozenset({"base_url", "model", "mode", "character", "name1", "name2", "preset", "extra"})
    | _secret("api_key")
    | SAMPLING
    | HTTP,
    ("llm", "kindroid"): frozenset({"ai_id", "base_url", "stream"}) | _secret("api_key") | HTTP,
    ("llm", "kajiwoto"): frozenset({"room_id", "username", "kaji_id", "graphql_url", "socket_url", "origin"})
    | _secret("auth_token", "password")
    | HTTP,
    ("llm", "characterai"): frozenset({"character_id", "chat_id", "greeting", "rest_url", "ws_url"}) | _secret("token") | HTTP,
    ("llm", "local"): frozenset({"model", "model_path", "n_ctx", "n_threads", "extra_buffers", "max_sentences", "repeat_penalty", "no_echo", "seed", "stream_first_clause"})
    | SAMPLING,
    ("llm", "echo"): frozenset({"replies", "first_token_ms", "token_ms", "fail"}),
    # `ws_url` belongs to elevenlabs_realtime; accepted here so one table can switch between the two.
    ("tts", "elevenlabs"): frozenset({"base_url", "ws_url", "optimize_streaming_latency"}) | _ELEVENLABS_COMMON | _secret("api_key") | HTTP,
    ("tts", "elevenlabs_realtime"): frozenset(
        {"base_url", "ws_url", "chunk_length_schedule", "inactivity_timeout", "stream_text", "stream_first_words"}
    )
    | _ELEVENLABS_COMMON
    | _secret("api_key")
    | HTTP,
    ("tts", "openai"): frozenset(
        {"base_url", "model", "voice", "response_format", "sample_rate", "speed", "instructions", "extra_body"}
    )
    | _secret("api_key")
    | HTTP,
    ("tts", "harmonyspeech"): frozenset(
        {
            "base_url", "model", "mode", "voice", "language", "embedding", "embedding_file", "reference_audio",
            "embed_reference", "embed_model", "generation_options", "sample_rate",
        }
    )  # fmt: skip
    | _secret("api_key")
    | HTTP,
    ("tts", "piper"): frozenset({"model", "config", "length_scale", "speed", "speaker", "noise_scale", "noise_w", "volume", "normalize"}),
    ("tts", "espeak"): frozenset({"voice", "rate", "pitch", "range", "volume", "word_gap"}),
    ("stt", "openai"): frozenset({"base_url", "model", "language", "prompt", "allow_any_model"}) | _secret("api_key") | HTTP,
    ("stt", "harmonyspeech"): frozenset({"base_url", "model"}) | _secret("api_key") | HTTP,
    ("stt", "local"): frozenset({"language", "beam_size", "prompt"}),
    ("vad", "silero"): frozenset({"sample_rate"}),
    ("countenance", "tags"): frozenset({"fallback"}),
    ("countenance", "embedding"): frozenset({"use_hint"}),
    ("countenance", "llm"): frozenset({"llm", "llm_options", "timeout", "use_hint"}),
}


#: Per-module quotas (bridge/providers/quota.py) apply to every provider.
QUOTA = frozenset({"max_concurrency", "requests_per_minute", "characters_per_minute"})


def known_options(kind: str, provider: str) -> frozenset[str] | None:
    """The option keys of a provider, or None for a provider this table does not know."""
    found = OPTIONS.get((kind, provider))
    return None if found is None else found | QUOTA
