// MicChunker: see mic.h.
#include "entitybridge/mic.h"

#include <algorithm>
#include <cmath>

namespace eb {

MicChunker::MicChunker(int target_rate, int chunk_ms)
    : target_rate_(target_rate > 0 ? target_rate : 16000),
      chunk_samples_(static_cast<size_t>(target_rate_) * static_cast<size_t>(chunk_ms > 0 ? chunk_ms : 40) / 1000) {}

void MicChunker::reset() {
    source_rate_ = 0;
    t_ = 1.0;
    prev_ = 0.0f;
    seq_ = 0;
    pending_.clear();
    ready_.clear();
}

size_t MicChunker::push(const float* interleaved, size_t frames, int channels, int source_rate) {
    if (frames == 0 || channels <= 0 || source_rate <= 0 || interleaved == nullptr) return ready_.size();
    if (source_rate != source_rate_) {  // a new device or rate: restart the interpolation
        source_rate_ = source_rate;
        t_ = 1.0;
        prev_ = 0.0f;
    }
    auto mono = [&](size_t k) -> float {  // k = 0 is the previous callback's last frame
        if (k == 0) return prev_;
        const float* f = interleaved + (k - 1) * static_cast<size_t>(channels);
        float sum = 0.0f;
        for (int c = 0; c < channels; ++c) sum += f[c];
        return sum / static_cast<float>(channels);
    };
    const double step = static_cast<double>(source_rate) / target_rate_;
    double t = t_;
    while (t <= static_cast<double>(frames)) {
        const size_t i = static_cast<size_t>(t);
        const double frac = t - static_cast<double>(i);
        const float a = mono(i);
        float v = frac == 0.0 ? a : a + static_cast<float>(frac) * (mono(i + 1) - a);
        v = std::max(-1.0f, std::min(1.0f, v));
        const int16_t s = static_cast<int16_t>(std::lrint(v * 32767.0f));
        pending_ += static_cast<char>(static_cast<uint16_t>(s) & 0xff);
        pending_ += static_cast<char>((static_cast<uint16_t>(s) >> 8) & 0xff);
        if (pending_.size() == 2 * chunk_samples_) {
            ready_.push_back(std::move(pending_));
            pending_.clear();
        }
        t += step;
    }
    t_ = t - static_cast<double>(frames);
    prev_ = mono(frames);
    return ready_.size();
}

std::vector<std::string> MicChunker::take() {
    std::vector<std::string> out;
    out.swap(ready_);
    return out;
}

Value MicChunker::payload(std::string chunk) {
    Value p = Value::map();
    p.set("seq", seq_++);
    p.set("audio", Value::bin(std::move(chunk)));
    return p;
}

}  // namespace eb
