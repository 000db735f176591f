// Sets up the process-wide spdlog logger: text or one JSON object per line.
#pragma once

#include <spdlog/common.h>
#include <spdlog/formatter.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rootcertd {

// journal: text with "<N>" priority prefixes, for stderr connected to journald.
enum class LogFormat { text, json, journal };

// True when JOURNAL_STREAM names the file stderr is connected to.
bool stderr_is_journal();

std::optional<LogFormat> parse_log_format(std::string_view name);
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

// Text: "<ISO time> <level> <message>"; JSON: one object per line.
std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format);

using LogFields = std::vector<std::pair<std::string, std::string>>;

// Logs MESSAGE at LEVEL; in JSON format each field becomes a top-level key
// (name, org, id, fingerprint, status, error...). Text format shows MESSAGE.
void log_event(spdlog::level::level_enum level, const std::string& message,
               const LogFields& fields);

// Logs go to stderr (or stdout). JSON lines carry "ts", "level" and "msg".
void setup_logging(spdlog::level::level_enum level, LogFormat format, bool to_stdout = false);

// Decides which failures reach the log so a persistent one does not flood it:
// a new or changed reason always, the same reason again once an hour.
class FailureLog {
  public:
    enum class Verdict { log, repeat, quiet };
    Verdict on_failure(const std::string& reason, std::chrono::steady_clock::time_point now);
    // Failures since the last success; resets to 0.
    unsigned on_success();
    unsigned failures() const { return count_; }

  private:
    std::string last_;
    std::chrono::steady_clock::time_point last_logged_{};
    unsigned count_ = 0;
};

// MESSAGE with every occurrence of SECRET replaced, for defence in depth.
std::string redact(std::string message, const std::string& secret);

}  // namespace rootcertd
