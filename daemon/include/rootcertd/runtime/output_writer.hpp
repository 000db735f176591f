// Keeps `outputs:` in step with their members' files: after a pass
// (--once), and in the daemon shortly after a member's file changed, so a
// burst of changes gives one write and one hook run.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "rootcertd/runtime/runtime.hpp"
#include "rootcertd/store/outputs.hpp"

namespace rootcertd {

// Event loop only.
class OutputWriter {
  public:
    // How long the daemon gathers member changes before writing.
    static constexpr Duration gather{std::chrono::milliseconds(500)};

    explicit OutputWriter(Runtime& runtime) : rt_(runtime), timer_(runtime.loop()) {}

    // After each output's write: its members and what the write did.
    std::function<void(const Output&, const std::vector<std::string>& members,
                       const Outcome<OutputWrite>&)>
        on_written;

    // Every output of S is written within `gather` (start-up, reload, a
    // change of the instance set: members may have joined or left).
    void all_due(std::shared_ptr<Services> s);
    // INSTANCE's file changed: the outputs it is a member of are written
    // within `gather`.
    void member_changed(std::shared_ptr<Services> s, const Instance& instance);
    void stop() {
        timer_.cancel();
        stopped_ = true;
    }
    // While held (a discovery source has not listed yet: its members are
    // unknown, and a write would drop their CAs), due outputs wait.
    void hold(std::shared_ptr<Services> s, bool on);

    // Writes S's outputs named in DUE now, each change logged and its hook
    // started. False when one failed.
    boost::asio::awaitable<bool> write(std::shared_ptr<Services> s, std::set<std::string> due);

  private:
    void schedule();

    Runtime& rt_;
    boost::asio::steady_timer timer_;
    std::shared_ptr<Services> services_;  // the latest the daemon handed over
    std::set<std::string> due_;
    bool armed_ = false;
    bool stopped_ = false;
    bool held_ = false;
};

}  // namespace rootcertd
