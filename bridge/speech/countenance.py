"""Turns per-segment moods into a face that changes deliberately, not one that flickers.

Classifiers judge each spoken segment alone, so a character's mood as read line by line
jumps about ("I'm glad you came." happy, "The road was long." neutral, "Wolves, though!"
afraid). A face that follows every jump looks twitchy. `MoodSmoother` keeps a smoothed
level per emotion and changes the shown emotion only for a good reason.

Rules, applied on each `update(mood, t_ms)`:
0. First show. When the face is at rest (showing neutral, every level below
   `min_intensity`), an emotion's level starts at the mood's intensity, and at least at
   `min_intensity`, instead of a fraction of it: smoothing is there against flicker between
   emotions, and the first emotion a character shows is not flicker. Halving it hid a mild
   first line entirely (a 0.25 "afraid" read 0.125, below `min_intensity`) and showed a
   strong one at half strength. A classifier that picked an emotion at all is shown at
   least faintly; only a neutral mood (intensity 0) keeps the face at rest.
1. Levels. Every non-neutral emotion has a level in 0..1, moved a fraction `alpha` toward
   its target: the mood's intensity for the mood's emotion, 0 for the others (a neutral
   mood pulls every level toward 0). This is exponential smoothing per segment.
2. Leader. The emotion with the highest level, or neutral when no level reaches
   `min_intensity`.
3. Switch. The shown emotion changes to the leader when
   - the face is at rest (neutral): it may react at once, since leaving neutral is not flicker
     (returning to neutral is slow, by rule 2 and the hold below); or
   - the leader's level beats the shown emotion's by `margin` (a decisive change); or
   - the same leader has led for at least `hold_ms` (a sustained change).
   Going back to neutral is always a sustained change (neutral has no level to win by).
The default `margin` (0.35) is just above `alpha / (2 - alpha)` (0.33 for alpha 0.5): the
largest gap two emotions reach when full-intensity inputs alternate between them, so
alternation alone never wins by margin, and the leader keeps changing, so it never wins by
hold. A sustained change wins within a few segments: at the second at full intensity (by
margin), or once it has led for `hold_ms` (sentences usually last longer than that).

The shown intensity is the smoothed level of the shown emotion; neutral shows 0.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.providers.base import EMOTIONS, Mood

NEUTRAL = "neutral"


class MoodSmoother:
    """Smooths a character's per-segment moods (one instance per character; not thread-safe)."""

    def __init__(self, alpha: float = 0.5, hold_ms: float = 800, min_intensity: float = 0.15, margin: float = 0.35) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if hold_ms < 0 or not 0.0 <= min_intensity <= 1.0 or margin < 0:
            raise ValueError("hold_ms and margin must be >= 0 and min_intensity in [0, 1]")
        self.alpha = alpha
        self.hold_ms = hold_ms
        self.min_intensity = min_intensity
        self.margin = margin
        self.reset()

    def reset(self) -> None:
        """Back to a face at rest (a new conversation, say)."""
        self.levels: dict[str, float] = {e: 0.0 for e in EMOTIONS if e != NEUTRAL}
        self.current = NEUTRAL
        self._challenger: str | None = None
        self._challenger_since = 0.0
        self._last_t: float | None = None

    def _level(self, emotion: str) -> float:
        return self.levels.get(emotion, 0.0)

    def leader(self) -> str:
        best = max(self.levels, key=lambda e: (self.levels[e], -EMOTIONS.index(e)))
        return best if self.levels[best] >= self.min_intensity else NEUTRAL

    def update(self, mood: Mood, t_ms: float) -> Mood:
        """Feed one segment's mood at time `t_ms` (any monotonic clock); returns the mood to show."""
        if self._last_t is not None and t_ms < self._last_t:
            t_ms = self._last_t  # a clock that steps back must not reset the hold
        self._last_t = t_ms
        # An unknown emotion reads as neutral: a cosmetic channel should not fail a turn.
        target_emotion = mood.emotion if mood.emotion in self.levels else NEUTRAL
        target = min(1.0, max(0.0, float(mood.intensity)))
        if self.current == NEUTRAL and target_emotion != NEUTRAL and target > 0 and self.leader() == NEUTRAL:
            target = max(target, self.min_intensity)  # rule 0
            self.levels[target_emotion] = max(self.levels[target_emotion], target)
        for emotion, level in self.levels.items():
            goal = target if emotion == target_emotion else 0.0
            self.levels[emotion] = level + self.alpha * (goal - level)

        leader = self.leader()
        if leader == self.current:
            self._challenger = None
        else:
            if leader != self._challenger:
                self._challenger, self._challenger_since = leader, t_ms
            decisive = self._level(leader) - self._level(self.current) >= self.margin
            sustained = t_ms - self._challenger_since >= self.hold_ms
            if self.current == NEUTRAL or decisive or sustained:
                self.current, self._challenger = leader, None
        return self.shown()

    def shown(self) -> Mood:
        """The mood on the face now."""
        if self.current == NEUTRAL:
            return Mood(NEUTRAL, 0.0)
        return Mood(self.current, round(self._level(self.current), 3))


def expression_for(emotion: str, presets: Mapping[str, str]) -> str:
    """The character's expression preset for `emotion` (config `expressions`); the emotion's
    own name when the character defines none, so engines can map names themselves."""
    preset = presets.get(emotion)
    return preset if isinstance(preset, str) and preset else emotion
