// Groups concurrent installs into durable batches (group commit).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "rootcertd/store/cert_store.hpp"

namespace rootcertd {

// While one batch is being made durable on the blocking pool, installs that
// arrive wait for the next batch, so a fleet's cold pass costs a few
// filesystem flushes instead of one fsync per file. Event loop only.
class InstallQueue : public std::enable_shared_from_this<InstallQueue> {
  public:
    InstallQueue(boost::asio::any_io_executor loop, boost::asio::thread_pool& pool,
                 CertStore store);

    // The outcome of CertStore::install for JOB, made durable with its batch.
    boost::asio::awaitable<Outcome<Installed>> install(InstallJob job);

  private:
    struct Waiting {
        InstallJob job;
        std::function<void(std::optional<Outcome<Installed>>)> done;
    };
    void flush();

    boost::asio::any_io_executor loop_;
    boost::asio::thread_pool& pool_;
    CertStore store_;
    std::vector<Waiting> pending_;
    bool flushing_ = false;
};

}  // namespace rootcertd
