#include "rootcertd/sources/credentials.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "rootcertd/core/process.hpp"

namespace rootcertd {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// A command credential: its last output, and the run under way, if any.
struct Credentials::Command {
    Credential spec;
    std::optional<std::string> value;
    Clock::time_point fetched{};
    Clock::time_point forced{};  // the last run a refusal asked for
    bool stale = false;
    std::optional<std::string> failure;  // the last run's, kept for a few seconds
    Clock::time_point failed_until{};
    struct Run {
        explicit Run(asio::any_io_executor ex) : done(ex, Clock::time_point::max()) {}
        asio::steady_timer done;  // cancelled when `result` is set
        std::optional<Outcome<std::string>> result;
    };
    std::shared_ptr<Run> running;

    // A failed run is not repeated for every instance that shares the credential.
    static constexpr std::chrono::seconds failure_hold{10};
    static constexpr std::chrono::minutes refusal_rerun{1};
};

Credentials::Credentials(const Config& config, asio::any_io_executor executor)
    : executor_(std::move(executor)) {
    if (config.token_file) {
        api_token_ = TokenSource::from_file(*config.token_file);
    } else if (config.token_env) {
        api_token_ = TokenSource::from_env(*config.token_env);
        secret_variables_.push_back(*config.token_env);
    }
    for (const auto& c : config.credentials) {
        Entry e;
        if (c.file) {
            e.token = TokenSource::from_file(*c.file, "credential '" + c.name + "' file");
        } else if (c.env) {
            e.token = TokenSource::from_env(*c.env);
            secret_variables_.push_back(*c.env);
        } else {
            e.command = std::make_shared<Command>();
            e.command->spec = c;
        }
        named_.emplace(c.name, std::move(e));
    }
}

std::optional<Outcome<std::string>> Credentials::ready(const std::optional<std::string>& name) {
    if (!name) {
        if (!api_token_) return fail(Stage::token, "no api.token_file or api.token_env is set");
        auto token = api_token_->get();
        if (!token) return fail(Stage::token, token.error());
        return token;
    }
    const auto it = named_.find(*name);
    if (it == named_.end()) return fail(Stage::token, "no credential '" + *name + "'");
    if (auto& entry = it->second; entry.token) {
        auto token = entry.token->get();
        if (!token) return fail(Stage::token, token.error());
        // A file open to others is said once, as the API token's is.
        if (entry.token->exposure() != entry.warned) {
            entry.warned = entry.token->exposure();
            if (!entry.warned.empty()) spdlog::warn("{}", entry.warned);
        }
        return token;
    }
    const auto& cmd = *it->second.command;
    const auto now = Clock::now();
    if (cmd.value && !cmd.stale && now - cmd.fetched < cmd.spec.ttl) return *cmd.value;
    if (cmd.failure && now < cmd.failed_until) return fail(Stage::token, *cmd.failure);
    return std::nullopt;
}

asio::awaitable<Outcome<std::string>> Credentials::get(std::optional<std::string> name) {
    if (auto now = ready(name)) co_return std::move(*now);
    const auto cmd = named_.find(*name)->second.command;  // outlives a reload that drops it
    if (cmd->running) {
        const auto run = cmd->running;
        co_await run->done.async_wait(asio::as_tuple(asio::use_awaitable));
        if (run->result) co_return *run->result;
        co_return fail(Stage::token, "stopped while credential '" + *name + "' was being fetched");
    }
    auto run = std::make_shared<Command::Run>(executor_);
    cmd->running = run;
    auto output =
        co_await run_command(executor_, cmd->spec.command, child_environment({}, secret_variables_),
                             cmd->spec.timeout, false);
    const std::string what = "credential '" + *name + "' command";
    Outcome<std::string> result = fail(Stage::token, what + ": no output");
    if (!output.result) {
        result = fail(Stage::token, what + ": " + output.result.error());
    } else if (auto token = clean_token(std::move(output.out), what + " output"); !token) {
        result = fail(Stage::token, token.error());
    } else {
        result = std::move(token);
    }
    if (result) {
        cmd->value = result.value();
        cmd->fetched = Clock::now();
        cmd->stale = false;
        cmd->failure.reset();
    } else {
        spdlog::warn("{}", result.error());
        cmd->failure = result.error();
        cmd->failed_until = Clock::now() + Command::failure_hold;
    }
    cmd->running.reset();
    run->result = result;
    run->done.cancel();
    co_return result;
}

bool Credentials::refused(const std::optional<std::string>& name) {
    if (!name) {
        if (api_token_) api_token_->recheck();
        return false;
    }
    const auto it = named_.find(*name);
    if (it == named_.end()) return false;
    if (it->second.token) {
        it->second.token->recheck();
        return false;
    }
    auto& cmd = *it->second.command;
    const auto now = Clock::now();
    if (cmd.stale) return true;  // another refresh asked already: the run is due
    if (!cmd.value || now - cmd.forced < Command::refusal_rerun) return false;
    cmd.stale = true;
    cmd.forced = now;
    return true;
}

}  // namespace rootcertd
