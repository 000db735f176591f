// A counting semaphore for coroutines on one executor.
#pragma once

#include <boost/asio/experimental/channel.hpp>
#include <boost/system/error_code.hpp>

namespace rootcertd {

// A channel with N buffer slots: a send takes a slot (waiting while none is
// free), a receive frees one.
using Semaphore = boost::asio::experimental::channel<void(boost::system::error_code)>;

// Holds one slot taken with async_send; frees it on every exit path,
// cancellation included.
class SlotGuard {
  public:
    explicit SlotGuard(Semaphore& s) : s_(s) {}
    SlotGuard(const SlotGuard&) = delete;
    SlotGuard& operator=(const SlotGuard&) = delete;
    ~SlotGuard() {
        s_.try_receive([](boost::system::error_code) {});
    }

  private:
    Semaphore& s_;
};

}  // namespace rootcertd
