// Bench of the core's hot paths: frames decoded per second, and the cost of one 40 ms speech
// chunk through the speech buffer (decode, resample, ring, pull, reports).
//   eb_bench [seconds per figure, default 1]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "entitybridge/event.h"
#include "entitybridge/msgpack.h"
#include "entitybridge/speech_buffer.h"
#include "entitybridge/timeline.h"

namespace {

using Clock = std::chrono::steady_clock;

// Rate per second of this thread's CPU time (steadier than wall time on a shared machine);
// the wall-time rate goes to `wall_rate`.
double wall_rate = 0.0;

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

template <typename F>
double per_second(double seconds, F&& body, long& iterations) {
    iterations = 0;
    const auto start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    const auto until = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
        for (int i = 0; i < 64; ++i) body();
        iterations += 64;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    wall_rate = static_cast<double>(iterations) / elapsed;
    return static_cast<double>(iterations) / (thread_cpu_seconds() - cpu_start);
}

eb::Event audio_chunk(int rate, int seq) {
    eb::Event e;
    e.type = "ai.speech.audio";
    e.id = "b" + std::to_string(seq);
    e.entity = "npc-innkeeper";
    e.ref = "u1";
    const int samples = rate / 25;  // 40 ms
    std::string pcm(static_cast<size_t>(samples) * 2, '\0');
    for (int i = 0; i < samples; ++i) {
        const auto v = static_cast<int16_t>(8000.0 * std::sin(2.0 * M_PI * 220.0 * (seq * samples + i) / rate));
        pcm[2 * i] = static_cast<char>(v & 0xff);
        pcm[2 * i + 1] = static_cast<char>((v >> 8) & 0xff);
    }
    e.payload.set("speech", "sp-1");
    e.payload.set("seq", seq);
    e.payload.set("t", seq * 40);
    e.payload.set("audio", eb::Value::bin(std::move(pcm)));
    eb::Value visemes = eb::Value::array();
    for (int k = 0; k < 3; ++k) {
        eb::Value key = eb::Value::array();
        key.push(seq * 40 + k * 13);
        key.push(k == 0 ? "aa" : k == 1 ? "O" : "FF");
        key.push(0.7);
        visemes.push(key);
    }
    e.payload.set("visemes", visemes);
    eb::Value volume = eb::Value::array();
    for (int k = 0; k < 4; ++k) volume.push(0.25 * k);
    e.payload.set("volume", volume);
    return e;
}

}  // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
    long n = 0;

    eb::Event text;
    text.type = "ai.text";
    text.id = "b101";
    text.entity = "npc-innkeeper";
    text.ref = "u1";
    text.payload.set("delta", "Of course! ");
    const auto text_frame = eb::encode_frame(text, eb::Framing::MsgPack);
    const auto text_json = eb::encode_frame(text, eb::Framing::Json);
    const auto audio_frame = eb::encode_frame(audio_chunk(24000, 0), eb::Framing::MsgPack);
    const auto audio_json = eb::encode_frame(audio_chunk(24000, 0), eb::Framing::Json);

    eb::Event out;
    double r = per_second(seconds, [&] { eb::decode_frame(text_frame.data(), text_frame.size(), true, out); }, n);
    std::printf("(rates per CPU-second of the bench thread; wall-time rate in brackets)\n");
    std::printf("decode ai.text msgpack (%zu B): %.0f frames/s [%.0f]\n", text_frame.size(), r, wall_rate);
    r = per_second(seconds, [&] { eb::decode_frame(text_json.data(), text_json.size(), false, out); }, n);
    std::printf("decode ai.text json (%zu B): %.0f frames/s [%.0f]\n", text_json.size(), r, wall_rate);
    r = per_second(seconds, [&] { eb::decode_frame(audio_frame.data(), audio_frame.size(), true, out); }, n);
    std::printf("decode ai.speech.audio 40 ms @24k msgpack (%zu B): %.0f frames/s [%.0f]\n", audio_frame.size(), r, wall_rate);
    r = per_second(seconds, [&] { eb::decode_frame(audio_json.data(), audio_json.size(), false, out); }, n);
    std::printf("decode ai.speech.audio 40 ms @24k json (%zu B): %.0f frames/s [%.0f]\n", audio_json.size(), r, wall_rate);
    const eb::Event audio_event = audio_chunk(24000, 0);
    r = per_second(seconds, [&] { auto b = eb::encode_frame(audio_event, eb::Framing::MsgPack); (void)b; }, n);
    std::printf("encode ai.speech.audio 40 ms msgpack: %.0f frames/s [%.0f]\n", r, wall_rate);

    // One 40 ms chunk through the speech buffer: push (convert + resample) and the audio
    // callback pulling it in 480-sample blocks, plus the game thread's report poll.
    struct Case { int from, to; };
    for (Case c : {Case{24000, 48000}, Case{24000, 24000}, Case{16000, 48000}}) {
        eb::SpeechBuffer buffer(c.to, static_cast<size_t>(c.to));
        buffer.begin_segment("sp-1", c.from);
        const eb::Event chunk = audio_chunk(c.from, 1);
        const std::string& pcm = chunk.payload.get("audio").as_bin();
        std::vector<float> block(480);
        r = per_second(seconds, [&] {
            buffer.push_pcm16("sp-1", reinterpret_cast<const uint8_t*>(pcm.data()), pcm.size());
            while (buffer.pull(block.data(), block.size()) == block.size()) {}
            buffer.poll_reports();
        }, n);
        std::printf("speech buffer, one 40 ms chunk %d -> %d Hz (push + pull + reports): %.2f us/chunk [%.2f] (%.4f%% of the chunk's 40 ms)\n",
                    c.from, c.to, 1e6 / r, 1e6 / wall_rate, 100.0 * (1e6 / r) / 40000.0);
    }

    // The whole per-chunk path on the game thread: decode the frame, feed buffer and timeline.
    {
        eb::SpeechBuffer buffer(48000, 48000);
        eb::Timeline timeline;
        buffer.begin_segment("sp-1", 24000);
        std::vector<float> block(480);
        r = per_second(seconds, [&] {
            eb::Event e;
            eb::decode_frame(audio_frame.data(), audio_frame.size(), true, e);
            buffer.handle(e);
            timeline.handle(e);
            while (buffer.pull(block.data(), block.size()) == block.size()) {}
            timeline.weights_at("sp-1", 20);
            timeline.drop("sp-1");  // keep the keyframe list from growing across iterations
        }, n);
        std::printf("full chunk path (decode msgpack + speech buffer 24k->48k + visemes + pull): %.2f us/chunk [%.2f]\n", 1e6 / r, 1e6 / wall_rate);
    }
    return 0;
}
