// libFuzzer target (clang -fsanitize=fuzzer,address,undefined): see fuzz_decoder.h.
#include "fuzz_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!eb_fuzz::fuzz_one(data, size)) std::abort();
    return 0;
}
