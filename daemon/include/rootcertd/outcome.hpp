// Expected failures as values: a result, or a human-readable reason.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace rootcertd {

// Why an operation failed, phrased for an operator's log; never holds a secret.
struct Failure {
    std::string message;
    // Nothing was sent: the peer itself could not be reached (resolve,
    // connect, proxy, TLS), so everything bound for it fails the same way.
    bool unreachable = false;
};

inline Failure fail(std::string message) { return Failure{std::move(message)}; }

template <class T>
class Outcome {
  public:
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
    const std::string& error() const { return std::get<1>(v_).message; }
    bool unreachable() const { return !ok() && std::get<1>(v_).unreachable; }

  private:
    std::variant<T, Failure> v_;
};

}  // namespace rootcertd
