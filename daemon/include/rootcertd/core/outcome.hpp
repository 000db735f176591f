// Expected failures as values: a result, or a human-readable reason.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace rootcertd {

// The one failure vocabulary: the step that failed, and a message phrased for
// an operator's log that names what was asked of whom. Never holds a secret.
enum class Stage {
    none,      // a failure with no step of its own (a config value, a parser's)
    token,     // reading a credential
    resolve,   // looking up a host name
    connect,   // TCP connect, or a proxy's CONNECT tunnel
    tls,       // the TLS handshake and certificate verification
    http,      // the exchange: send, receive, a status that carries no CA
    response,  // a 200 whose body holds no CA text
    validate,  // the CA text is not a bundle of valid CA certificates
    read,      // reading the current file or its rotation state
    install,   // writing the rotation state or the file
    live,      // the server does not verify against the file
    hook,      // an on_change command
};

// "resolve", "http", ...: for logs and de-duplication keys.
constexpr const char* stage_name(Stage stage) {
    constexpr const char* names[] = {"none",     "token",    "resolve", "connect", "tls",  "http",
                                     "response", "validate", "read",    "install", "live", "hook"};
    return names[static_cast<int>(stage)];
}

struct Failure {
    Stage stage = Stage::none;
    std::string message;
    // Nothing reached the peer (resolve, connect, TLS): everything bound for
    // it fails the same way.
    bool unreachable() const {
        return stage == Stage::resolve || stage == Stage::connect || stage == Stage::tls;
    }
    // The same failure, CONTEXT ("install prod: ") before its message: the
    // stage stays what it was.
    Failure prefixed(const std::string& context) const { return {stage, context + message}; }
};

inline Failure fail(std::string message) { return Failure{Stage::none, std::move(message)}; }
inline Failure fail(Stage stage, std::string message) { return Failure{stage, std::move(message)}; }

template <class T>
class Outcome {
  public:
    // A failure with no stage: what co_spawn hands its handler when the
    // coroutine threw instead of returning.
    Outcome() : v_(Failure{Stage::none, "no result"}) {}
    Outcome(T value) : v_(std::move(value)) {}            // NOLINT(google-explicit-constructor)
    Outcome(Failure failure) : v_(std::move(failure)) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Failure& failure() const { return std::get<1>(v_); }
    const std::string& error() const { return failure().message; }
    bool unreachable() const { return !ok() && failure().unreachable(); }

  private:
    std::variant<T, Failure> v_;
};

// What a step that produces nothing returns: Ok{}, or why it failed.
struct Ok {};

template <>
class Outcome<void> {
  public:
    Outcome() : failure_(Failure{Stage::none, "no result"}) {}  // as Outcome<T>'s
    Outcome(Ok) : failure_(std::nullopt) {}  // NOLINT(google-explicit-constructor)
    Outcome(Failure failure)
        : failure_(std::move(failure)) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return !failure_.has_value(); }
    explicit operator bool() const { return ok(); }
    const Failure& failure() const { return *failure_; }
    const std::string& error() const { return failure().message; }
    bool unreachable() const { return !ok() && failure().unreachable(); }

  private:
    std::optional<Failure> failure_;
};

}  // namespace rootcertd
