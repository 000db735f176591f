#include "rootcertd/store/cert_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
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

// Reads to the end of FD. SIZE (from fstat) only sizes the first buffer, up
// to 1 MiB; the read that finds the end needs room too. PATH only names the
// file in errors.
Outcome<std::string> read_fd(int fd, std::size_t size, const std::string& path) {
    std::string out(std::min<std::size_t>(size, 1 << 20) + 1, '\0');
    std::size_t have = 0;
    for (;;) {
        if (have == out.size()) out.resize(out.size() * 2);
        const ssize_t n = ::read(fd, out.data() + have, out.size() - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(sys_error("read", path, errno));
        if (n == 0) break;
        have += static_cast<std::size_t>(n);
    }
    out.resize(have);
    return out;
}

}  // namespace

bool CertStore::is_temp_name(std::string_view name) {
    return name.size() > 1 && name.front() == '.' &&
           name.find(temp_marker) != std::string_view::npos;
}

bool CertStore::is_stale_temp(std::string_view name, std::chrono::seconds age) {
    if (!is_temp_name(name) || age < std::chrono::minutes(1)) return false;
    // ".<file>.tmp-<pid>-<counter>-<random>"
    const auto digits = name.substr(name.rfind(temp_marker) + temp_marker.size());
    pid_t pid = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (ec != std::errc{} || pid <= 0) return true;  // not a name this version writes
    if (pid == ::getpid()) return false;
    return ::kill(pid, 0) != 0 && errno == ESRCH;
}

Outcome<int> CertStore::prepare(std::vector<std::string>* names) const {
    std::error_code ec;
    const bool created = std::filesystem::create_directories(dir_, ec);
    if (ec) return fail("create " + dir_.string() + ": " + ec.message());
    if (!std::filesystem::is_directory(dir_, ec))
        return fail(dir_.string() + " is not a directory");
    if (created) {  // the umask may have narrowed it; an existing one is the operator's
        std::filesystem::permissions(dir_, std::filesystem::perms(0755),
                                     std::filesystem::perm_options::add, ec);
    }
    return sweep(names);
}

Outcome<int> CertStore::sweep(std::vector<std::string>* names) const {
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return fail(sys_error("open", dir_, errno));
    DIR* d = ::fdopendir(::dup(dir.get()));
    if (d == nullptr) return fail(sys_error("list", dir_, errno));
    int removed = 0;
    const auto now = std::chrono::system_clock::now();
    while (const dirent* e = ::readdir(d)) {
        const std::string_view name = e->d_name;
        if (is_temp_name(name)) {
            struct stat st {};
            if (::fstatat(dir.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            const auto written = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
            const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - written);
            if (is_stale_temp(name, age) && ::unlinkat(dir.get(), e->d_name, 0) == 0) ++removed;
        } else if (names != nullptr && name != "." && name != "..") {
            names->emplace_back(name);
        }
    }
    ::closedir(d);
    return removed;
}

Outcome<std::optional<std::string>> CertStore::read(const std::string& file_name,
                                                    FileMeta* meta) const {
    return *read_up_to(file_name, SIZE_MAX, meta);
}

std::optional<Outcome<std::optional<std::string>>> CertStore::read_up_to(
    const std::string& file_name, std::size_t limit, FileMeta* meta) const {
    // A plain string: building a std::filesystem::path (which splits it into
    // components) was two thirds of the cost of this call.
    const std::string path = dir_.native() + "/" + file_name;
    Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) {
        if (errno == ENOENT || errno == ELOOP) return std::optional<std::string>{};
        return fail(sys_error("open", path, errno));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail(sys_error("stat", path, errno));
    if (!S_ISREG(st.st_mode)) return fail(path + " is not a regular file");
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size > limit) return std::nullopt;
    if (meta != nullptr) *meta = FileMeta{st.st_mode & 07777, st.st_uid, st.st_gid};
    auto bytes = read_fd(fd.get(), size, path);
    if (!bytes) return bytes.failure();
    return std::optional<std::string>(std::move(bytes.value()));
}

std::string CertStore::random_temp_name(const std::string& file_name) {
    static std::atomic<unsigned> counter{0};
    thread_local std::mt19937 rng{std::random_device{}()};
    return "." + file_name + std::string(temp_marker) + std::to_string(::getpid()) + "-" +
           std::to_string(counter++) + "-" + std::to_string(rng() % 100000);
}

