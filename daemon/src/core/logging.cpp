#include "rootcertd/core/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <cstdlib>

namespace rootcertd {

namespace {

// Fields of the record being logged on this thread (see log_event).
thread_local const LogFields* current_fields = nullptr;

class JsonFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto t = std::chrono::system_clock::to_time_t(msg.time);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch())
                .count() %
            1000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char ts[40];
        const auto n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        std::snprintf(ts + n, sizeof ts - n, ".%03lldZ", static_cast<long long>(ms));
        const auto level = spdlog::level::to_string_view(msg.level);
        boost::json::object line{{"ts", ts},
                                 {"level", std::string_view(level.data(), level.size())},
                                 {"msg", std::string_view(msg.payload.data(), msg.payload.size())}};
        if (current_fields != nullptr) {
            for (const auto& [k, v] : *current_fields) line[k] = v;
        }
        const auto text = boost::json::serialize(line);
        dest.append(text.data(), text.data() + text.size());
        dest.push_back('\n');
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }
};

// "<N>message": the journal reads the priority and adds its own timestamp.
class JournalFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        static constexpr char priority[] = {'7', '7', '6', '4', '3', '2', '6'};  // by spdlog level
        dest.push_back('<');
        dest.push_back(priority[static_cast<int>(msg.level)]);
        dest.push_back('>');
        dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
        dest.push_back('\n');
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JournalFormatter>();
    }
};

}  // namespace

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
    return dev == st.st_dev && ino == st.st_ino;
}

std::optional<LogFormat> parse_log_format(std::string_view name) {
    if (name == "text") return LogFormat::text;
    if (name == "json") return LogFormat::json;
    return std::nullopt;
}

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) {
    for (auto l :
         {spdlog::level::trace, spdlog::level::debug, spdlog::level::info, spdlog::level::warn,
          spdlog::level::err, spdlog::level::critical, spdlog::level::off}) {
        const auto s = spdlog::level::to_string_view(l);
        if (name == std::string_view(s.data(), s.size())) return l;
    }
    if (name == "warning") return spdlog::level::warn;
    if (name == "error") return spdlog::level::err;
    return std::nullopt;
}

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
    if (format == LogFormat::json) return std::make_unique<JsonFormatter>();
    if (format == LogFormat::journal) return std::make_unique<JournalFormatter>();
    return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e %l %v");
}

void log_event(spdlog::level::level_enum level, const std::string& message,
               const LogFields& fields) {
    current_fields = &fields;
    spdlog::log(level, "{}", message);
    current_fields = nullptr;
}

void setup_logging(spdlog::level::level_enum level, LogFormat format, bool to_stdout) {
    spdlog::sink_ptr sink;
    if (to_stdout) {
        sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else {
        sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    }
    auto logger = std::make_shared<spdlog::logger>("rootcertd", std::move(sink));
    logger->set_formatter(make_formatter(format));
    logger->set_level(level);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

std::string redact(std::string message, const std::string& secret) {
    if (secret.empty()) return message;
    static constexpr std::string_view mark = "[redacted]";
    // The scan goes on after each replacement, never inside it: a secret
    // such as "t" or "acted" occurs in the mark itself.
    for (auto at = message.find(secret); at != std::string::npos;
         at = message.find(secret, at + mark.size())) {
        message.replace(at, secret.size(), mark);
    }
    return message;
}

FailureLog::Verdict FailureLog::on_failure(const std::string& reason,
                                           std::chrono::steady_clock::time_point now) {
    ++count_;
    if (reason != last_) {
        last_ = reason;
        last_logged_ = now;
        return Verdict::log;
    }
    if (now - last_logged_ >= std::chrono::hours(1)) {
        last_logged_ = now;
        return Verdict::repeat;
    }
    return Verdict::quiet;
}

unsigned FailureLog::on_success() {
    last_.clear();
    return std::exchange(count_, 0);
}

}  // namespace rootcertd
