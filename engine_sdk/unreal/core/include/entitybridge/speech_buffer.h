// Speech audio from the bridge -> float samples pulled by the engine's audio callback.
//
// Chunks (pcm_s16le at the segment's sample rate) are converted, resampled to the output rate
// (linear interpolation, continuous across chunks of a segment) and written into a lock-free
// single-producer/single-consumer ring buffer. The producer side (push, flush, reports) runs
// on the game thread; pull() runs on the audio thread (Unreal's USoundWaveProcedural
// callback) and never blocks or allocates: when the buffer runs dry mid-segment it plays
// silence and counts an underrun. The producer side turns the consumer's read position into
// the protocol's playback.progress / playback.done reports, and flush() (on interrupt)
// drops what is buffered and says how much of the segment was heard.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "entitybridge/event.h"

namespace eb {

class SpeechBuffer {
public:
    // `capacity_samples` is rounded up to a power of two; the default holds 4 s.
    explicit SpeechBuffer(int output_rate, size_t capacity_samples = 0);
    SpeechBuffer(const SpeechBuffer&) = delete;
    SpeechBuffer& operator=(const SpeechBuffer&) = delete;

    // ---- game thread
    // Feeds ai.speech.start / ai.speech.audio / ai.speech.end / ai.speech.interrupted;
    // returns false for any other event.
    bool handle(const Event& event);
    void begin_segment(const std::string& speech, int source_rate);
    // Returns the output samples written; samples beyond the free space are dropped (counted).
    size_t push_pcm16(const std::string& speech, const uint8_t* data, size_t bytes);
    void end_segment(const std::string& speech);
    // Drops everything not yet played. Returns the played_ms of the segment being played
    // (-1 when none), the number to send with entity.interrupt.
    int64_t flush();

    struct Report {
        enum class Kind { Progress, Done } kind;
        std::string speech;
        int64_t played_ms;
        // The payload to send as playback.progress / playback.done.
        Value payload() const;
        const char* type() const { return kind == Kind::Progress ? "playback.progress" : "playback.done"; }
    };
    // Progress every `progress_interval_ms` of playback, and Done once an ended segment has
    // been played to its end.
    std::vector<Report> poll_reports();
    void set_progress_interval_ms(int64_t ms) { progress_interval_ms_ = ms; }

    // The segment under the playhead and the time in it (for lip sync); false when silent.
    bool playhead(std::string& speech, int64_t& ms) const;

    int output_rate() const { return output_rate_; }
    size_t buffered() const;  // samples written, not yet played
    uint64_t dropped() const { return dropped_; }

    // ---- audio thread
    // Always writes `frames` floats (silence where nothing is buffered); returns how many came
    // from speech.
    size_t pull(float* out, size_t frames);
    uint64_t underruns() const { return underruns_.load(std::memory_order_relaxed); }
    uint64_t played_samples() const { return read_.load(std::memory_order_acquire); }

private:
    struct Segment {
        std::string speech;
        uint64_t start = 0;
        uint64_t end = UINT64_MAX;  // set by end_segment
        int source_rate = 24000;
        int64_t reported_ms = -1;
        // Resampler state: the previous source sample and the next output position.
        float prev = 0.0f;
        double t = 1.0;
    };
    Segment* find(const std::string& speech);
    uint64_t write_sample_count() const { return write_.load(std::memory_order_relaxed); }

    const int output_rate_;
    std::vector<float> ring_;
    size_t mask_;
    std::atomic<uint64_t> write_{0};  // producer-owned
    std::atomic<uint64_t> read_{0};  // consumer-owned
    std::atomic<uint64_t> flush_to_{0};  // producer asks the consumer to skip to here
    std::atomic<bool> open_segment_{false};  // a segment is streaming: running dry is an underrun
    std::atomic<uint64_t> underruns_{0};
    uint64_t dropped_ = 0;
    int64_t progress_interval_ms_ = 250;
    std::deque<Segment> segments_;
    std::vector<float> scratch_;
};

}  // namespace eb