namespace {

// Gives the open file FD at PATH (whose inode is ST) OWN's mode, owner and
// group where they differ.
Outcome<bool> repair(int fd, const struct stat& st, const FileOwnership& own,
                     const std::filesystem::path& path) {
    const bool uid_drift = own.uid && *own.uid != st.st_uid;
    const bool gid_drift = own.gid && *own.gid != st.st_gid;
    if ((uid_drift || gid_drift) && ::fchown(fd, uid_drift ? *own.uid : static_cast<uid_t>(-1),
                                             gid_drift ? *own.gid : static_cast<gid_t>(-1)) != 0) {
        return fail(sys_error("chown", path, errno));
    }
    // After chown, which may clear mode bits: the mode is set last.
    if ((st.st_mode & 07777) != own.mode && ::fchmod(fd, own.mode) != 0) {
        return fail(sys_error("chmod", path, errno));
    }
    return true;
}

// A changed file written to its temp name, waiting to be renamed.
struct Staged {
    std::size_t index;
    std::string temp;
    Installed result;
};

// Compares JOB with what is in place; writes the temp file when it differs.
// Returns the final result, or nothing when the job was staged.
std::optional<Outcome<Installed>> stage(int dir, const std::filesystem::path& dir_path,
                                        const CertStore::TempNamer& namer, const InstallJob& job,
                                        bool sync_now, Staged& staged) {
    const auto target = dir_path / job.file_name;
    Installed result;
    {
        // O_NOFOLLOW: a symlink planted at the target is treated as absent and replaced.
        Fd cur(
            ::openat(dir, job.file_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        if (cur.get() >= 0) {
            struct stat st {};
            if (::fstat(cur.get(), &st) != 0) return fail(sys_error("stat", target, errno));
            if (S_ISDIR(st.st_mode)) return fail(target.string() + " is a directory");
            if (S_ISREG(st.st_mode)) {
                auto old =
                    read_fd(cur.get(), static_cast<std::size_t>(st.st_size), target.native());
                if (!old) return old.failure();
                if (old.value() == job.bytes) {
                    // Same bytes: no rewrite; only repair a drifted mode, owner or group.
                    if (auto repaired = repair(cur.get(), st, job.ownership, target); !repaired) {
                        return repaired.failure();
                    }
                    return result;
                }
                result.previous = std::move(old.value());
            }
        } else if (errno != ENOENT && errno != ELOOP) {
            return fail(sys_error("open", target, errno));
        }
    }
    result.change = result.previous ? Change::replaced : Change::created;

    // O_EXCL: never reuse, or follow, anything already at the temp path
    // (a planted symlink included); leave it there and try another name.
    std::string temp;
    int fd = -1;
    for (int attempt = 0; attempt < 3 && fd < 0; ++attempt) {
        temp = namer(job.file_name);
        fd =
            ::openat(dir, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) return fail(sys_error("create temp file in", dir_path, errno));
    Fd out(fd);
    const auto abandon = [&](const std::string& step) {
        const int err = errno;
        ::close(out.release());
        ::unlinkat(dir, temp.c_str(), 0);
        return fail(sys_error(step, target, err));
    };
    const auto& own = job.ownership;
    if (!write_all(out.get(), job.bytes)) return abandon("write");
    if (::fchmod(out.get(), own.mode) != 0) return abandon("chmod");
    if ((own.uid || own.gid) && ::fchown(out.get(), own.uid.value_or(static_cast<uid_t>(-1)),
                                         own.gid.value_or(static_cast<gid_t>(-1))) != 0) {
        return abandon("chown");
    }
    if (sync_now && ::fsync(out.get()) != 0) return abandon("fsync");
    if (::close(out.release()) != 0) {
        const int err = errno;
        ::unlinkat(dir, temp.c_str(), 0);
        return fail(sys_error("close", target, err));
    }
    staged.temp = temp;
    staged.result = std::move(result);
    return std::nullopt;
}

}  // namespace

Outcome<Installed> CertStore::install(const std::string& file_name, std::string_view bytes,
                                      const FileOwnership& ownership) const {
    return std::move(install_all({InstallJob{file_name, std::string(bytes), ownership}}).front());
}

std::vector<Outcome<Installed>> CertStore::install_all(const std::vector<InstallJob>& jobs) const {
    std::vector<Outcome<Installed>> results(jobs.size(), Outcome<Installed>(fail("not attempted")));
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) {
        for (auto& r : results) r = fail(sys_error("open directory", dir_, errno));
        return results;
    }
    // One file: its own fsync. Several: one syncfs() for all of them.
    const bool sync_each = jobs.size() == 1;
    std::vector<Staged> staged;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        Staged st{i, {}, {}};
        if (auto done = stage(dir.get(), dir_, namer_, jobs[i], sync_each, st)) {
            results[i] = std::move(*done);
        } else {
            staged.push_back(std::move(st));
        }
    }
    if (staged.empty()) return results;
    if (!sync_each && ::syncfs(dir.get()) != 0) {
        const int err = errno;
        for (auto& st : staged) {
            ::unlinkat(dir.get(), st.temp.c_str(), 0);
            results[st.index] = fail(sys_error("sync", dir_ / jobs[st.index].file_name, err));
        }
        return results;
    }
    bool renamed = false;
    for (auto& st : staged) {
        const auto& name = jobs[st.index].file_name;
        if (::renameat(dir.get(), st.temp.c_str(), dir.get(), name.c_str()) != 0) {
            const int err = errno;
            ::unlinkat(dir.get(), st.temp.c_str(), 0);
            results[st.index] = fail(sys_error("rename into", dir_ / name, err));
        } else {
            results[st.index] = std::move(st.result);
            renamed = true;
        }
    }
    // The new names are only durable once the directory entry is.
    if (renamed && ::fsync(dir.get()) != 0) {
        const int err = errno;
        for (auto& st : staged) {
            if (results[st.index])
                results[st.index] = fail(sys_error("fsync directory", dir_, err));
        }
    }
    return results;
}

Outcome<bool> CertStore::remove(const std::string& file_name) const {
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return fail(sys_error("open directory", dir_, errno));
    if (::unlinkat(dir.get(), file_name.c_str(), 0) != 0) {
        if (errno == ENOENT) return false;
        return fail(sys_error("remove", dir_ / file_name, errno));
    }
    if (::fsync(dir.get()) != 0) return fail(sys_error("fsync directory", dir_, errno));
    return true;
}

}  // namespace rootcertd
