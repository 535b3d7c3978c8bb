// FragmentAssembler: see transport.h.
#include "entitybridge/transport.h"

namespace eb {

FragmentAssembler::Result FragmentAssembler::feed(const uint8_t* data, size_t size, bool last) {
    if (!overflowed_) {
        if (buffer_.size() + size > max_bytes_) {
            overflowed_ = true;
            buffer_.clear();
            buffer_.shrink_to_fit();
        } else if (size) {
            buffer_.insert(buffer_.end(), data, data + size);
        }
    }
    if (!last) return Result::Partial;
    if (overflowed_) {
        overflowed_ = false;
        return Result::TooLarge;
    }
    done_.swap(buffer_);
    buffer_.clear();
    return Result::Complete;
}

}  // namespace eb
