// Unit tests of the speech buffer (conversion, resampling, underruns, reports, flush, the
// audio-thread handoff) and of the viseme/expression timeline.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "entitybridge/speech_buffer.h"
#include "entitybridge/timeline.h"

namespace {

std::vector<uint8_t> pcm16(const std::vector<int16_t>& samples) {
    std::vector<uint8_t> out;
    for (int16_t s : samples) {
        out.push_back(static_cast<uint8_t>(s & 0xff));
        out.push_back(static_cast<uint8_t>((static_cast<uint16_t>(s) >> 8) & 0xff));
    }
    return out;
}

std::vector<int16_t> tone(double hz, int rate, size_t n, double amplitude = 12000.0) {
    std::vector<int16_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(amplitude * std::sin(2.0 * M_PI * hz * static_cast<double>(i) / rate));
    return out;
}

// Frequency from rising zero crossings, interpolated to sub-sample precision.
double pitch(const std::vector<float>& x, int rate) {
    std::vector<double> crossings;
    for (size_t i = 1; i < x.size(); ++i) {
        if (x[i - 1] < 0.0f && x[i] >= 0.0f) crossings.push_back(static_cast<double>(i - 1) + x[i - 1] / (x[i - 1] - x[i]));
    }
    if (crossings.size() < 2) return 0.0;
    return (static_cast<double>(crossings.size()) - 1.0) * rate / (crossings.back() - crossings.front());
}

std::vector<float> pull_all(eb::SpeechBuffer& buffer, size_t block = 480) {
    std::vector<float> out, tmp(block);
    for (;;) {
        const size_t got = buffer.pull(tmp.data(), block);
        out.insert(out.end(), tmp.begin(), tmp.begin() + static_cast<long>(got));
        if (got < block) return out;
    }
}

}  // namespace

TEST_CASE("speech buffer: same rate passes samples through exactly, across chunks") {
    eb::SpeechBuffer buffer(24000);
    const auto samples = tone(300.0, 24000, 2000);
    buffer.begin_segment("sp-1", 24000);
    const auto bytes = pcm16(samples);
    buffer.push_pcm16("sp-1", bytes.data(), 1000);  // chunk edges mid-stream
    buffer.push_pcm16("sp-1", bytes.data() + 1000, bytes.size() - 1000);
    buffer.end_segment("sp-1");
    const auto out = pull_all(buffer);
    REQUIRE(out.size() == samples.size());
    for (size_t i = 0; i < samples.size(); ++i) REQUIRE(out[i] == static_cast<float>(samples[i]) / 32768.0f);
}

TEST_CASE("speech buffer: resampling keeps the pitch and the duration") {
    struct Case { int from, to; double hz; };
    for (Case c : {Case{16000, 48000, 440.0}, Case{24000, 48000, 1000.0}, Case{24000, 16000, 523.25}, Case{22050, 44100, 220.0}}) {
        CAPTURE(c.from);
        CAPTURE(c.to);
        eb::SpeechBuffer buffer(c.to, static_cast<size_t>(c.to) * 2);
        const size_t n = static_cast<size_t>(c.from);  // 1 s
        const auto bytes = pcm16(tone(c.hz, c.from, n));
        buffer.begin_segment("s", c.from);
        const size_t chunk = static_cast<size_t>(c.from) / 25 * 2;  // 40 ms chunks
        size_t written = 0;
        for (size_t off = 0; off < bytes.size(); off += chunk)
            written += buffer.push_pcm16("s", bytes.data() + off, std::min(chunk, bytes.size() - off));
        buffer.end_segment("s");
        const auto out = pull_all(buffer);
        CHECK(out.size() == written);
        CHECK(std::abs(static_cast<double>(out.size()) - c.to) <= 2.0 * c.to / c.from + 1);
        CHECK(pitch(out, c.to) == doctest::Approx(c.hz).epsilon(0.002));
    }
}

TEST_CASE("speech buffer: running dry mid-segment is an underrun, draining at the end is not") {
    eb::SpeechBuffer buffer(16000);
    std::vector<float> block(480, 1.0f);
    CHECK(buffer.pull(block.data(), block.size()) == 0);
    CHECK(buffer.underruns() == 0);  // silence before any speech
    CHECK(block[0] == 0.0f);
    buffer.begin_segment("a", 16000);
    const auto bytes = pcm16(tone(200.0, 16000, 100));
    buffer.push_pcm16("a", bytes.data(), bytes.size());
    CHECK(buffer.pull(block.data(), block.size()) == 100);
    CHECK(block[479] == 0.0f);
    CHECK(buffer.underruns() == 1);
    buffer.push_pcm16("a", bytes.data(), bytes.size());
    buffer.end_segment("a");
    CHECK(buffer.pull(block.data(), block.size()) == 100);
    CHECK(buffer.underruns() == 1);
}

