// Runs blocking work (file reads, fsync) on a thread pool from a coroutine.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <type_traits>

namespace rootcertd {

// Runs F on the blocking pool and resumes on the caller's executor. Plain
// handlers, not a lambda coroutine (GCC12-COROUTINE-LAMBDA: GCC 12
// mishandles the captures of those).
template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> run_blocking(boost::asio::thread_pool& pool, F f) {
    using R = std::invoke_result_t<F&>;
    auto result = co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                                       void(std::optional<R>)>(
        [&pool](auto handler, F fn) {
            auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
            boost::asio::post(pool, [handler = std::move(handler), fn = std::move(fn),
                                     work = std::move(work)]() mutable {
                std::optional<R> r(fn());
                auto ex = work.get_executor();
                boost::asio::post(
                    ex, [handler = std::move(handler), r = std::move(r),
                         work = std::move(work)]() mutable { std::move(handler)(std::move(r)); });
            });
        },
        boost::asio::use_awaitable, std::move(f));
    co_return std::move(*result);
}

}  // namespace rootcertd
