// Microphone frames from the engine's capture device -> stt.audio chunks.
//
// Capture devices hand over float frames at their own rate and channel count (Unreal's
// Audio::FAudioCapture: 48 kHz stereo is common); the bridge wants mono pcm_s16le at the
// hello's audio_in rate (default 16000) in chunks of about 40 ms. MicChunker mixes down,
// resamples (linear, continuous across callbacks), converts and cuts chunks. It owns no
// threads: the plugin calls it on the capture thread and hands the chunks to the game thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "entitybridge/value.h"

namespace eb {

class MicChunker {
public:
    MicChunker(int target_rate = 16000, int chunk_ms = 40);

    // Interleaved float frames (-1..1). Returns the number of whole chunks now ready.
    size_t push(const float* interleaved, size_t frames, int channels, int source_rate);
    // Takes the ready chunks (pcm_s16le bytes, chunk_ms each).
    std::vector<std::string> take();
    // The payload of stt.audio for one chunk: {seq, audio}; seq counts from 0.
    Value payload(std::string chunk);
    void reset();

private:
    int target_rate_;
    size_t chunk_samples_;
    int source_rate_ = 0;
    double t_ = 1.0;
    float prev_ = 0.0f;
    int64_t seq_ = 0;
    std::string pending_;
    std::vector<std::string> ready_;
};

}  // namespace eb