TEST_CASE("speech buffer: playback.progress while playing, playback.done at the end") {
    eb::SpeechBuffer buffer(16000);
    const auto bytes = pcm16(tone(200.0, 16000, 16000));  // 1 s
    buffer.begin_segment("sp-1", 16000);
    buffer.push_pcm16("sp-1", bytes.data(), bytes.size());
    buffer.end_segment("sp-1");
    CHECK(buffer.poll_reports().empty());  // nothing played yet
    std::vector<float> block(4000);
    buffer.pull(block.data(), block.size());  // 250 ms
    std::string speech;
    int64_t at = 0;
    REQUIRE(buffer.playhead(speech, at));
    CHECK(speech == "sp-1");
    CHECK(at == 250);
    auto reports = buffer.poll_reports();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].kind == eb::SpeechBuffer::Report::Kind::Progress);
    CHECK(reports[0].played_ms == 250);
    CHECK(reports[0].payload().get("played_ms").as_int() == 250);
    CHECK(std::string(reports[0].type()) == "playback.progress");
    buffer.pull(block.data(), 800);  // 300 ms: under the 250 ms interval since the last report
    CHECK(buffer.poll_reports().empty());
    for (int i = 0; i < 4; ++i) buffer.pull(block.data(), block.size());
    reports = buffer.poll_reports();
    REQUIRE(reports.size() == 2);
    CHECK(reports[0].played_ms == 1000);
    CHECK(reports[1].kind == eb::SpeechBuffer::Report::Kind::Done);
    CHECK(reports[1].payload().str_or("speech") == "sp-1");
    CHECK(buffer.poll_reports().empty());
    CHECK_FALSE(buffer.playhead(speech, at));
}

TEST_CASE("speech buffer: flush drops what is buffered and says what was heard") {
    eb::SpeechBuffer buffer(16000);
    const auto bytes = pcm16(tone(200.0, 16000, 16000));
    buffer.begin_segment("sp-1", 16000);
    buffer.push_pcm16("sp-1", bytes.data(), bytes.size());
    std::vector<float> block(8000);
    buffer.pull(block.data(), block.size());
    CHECK(buffer.flush() == 500);
    CHECK(buffer.buffered() == 0);
    CHECK(buffer.pull(block.data(), block.size()) == 0);
    CHECK(buffer.poll_reports().empty());
    CHECK(buffer.flush() == -1);
    // The next segment plays normally.
    buffer.begin_segment("sp-2", 16000);
    buffer.push_pcm16("sp-2", bytes.data(), 200);
    buffer.end_segment("sp-2");
    CHECK(buffer.pull(block.data(), block.size()) == 100);
    const auto reports = buffer.poll_reports();
    REQUIRE(reports.size() == 2);
    CHECK(reports[1].speech == "sp-2");
}

TEST_CASE("speech buffer: a full ring drops the excess instead of overwriting") {
    eb::SpeechBuffer buffer(16000, 1024);
    const auto bytes = pcm16(tone(200.0, 16000, 1500));
    buffer.begin_segment("s", 16000);
    CHECK(buffer.push_pcm16("s", bytes.data(), bytes.size()) == 1024);
    CHECK(buffer.dropped() == 476);
    CHECK(buffer.buffered() == 1024);
}

TEST_CASE("speech buffer: producer and audio thread run concurrently without losing order") {
    eb::SpeechBuffer buffer(16000, 2048);
    const size_t total = 64000;
    std::atomic<bool> done{false};
    std::vector<float> heard;
    heard.reserve(total);
    std::thread audio([&] {
        std::vector<float> block(256);
        while (heard.size() < total) {
            // `done` is read before the pull: an empty pull after the producer finished means
            // the buffer is really drained (read after, the last chunk could still be unread).
            const bool producer_finished = done.load();
            const size_t got = buffer.pull(block.data(), block.size());
            heard.insert(heard.end(), block.begin(), block.begin() + static_cast<long>(got));
            if (got == 0) {
                if (producer_finished) break;
                std::this_thread::yield();
            }
        }
    });
    buffer.begin_segment("s", 16000);
    std::vector<int16_t> ramp(320);
    size_t sent = 0;
    while (sent < total) {
        if (buffer.buffered() + ramp.size() > 2048) {
            std::this_thread::yield();
            continue;
        }
        for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<int16_t>((sent + i) % 30000);
        const auto bytes = pcm16(ramp);
        sent += buffer.push_pcm16("s", bytes.data(), bytes.size());
    }
    buffer.end_segment("s");
    done = true;
    audio.join();
    REQUIRE(heard.size() == total);
    bool ordered = true;
    for (size_t i = 0; i < total; ++i) ordered = ordered && heard[i] == static_cast<float>(static_cast<int16_t>(i % 30000)) / 32768.0f;
    CHECK(ordered);
    CHECK(buffer.dropped() == 0);
}

