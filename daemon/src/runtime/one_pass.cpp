// --once: every instance refreshed once, then exit.
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/signal_set.hpp>

#include "rootcertd/core/process.hpp"
#include "rootcertd/runtime/fleet.hpp"
#include "rootcertd/runtime/output_writer.hpp"
#include "rootcertd/runtime/reporter.hpp"
#include "rootcertd/runtime/runtime.hpp"

namespace rootcertd {

namespace asio = boost::asio;

namespace {

// --once runs discovery first: its instances join the listed ones. False
// when a list failed or a found instance was refused.
bool discover_first(Runtime& rt, const std::shared_ptr<Services>& s) {
    if (s->config.discover.empty()) return true;
    auto result = discover_once(rt, s);
    if (!result) return false;
    log_discovery_pass(*result);
    s->config.instances = std::move(result->composed.instances);
    // A failed list would drop its instances' sections: the block is kept.
    if (result->failures.empty()) rt.write_service_file(s->config);
    return result->failures.empty() && result->composed.refused.empty();
}

// After the pass, every output once, and the hooks of those that changed.
// Not after a failed or refused list: the CAs of instances missing from it
// would leave the outputs.
bool write_outputs(Runtime& rt, const std::shared_ptr<Services>& s, bool discovered,
                   bool& hook_failed) {
    if (s->config.outputs.empty()) return true;
    if (!discovered) {
        spdlog::error(
            "outputs not written: discovery did not list every instance (a list failed or "
            "refused one), and the CAs of those missing would leave them");
        return false;
    }
    auto& ioc = rt.loop();
    ioc.restart();
    OutputWriter writer(rt);
    std::set<std::string> all;
    for (const auto& output : s->config.outputs) all.insert(output.name);
    bool ok = false, written = false;
    rt.on_hook_end = [&](const std::string&, bool hook_ok) {
        hook_failed = hook_failed || !hook_ok;
        if (written && rt.hooks_running() == 0) ioc.stop();
    };
    asio::co_spawn(ioc, writer.write(s, std::move(all)), [&](std::exception_ptr e, bool all_ok) {
        ok = !e && all_ok;
        written = true;
        if (rt.hooks_running() == 0) ioc.stop();
    });
    ioc.run();
    rt.on_hook_end = nullptr;  // it refers to this frame
    return ok;
}

}  // namespace

int run_one_pass(Runtime& rt, std::shared_ptr<Services> s) {
    auto& ioc = rt.loop();
    const bool discovered = discover_first(rt, s);
    const auto& instances = s->config.instances;
    std::size_t pending = instances.size();
    std::size_t failed = 0;
    bool done = false;  // every refresh has ended; hooks may still run
    // SIGTERM aborts what is in flight: the files stay whole either way.
    asio::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([s, &ioc](boost::system::error_code ec, int) {
        if (ec) return;
        s->close_clients();
        stop_running_commands(ioc.get_executor(), command_stop_grace);
    });
    bool hook_failed = false;
    rt.on_hook_end = [&](const std::string&, bool ok) {
        hook_failed = hook_failed || !ok;
        if (done && rt.hooks_running() == 0) ioc.stop();
    };
    // As many refreshes under way as the admission bound allows; each that
    // ends starts the next, so no frame waits for a slot. A pass keeps no
    // status board: nothing reads one.
    Reporter reporter;  // the daemon's log lines, with no retry to announce
    std::size_t next = 0;
    std::function<void()> start_next = [&] {
        if (next == instances.size()) return;
        const auto& inst = instances[next++];
        asio::co_spawn(
            ioc, rt.refresh_and_hook(s, inst),
            [&, &inst = inst](std::exception_ptr e, RefreshResult r) {  // INSTANCES stays put
                if (e) r.failure = fail("aborted");
                s->forget(inst.name);  // a pass has no next refresh
                if (Reporter::failed_pass(r)) ++failed;
                InstanceLog log;
                reporter.refreshed(
                    inst.name, [&inst] { return labels_of(inst); }, r, log, std::nullopt,
                    std::chrono::steady_clock::now());
                if (--pending == 0) {
                    s->close_clients();
                    signals.cancel();
                    done = true;
                    if (rt.hooks_running() == 0) ioc.stop();
                }
                start_next();
            });
    };
    const auto began = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < admission_slots(s->config); ++i) start_next();
    if (instances.empty()) {  // discovery found none: nothing to wait for
        signals.cancel();
        s->close_clients();
    }
    ioc.run();  // until every refresh and every hook they started has ended
    const bool outputs_ok = write_outputs(rt, s, discovered, hook_failed);
    // Nothing started here outlives the pass.
    signal_running_commands(SIGKILL);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);
    rt.on_hook_end = nullptr;  // it refers to this frame
    reporter.summarize_pass(instances.size(), took);
    return failed == 0 && !hook_failed && discovered && outputs_ok && rt.service_file_ok()
               ? exit_ok
               : exit_failed;
}

}  // namespace rootcertd
