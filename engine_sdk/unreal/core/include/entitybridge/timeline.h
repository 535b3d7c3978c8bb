// Lip sync and facial expression from the bridge's keyframes, sampled at a playback time.
//
// ai.speech.audio chunks carry viseme keyframes [t, name, weight] (t in ms from the segment's
// start, names from the Oculus/Meta 15); ai.countenance carries an emotion tied to a point of a
// segment (or "now"). The timeline answers "what are the 15 weights / the expression at
// time t of segment s", crossfading each keyframe in over `blend_ms` from the previous one,
// and a Smoother eases those targets frame by frame so a morph target never jumps.
// Pure functions of their input: the game thread samples them with SpeechBuffer::playhead().
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "entitybridge/event.h"

namespace eb {

constexpr int kVisemeCount = 15;
extern const char* const kVisemeNames[kVisemeCount];  // sil PP FF TH DD kk CH SS nn RR aa E I O U
int viseme_index(const std::string& name);  // -1 when not one of the 15

using VisemeWeights = std::array<float, kVisemeCount>;

struct Expression {
    std::string emotion = "neutral";
    std::string expression;  // the character's preset name
    float intensity = 0.0f;
};

class Timeline {
public:
    explicit Timeline(int blend_ms = 60) : blend_ms_(blend_ms) {}

    // Feeds ai.speech.audio (visemes), ai.countenance, ai.speech.interrupted (drops the
    // segment); false for other events.
    bool handle(const Event& event);
    // `keyframes` is the chunk's `visemes` array; malformed entries are skipped.
    void add_visemes(const std::string& speech, const Value& keyframes);
    void add_expression(const std::string& speech, int64_t t, Expression e);  // speech "" = now
    void drop(const std::string& speech);
    void clear();

    VisemeWeights weights_at(const std::string& speech, int64_t ms) const;
    // The expression in effect, its intensity ramped in over blend_ms.
    Expression expression_at(const std::string& speech, int64_t ms) const;
    size_t keyframe_count(const std::string& speech) const;

private:
    struct Key {
        int64_t t;
        int viseme;
        float weight;
    };
    struct Mood {
        int64_t t;
        Expression e;
    };
    int blend_ms_;
    std::map<std::string, std::vector<Key>> keys_;  // sorted by t
    std::map<std::string, std::vector<Mood>> moods_;
    Expression now_;
};

// Frame-rate independent easing toward target weights (exponential, time constant tau).
class Smoother {
public:
    explicit Smoother(float tau_ms = 40.0f) : tau_ms_(tau_ms) { value_.fill(0.0f); }
    const VisemeWeights& step(const VisemeWeights& target, float dt_ms);
    const VisemeWeights& value() const { return value_; }

private:
    float tau_ms_;
    VisemeWeights value_;
};

}  // namespace eb