TEST_CASE("timeline: viseme weights at given times, crossfaded over blend_ms") {
    eb::Timeline timeline(60);
    eb::Value keys = eb::Value::array();
    auto key = [](int t, const char* name, double w) {
        eb::Value k = eb::Value::array();
        k.push(t);
        k.push(name);
        k.push(w);
        return k;
    };
    keys.push(key(0, "sil", 1.0));
    keys.push(key(40, "O", 0.8));
    keys.push(key(100, "FF", 0.6));
    keys.push(key(120, "nope", 1.0));  // not a viseme: skipped
    keys.push(eb::Value("garbage"));  // malformed: skipped
    timeline.add_visemes("sp-1", keys);
    CHECK(timeline.keyframe_count("sp-1") == 3);
    const int sil = eb::viseme_index("sil"), o = eb::viseme_index("O"), ff = eb::viseme_index("FF");
    auto w = timeline.weights_at("sp-1", 0);
    CHECK(w[sil] == doctest::Approx(1.0));
    w = timeline.weights_at("sp-1", 40);
    CHECK(w[o] == doctest::Approx(0.0));
    CHECK(w[sil] == doctest::Approx(1.0));
    w = timeline.weights_at("sp-1", 70);
    CHECK(w[o] == doctest::Approx(0.4));
    CHECK(w[sil] == doctest::Approx(0.5));
    w = timeline.weights_at("sp-1", 130);
    CHECK(w[ff] == doctest::Approx(0.3));
    CHECK(w[o] == doctest::Approx(0.4));
    w = timeline.weights_at("sp-1", 500);
    CHECK(w[ff] == doctest::Approx(0.6));
    CHECK(w[o] == doctest::Approx(0.0));
    // Unknown segment or before the first key: silence.
    CHECK(timeline.weights_at("other", 50)[sil] == 1.0f);
    timeline.drop("sp-1");
    CHECK(timeline.keyframe_count("sp-1") == 0);
}

TEST_CASE("timeline: countenance tied to a segment time, or at once") {
    eb::Timeline timeline(100);
    eb::Event e;
    e.type = "ai.countenance";
    e.payload.set("emotion", "happy");
    e.payload.set("intensity", 0.8);
    e.payload.set("expression", "smile_big");
    e.payload.set("speech", "sp-1");
    e.payload.set("t", 200);
    REQUIRE(timeline.handle(e));
    CHECK(timeline.expression_at("sp-1", 100).emotion == "neutral");
    CHECK(timeline.expression_at("sp-1", 250).intensity == doctest::Approx(0.4));
    CHECK(timeline.expression_at("sp-1", 400).expression == "smile_big");
    CHECK(timeline.expression_at("sp-1", 400).intensity == doctest::Approx(0.8));
    eb::Event now;
    now.type = "ai.countenance";
    now.payload.set("emotion", "sad");
    now.payload.set("intensity", 0.5);
    REQUIRE(timeline.handle(now));
    CHECK(timeline.expression_at("", 0).emotion == "sad");
    CHECK(timeline.expression_at("sp-1", 100).emotion == "sad");
}

TEST_CASE("smoother: eases toward the target independent of frame rate") {
    eb::VisemeWeights target{};
    target[3] = 1.0f;
    eb::Smoother a(40.0f), b(40.0f);
    for (int i = 0; i < 4; ++i) a.step(target, 10.0f);
    b.step(target, 40.0f);
    CHECK(a.value()[3] == doctest::Approx(b.value()[3]).epsilon(1e-4));
    CHECK(a.value()[3] == doctest::Approx(1.0 - std::exp(-1.0)).epsilon(1e-4));
    for (int i = 0; i < 100; ++i) a.step(target, 16.0f);
    CHECK(a.value()[3] == doctest::Approx(1.0));
}

#include "entitybridge/mic.h"

TEST_CASE("mic: 48 kHz stereo floats become 40 ms mono pcm16 chunks at 16 kHz, pitch kept") {
    eb::MicChunker mic(16000, 40);
    const int rate = 48000;
    std::vector<float> frames(2 * 480);
    size_t n = 0;
    for (int callback = 0; callback < 100; ++callback) {  // 1 s in 10 ms callbacks
        for (size_t i = 0; i < 480; ++i, ++n) {
            const float v = 0.5f * static_cast<float>(std::sin(2.0 * M_PI * 440.0 * static_cast<double>(n) / rate));
            frames[2 * i] = v;
            frames[2 * i + 1] = v;
        }
        mic.push(frames.data(), 480, 2, rate);
    }
    const auto chunks = mic.take();
    CHECK(chunks.size() == 25);  // 16000 samples = 25 chunks of 640
    std::vector<float> decoded;
    for (const auto& c : chunks) {
        REQUIRE(c.size() == 1280);
        for (size_t i = 0; i + 1 < c.size(); i += 2) {
            const int16_t s = static_cast<int16_t>(static_cast<uint8_t>(c[i]) | (static_cast<uint8_t>(c[i + 1]) << 8));
            decoded.push_back(static_cast<float>(s) / 32768.0f);
        }
    }
    CHECK(pitch(decoded, 16000) == doctest::Approx(440.0).epsilon(0.002));
    float peak = 0.0f;
    for (float v : decoded) peak = std::max(peak, std::fabs(v));
    CHECK(peak == doctest::Approx(0.5).epsilon(0.01));
    const eb::Value p0 = mic.payload(chunks[0]);
    const eb::Value p1 = mic.payload(chunks[1]);
    CHECK(p0.get("seq").as_int() == 0);
    CHECK(p1.get("seq").as_int() == 1);
    CHECK(p1.get("audio").is_bin());
}
