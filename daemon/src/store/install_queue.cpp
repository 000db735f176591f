#include "rootcertd/store/install_queue.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace rootcertd {

namespace asio = boost::asio;

InstallQueue::InstallQueue(asio::any_io_executor loop, asio::thread_pool& pool, CertStore store)
    : loop_(std::move(loop)), pool_(pool), store_(std::move(store)) {}

asio::awaitable<Outcome<Installed>> InstallQueue::install(InstallJob job) {
    // GCC12-COROUTINE-TEMPORARY: named locals, not temporaries inside co_await.
    auto enqueue = [self = shared_from_this()](auto handler, InstallJob j) {
        // std::function needs a copyable target: share the move-only handler.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        self->pending_.push_back(Waiting{
            std::move(j),
            [shared](std::optional<Outcome<Installed>> r) { std::move (*shared)(std::move(r)); }});
        self->flush();
    };
    auto result = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                                void(std::optional<Outcome<Installed>>)>(
        std::move(enqueue), asio::use_awaitable, std::move(job));
    co_return std::move(*result);
}

void InstallQueue::flush() {
    if (flushing_ || pending_.empty()) return;
    flushing_ = true;
    auto batch = std::make_shared<std::vector<Waiting>>(std::move(pending_));
    pending_.clear();
    auto work = asio::make_work_guard(loop_);  // the loop waits for the batch
    asio::post(pool_, [self = shared_from_this(), batch, work = std::move(work)]() mutable {
        std::vector<InstallJob> jobs;
        jobs.reserve(batch->size());
        for (auto& w : *batch) jobs.push_back(std::move(w.job));  // only results go back
        auto results =
            std::make_shared<std::vector<Outcome<Installed>>>(self->store_.install_all(jobs));
        auto loop = work.get_executor();
        asio::post(loop, [self, batch, results, work = std::move(work)] {
            self->flushing_ = false;
            for (std::size_t i = 0; i < batch->size(); ++i)
                (*batch)[i].done(std::move((*results)[i]));
            self->flush();
        });
    });
}

}  // namespace rootcertd
