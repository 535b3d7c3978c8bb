// SpeechBuffer: see speech_buffer.h.
#include "entitybridge/speech_buffer.h"

#include <algorithm>
#include <cstring>

namespace eb {

namespace {
size_t next_pow2(size_t n) {
    size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}
}  // namespace

SpeechBuffer::SpeechBuffer(int output_rate, size_t capacity_samples)
    : output_rate_(output_rate > 0 ? output_rate : 48000),
      ring_(next_pow2(capacity_samples ? capacity_samples : static_cast<size_t>(output_rate_) * 4)),
      mask_(ring_.size() - 1) {}

Value SpeechBuffer::Report::payload() const {
    Value p = Value::map();
    p.set("speech", speech);
    if (kind == Kind::Progress) p.set("played_ms", played_ms);
    return p;
}

SpeechBuffer::Segment* SpeechBuffer::find(const std::string& speech) {
    for (auto it = segments_.rbegin(); it != segments_.rend(); ++it)
        if (it->speech == speech) return &*it;
    return nullptr;
}

bool SpeechBuffer::handle(const Event& event) {
    const Value& p = event.payload;
    if (event.type == "ai.speech.start") {
        begin_segment(p.str_or("speech"), static_cast<int>(p.get("sample_rate").as_int(24000)));
    } else if (event.type == "ai.speech.audio") {
        const std::string& audio = p.get("audio").as_bin();
        push_pcm16(p.str_or("speech"), reinterpret_cast<const uint8_t*>(audio.data()), audio.size());
    } else if (event.type == "ai.speech.end") {
        end_segment(p.str_or("speech"));
    } else if (event.type == "ai.speech.interrupted") {
        flush();
    } else {
        return false;
    }
    return true;
}

void SpeechBuffer::begin_segment(const std::string& speech, int source_rate) {
    if (find(speech) != nullptr) return;
    Segment s;
    s.speech = speech;
    s.start = write_sample_count();
    s.source_rate = source_rate > 0 ? source_rate : 24000;
    segments_.push_back(std::move(s));
    open_segment_.store(true, std::memory_order_release);
}

size_t SpeechBuffer::push_pcm16(const std::string& speech, const uint8_t* data, size_t bytes) {
    Segment* seg = find(speech);
    if (seg == nullptr) {
        begin_segment(speech, output_rate_);  // audio without a start: assume the output rate
        seg = find(speech);
    }
    if (seg->end != UINT64_MAX) return 0;  // after its end: ignore
    const size_t n = bytes / 2;
    if (n == 0) return 0;
    const double step = static_cast<double>(seg->source_rate) / output_rate_;
    scratch_.clear();
    scratch_.reserve(static_cast<size_t>(static_cast<double>(n) / step) + 2);
    auto sample = [&](size_t k) -> float {  // k = 0 is the previous chunk's last sample
        if (k == 0) return seg->prev;
        const uint8_t* b = data + 2 * (k - 1);
        const int16_t v = static_cast<int16_t>(static_cast<uint16_t>(b[0]) | static_cast<uint16_t>(b[1] << 8));
        return static_cast<float>(v) / 32768.0f;
    };
    double t = seg->t;
    while (t <= static_cast<double>(n)) {
        const size_t i = static_cast<size_t>(t);
        const double frac = t - static_cast<double>(i);
        const float a = sample(i);
        const float out = frac == 0.0 ? a : a + static_cast<float>(frac) * (sample(i + 1) - a);
        scratch_.push_back(out);
        t += step;
    }
    seg->t = t - static_cast<double>(n);
    seg->prev = sample(n);

    const uint64_t w = write_.load(std::memory_order_relaxed);
    const uint64_t r = std::max(read_.load(std::memory_order_acquire), flush_to_.load(std::memory_order_relaxed));
    const size_t free_space = ring_.size() - static_cast<size_t>(w - r);
    const size_t count = std::min(free_space, scratch_.size());
    dropped_ += scratch_.size() - count;
    for (size_t k = 0; k < count; ++k) ring_[(w + k) & mask_] = scratch_[k];
    write_.store(w + count, std::memory_order_release);
    return count;
}

void SpeechBuffer::end_segment(const std::string& speech) {
    Segment* seg = find(speech);
    if (seg == nullptr || seg->end != UINT64_MAX) return;
    seg->end = write_sample_count();
    open_segment_.store(false, std::memory_order_release);
}

int64_t SpeechBuffer::flush() {
    const uint64_t r = read_.load(std::memory_order_acquire);
    int64_t played = -1;
    for (const Segment& s : segments_) {
        if (r >= s.start && r < s.end) {
            played = static_cast<int64_t>((r - s.start) * 1000 / static_cast<uint64_t>(output_rate_));
            break;
        }
    }
    segments_.clear();
    open_segment_.store(false, std::memory_order_release);
    flush_to_.store(write_.load(std::memory_order_relaxed), std::memory_order_release);
    return played;
}

std::vector<SpeechBuffer::Report> SpeechBuffer::poll_reports() {
    std::vector<Report> out;
    const uint64_t r = read_.load(std::memory_order_acquire);
    while (!segments_.empty()) {
        Segment& s = segments_.front();
        if (r <= s.start) break;
        const uint64_t played_samples = std::min(r, s.end) - s.start;
        const int64_t ms = static_cast<int64_t>(played_samples * 1000 / static_cast<uint64_t>(output_rate_));
        const bool done = s.end != UINT64_MAX && r >= s.end;
        if (done) {
            if (ms > s.reported_ms) out.push_back({Report::Kind::Progress, s.speech, ms});
            out.push_back({Report::Kind::Done, s.speech, ms});
            segments_.pop_front();
            continue;
        }
        if (s.reported_ms < 0 || ms - s.reported_ms >= progress_interval_ms_) {
            out.push_back({Report::Kind::Progress, s.speech, ms});
            s.reported_ms = ms;
        }
        break;
    }
    return out;
}

bool SpeechBuffer::playhead(std::string& speech, int64_t& ms) const {
    const uint64_t r = read_.load(std::memory_order_acquire);
    for (const Segment& s : segments_) {
        if (r >= s.start && r < s.end && r < write_.load(std::memory_order_acquire)) {
            speech = s.speech;
            ms = static_cast<int64_t>((r - s.start) * 1000 / static_cast<uint64_t>(output_rate_));
            return true;
        }
    }
    return false;
}

size_t SpeechBuffer::buffered() const {
    const uint64_t r = std::max(read_.load(std::memory_order_acquire), flush_to_.load(std::memory_order_acquire));
    const uint64_t w = write_.load(std::memory_order_acquire);
    return w > r ? static_cast<size_t>(w - r) : 0;
}

size_t SpeechBuffer::pull(float* out, size_t frames) {
    uint64_t r = read_.load(std::memory_order_relaxed);
    const uint64_t skip = flush_to_.load(std::memory_order_acquire);
    if (skip > r) r = skip;
    const uint64_t w = write_.load(std::memory_order_acquire);
    const size_t available = static_cast<size_t>(w - r);
    const size_t n = std::min(available, frames);
    const size_t first = std::min(n, ring_.size() - static_cast<size_t>(r & mask_));
    std::memcpy(out, &ring_[r & mask_], first * sizeof(float));
    if (n > first) std::memcpy(out + first, &ring_[0], (n - first) * sizeof(float));
    if (n < frames) {
        std::memset(out + n, 0, (frames - n) * sizeof(float));
        if (open_segment_.load(std::memory_order_acquire)) underruns_.fetch_add(1, std::memory_order_relaxed);
    }
    read_.store(r + n, std::memory_order_release);
    return n;
}

}  // namespace eb
