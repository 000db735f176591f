#include "rootcertd/runtime/output_writer.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "rootcertd/core/blocking.hpp"
#include "rootcertd/runtime/reporter.hpp"

namespace rootcertd {

namespace asio = boost::asio;

void OutputWriter::all_due(std::shared_ptr<Services> s) {
    for (const auto& output : s->config.outputs) due_.insert(output.name);
    services_ = std::move(s);
    schedule();
}

void OutputWriter::member_changed(std::shared_ptr<Services> s, const Instance& instance) {
    if (s->config.outputs.empty()) return;
    for (const auto& output : s->config.outputs) {
        if (is_member(output, instance)) due_.insert(output.name);
    }
    services_ = std::move(s);
    schedule();
}

void OutputWriter::hold(std::shared_ptr<Services> s, bool on) {
    held_ = on;
    services_ = std::move(s);
    schedule();
}

// Writes what is due with the Services current when the timer fires (a
// reload may have replaced them meanwhile).
void OutputWriter::schedule() {
    if (armed_ || held_ || due_.empty() || stopped_ || !services_) return;
    armed_ = true;
    timer_.expires_after(gather);
    timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_) {
            armed_ = false;
            return;
        }
        asio::co_spawn(rt_.loop(), write(services_, std::exchange(due_, {})),
                       [this](std::exception_ptr, bool) {
                           armed_ = false;
                           schedule();  // changes that came while it wrote
                       });
    });
}

asio::awaitable<bool> OutputWriter::write(std::shared_ptr<Services> s, std::set<std::string> due) {
    bool ok = true;
    // A copy: a reload may replace the configuration's outputs while a write
    // waits for a secret or the pool.
    const std::vector<Output> outputs = s->config.outputs;
    for (const auto& output : outputs) {
        if (!due.contains(output.name)) continue;
        auto members = members_of(output, s->config.instances);
        std::optional<std::string> password;
        Outcome<OutputWrite> done = OutputWrite{};
        if (output.password) {
            auto secret = co_await s->fetch.credentials.get(output.password);
            if (!secret) {
                done = secret.failure();
            } else {
                password = std::move(secret.value());
            }
        }
        if (done) {
            auto job = [&output, &members, &password, s] {
                return write_output(output, members, s->files.store, password);
            };
            done = co_await run_blocking(s->blocking, std::move(job));
        }
        ok = ok && done.ok();
        log_output_write(output, members, done);
        if (on_written) on_written(output, members, done);
        if (done && done.value().changed && output.on_change) {
            std::vector<std::pair<std::string, std::string>> env;
            env.emplace_back("ROOTCERTD_NAME", output.name);
            env.emplace_back("ROOTCERTD_PATH", output.path.string());
            env.emplace_back("ROOTCERTD_FORMAT", std::string(format_name(output.format)));
            rt_.start_hook(
                s, Runtime::HookJob{
                       output.name, *output.on_change, std::move(env), {{"output", output.name}}});
        }
    }
    co_return ok;
}

}  // namespace rootcertd
