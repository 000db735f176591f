// Sets up the process-wide spdlog logger: text or one JSON object per line.
#pragma once

#include <spdlog/common.h>
#include <spdlog/formatter.h>

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

}  // namespace rootcertd
