#include "rootcertd/cert_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

namespace rootcertd {

namespace {

constexpr std::string_view temp_marker = ".tmp-";

// Closes a file descriptor on scope exit.
class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

private:
    int fd_;
};

std::string sys_error(const std::string& what, const std::filesystem::path& path, int err) {
    return what + " " + path.string() + ": " + std::strerror(err);
}

std::string temp_name_for(const std::string& file_name) {
    static std::atomic<unsigned> counter{0};
    thread_local std::mt19937 rng{std::random_device{}()};
    return "." + file_name + std::string(temp_marker) + std::to_string(::getpid()) + "-" +
           std::to_string(counter++) + "-" + std::to_string(rng() % 100000);
}

bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

Outcome<std::string> read_fd(int fd, const std::filesystem::path& path) {
    std::string out;
    char buf[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(sys_error("read", path, errno));
        if (n == 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

bool CertStore::is_temp_name(std::string_view name) {
    return name.size() > 1 && name.front() == '.' && name.find(temp_marker) != std::string_view::npos;
}

Outcome<int> CertStore::prepare() const {
    std::error_code ec;
    if (std::filesystem::create_directories(dir_, ec); ec) {
        return fail("create " + dir_.string() + ": " + ec.message());
    }
    if (!std::filesystem::is_directory(dir_, ec)) return fail(dir_.string() + " is not a directory");
    std::filesystem::permissions(dir_, std::filesystem::perms(0755),
                                 std::filesystem::perm_options::add, ec);
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return fail(sys_error("open", dir_, errno));
    DIR* d = ::fdopendir(::dup(dir.get()));
    if (d == nullptr) return fail(sys_error("list", dir_, errno));
    int removed = 0;
    while (const dirent* e = ::readdir(d)) {
        if (is_temp_name(e->d_name) && ::unlinkat(dir.get(), e->d_name, 0) == 0) ++removed;
    }
    ::closedir(d);
    return removed;
}

Outcome<std::optional<std::string>> CertStore::read(const std::string& file_name) const {
    const auto path = dir_ / file_name;
    Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) {
        if (errno == ENOENT || errno == ELOOP) return std::optional<std::string>{};
        return fail(sys_error("open", path, errno));
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return fail(sys_error("stat", path, errno));
    if (!S_ISREG(st.st_mode)) return fail(path.string() + " is not a regular file");
    auto bytes = read_fd(fd.get(), path);
    if (!bytes) return fail(bytes.error());
    return std::optional<std::string>(std::move(bytes.value()));
}

Outcome<Installed> CertStore::install(const std::string& file_name, std::string_view bytes,
                                      const FileOwnership& ownership) const {
    const auto target = dir_ / file_name;
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return fail(sys_error("open directory", dir_, errno));

    Installed result;
    {
        // O_NOFOLLOW: a symlink planted at the target is treated as absent and replaced.
        Fd cur(::openat(dir.get(), file_name.c_str(),
                        O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        if (cur.get() >= 0) {
            struct stat st{};
            if (::fstat(cur.get(), &st) != 0) return fail(sys_error("stat", target, errno));
            if (S_ISDIR(st.st_mode)) return fail(target.string() + " is a directory");
            if (S_ISREG(st.st_mode)) {
                auto old = read_fd(cur.get(), target);
                if (!old) return fail(old.error());
                if (old.value() == bytes) {
                    // Same bytes: no rewrite; only repair drifted permissions.
                    if ((st.st_mode & 07777) != ownership.mode) ::fchmod(cur.get(), ownership.mode);
                    return result;
                }
                result.previous = std::move(old.value());
            }
        } else if (errno != ENOENT && errno != ELOOP) {
            return fail(sys_error("open", target, errno));
        }
    }
    result.change = result.previous ? Change::replaced : Change::created;

    const std::string temp = temp_name_for(file_name);
    // O_EXCL: never reuse, or follow, anything already at the temp path.
    Fd out(::openat(dir.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600));
    if (out.get() < 0) return fail(sys_error("create temp file in", dir_, errno));
    const auto abandon = [&](const std::string& step) {
        const int err = errno;
        ::close(out.release());
        ::unlinkat(dir.get(), temp.c_str(), 0);
        return fail(sys_error(step, target, err));
    };
    if (!write_all(out.get(), bytes)) return abandon("write");
    if (::fchmod(out.get(), ownership.mode) != 0) return abandon("chmod");
    if ((ownership.uid || ownership.gid) &&
        ::fchown(out.get(), ownership.uid.value_or(static_cast<uid_t>(-1)),
                 ownership.gid.value_or(static_cast<gid_t>(-1))) != 0) {
        return abandon("chown");
    }
    if (::fsync(out.get()) != 0) return abandon("fsync");
    if (::close(out.release()) != 0) {
        const int err = errno;
        ::unlinkat(dir.get(), temp.c_str(), 0);
        return fail(sys_error("close", target, err));
    }
    if (::renameat(dir.get(), temp.c_str(), dir.get(), file_name.c_str()) != 0) {
        const int err = errno;
        ::unlinkat(dir.get(), temp.c_str(), 0);
        return fail(sys_error("rename into", target, err));
    }
    // The new name is only durable once the directory entry is.
    if (::fsync(dir.get()) != 0) return fail(sys_error("fsync directory", dir_, errno));
    return result;
}

}  // namespace rootcertd
