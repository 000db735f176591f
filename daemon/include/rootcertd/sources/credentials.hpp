// The secrets sources send: the API token (api.token_file/token_env) and the
// named ones of `credentials:` (a file, a variable, or a command's output).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/sources/token_source.hpp"

namespace rootcertd {

// Event loop only. No secret appears in any message it produces.
class Credentials {
  public:
    Credentials(const Config& config, boost::asio::any_io_executor executor);

    // The secret NAME holds now (nullopt: the API token). A file is re-read
    // when it changed; a command runs when first needed, when its ttl has
    // passed and after a refusal; callers that ask meanwhile wait for that
    // one run. Fails as Stage::token, naming the credential.
    boost::asio::awaitable<Outcome<std::string>> get(std::optional<std::string> name);

    // What get() gives at once, when no command has to run or finish first
    // (nullopt: get() must wait for one). The common case needs no frame.
    std::optional<Outcome<std::string>> ready(const std::optional<std::string>& name);

    // The API refused NAME's secret (a 401): a file is looked at again at
    // once, a command run again on the next get(), at most once a minute.
    // True when that run is due (a fresh secret is worth a retry now).
    bool refused(const std::optional<std::string>& name);

    // The API token's source, when api.token_file or token_env is set: its
    // file's exposure and JWT expiry are reported.
    TokenSource* api_token() { return api_token_ ? &*api_token_ : nullptr; }

    // Variables holding secrets (api.token_env, env credentials): kept from
    // hooks and credential commands.
    const std::vector<std::string>& secret_variables() const { return secret_variables_; }

  private:
    struct Command;
    struct Entry {
        std::optional<TokenSource> token;  // file or env
        std::shared_ptr<Command> command;
        std::string warned;  // the file's exposure last logged, logged again when it changes
    };
    boost::asio::any_io_executor executor_;
    std::optional<TokenSource> api_token_;
    std::map<std::string, Entry, std::less<>> named_;
    std::vector<std::string> secret_variables_;
};

}  // namespace rootcertd
