// Timeline and Smoother: see timeline.h.
#include "entitybridge/timeline.h"

#include <algorithm>
#include <cmath>

namespace eb {

const char* const kVisemeNames[kVisemeCount] = {"sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS",
                                                "nn",  "RR", "aa", "E",  "I",  "O",  "U"};

int viseme_index(const std::string& name) {
    for (int i = 0; i < kVisemeCount; ++i)
        if (name == kVisemeNames[i]) return i;
    return -1;
}

bool Timeline::handle(const Event& event) {
    const Value& p = event.payload;
    if (event.type == "ai.speech.audio") {
        add_visemes(p.str_or("speech"), p.get("visemes"));
    } else if (event.type == "ai.countenance") {
        Expression e;
        e.emotion = p.str_or("emotion", "neutral");
        e.expression = p.str_or("expression");
        e.intensity = static_cast<float>(p.get("intensity").as_double(1.0));
        const Value& t = p.get("t");
        add_expression(p.str_or("speech"), t.is_number() ? static_cast<int64_t>(t.as_double()) : 0, e);
    } else if (event.type == "ai.speech.interrupted") {
        drop(p.str_or("speech"));
    } else {
        return false;
    }
    return true;
}

void Timeline::add_visemes(const std::string& speech, const Value& keyframes) {
    if (!keyframes.is_array()) return;
    std::vector<Key>& keys = keys_[speech];
    for (const Value& k : keyframes.items()) {
        if (!k.is_array() || k.size() < 3 || !k.at(0).is_number() || !k.at(1).is_str() || !k.at(2).is_number()) continue;
        const int index = viseme_index(k.at(1).as_str());
        if (index < 0) continue;
        const float w = std::min(1.0f, std::max(0.0f, static_cast<float>(k.at(2).as_double())));
        keys.push_back({static_cast<int64_t>(k.at(0).as_double()), index, w});
    }
    // Chunks arrive in order, so this is nearly always already sorted.
    std::stable_sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) { return a.t < b.t; });
}

void Timeline::add_expression(const std::string& speech, int64_t t, Expression e) {
    if (speech.empty()) {
        now_ = std::move(e);
        return;
    }
    std::vector<Mood>& moods = moods_[speech];
    moods.push_back({t, std::move(e)});
    std::stable_sort(moods.begin(), moods.end(), [](const Mood& a, const Mood& b) { return a.t < b.t; });
}

void Timeline::drop(const std::string& speech) {
    keys_.erase(speech);
    moods_.erase(speech);
}

void Timeline::clear() {
    keys_.clear();
    moods_.clear();
}

size_t Timeline::keyframe_count(const std::string& speech) const {
    auto it = keys_.find(speech);
    return it == keys_.end() ? 0 : it->second.size();
}

VisemeWeights Timeline::weights_at(const std::string& speech, int64_t ms) const {
    VisemeWeights w;
    w.fill(0.0f);
    auto it = keys_.find(speech);
    if (it == keys_.end() || it->second.empty() || ms < it->second.front().t) {
        w[0] = 1.0f;  // silence
        return w;
    }
    const std::vector<Key>& keys = it->second;
    // The last key at or before ms.
    auto next = std::upper_bound(keys.begin(), keys.end(), ms, [](int64_t v, const Key& k) { return v < k.t; });
    const Key& cur = *(next - 1);
    float alpha = 1.0f;
    if (blend_ms_ > 0 && next - 1 != keys.begin()) {
        alpha = std::min(1.0f, static_cast<float>(ms - cur.t) / static_cast<float>(blend_ms_));
    }
    w[cur.viseme] += cur.weight * alpha;
    if (alpha < 1.0f) {
        const Key& prev = *(next - 2);
        w[prev.viseme] += prev.weight * (1.0f - alpha);
    }
    for (float& v : w) v = std::min(1.0f, v);
    return w;
}

Expression Timeline::expression_at(const std::string& speech, int64_t ms) const {
    auto it = moods_.find(speech);
    if (it == moods_.end()) return now_;
    const std::vector<Mood>& moods = it->second;
    auto next = std::upper_bound(moods.begin(), moods.end(), ms, [](int64_t v, const Mood& m) { return v < m.t; });
    if (next == moods.begin()) return now_;
    Expression e = (next - 1)->e;
    if (blend_ms_ > 0) {
        const float alpha = std::min(1.0f, static_cast<float>(ms - (next - 1)->t) / static_cast<float>(blend_ms_));
        e.intensity *= alpha;
    }
    return e;
}

const VisemeWeights& Smoother::step(const VisemeWeights& target, float dt_ms) {
    const float k = tau_ms_ <= 0.0f ? 1.0f : 1.0f - std::exp(-std::max(0.0f, dt_ms) / tau_ms_);
    for (int i = 0; i < kVisemeCount; ++i) value_[i] += (target[i] - value_[i]) * k;
    return value_;
}

}  // namespace eb
