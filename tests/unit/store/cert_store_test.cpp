#include "rootcertd/store/cert_store.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include "tempdir.hpp"

using namespace rootcertd;
using test::read_file;
using test::TempDir;

namespace {

std::vector<std::string> entries(const std::filesystem::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

struct stat stat_of(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st;
}

const FileOwnership default_owner{};

// The pid of a child that has exited and been reaped: no process has it.
pid_t dead_pid() {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    ::waitpid(pid, nullptr, 0);
    return pid;
}

}  // namespace

TEST(CertStore, CreatesThenReplacesThenLeavesAlone) {
    TempDir dir;
    CertStore store(dir.path());
    auto first = store.install("prod.crt", "one", default_owner);
    ASSERT_TRUE(first.ok()) << first.error();
    EXPECT_EQ(first->change, Change::created);
    EXPECT_EQ(read_file(dir / "prod.crt"), "one");

    auto second = store.install("prod.crt", "two", default_owner);
    ASSERT_TRUE(second.ok()) << second.error();
    EXPECT_EQ(second->change, Change::replaced);
    EXPECT_EQ(second->previous, "one");
    EXPECT_EQ(read_file(dir / "prod.crt"), "two");
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"prod.crt"}) << "no temp file remains";
}

TEST(CertStore, UnchangedBytesAreNotRewritten) {
    TempDir dir;
    CertStore store(dir.path());
    ASSERT_TRUE(store.install("prod.crt", "same", default_owner).ok());
    const timespec old_times[2] = {{1000000000, 0}, {1000000000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "prod.crt").c_str(), old_times, 0), 0);
    const auto before = stat_of(dir / "prod.crt");

    auto again = store.install("prod.crt", "same", default_owner);
    ASSERT_TRUE(again.ok()) << again.error();
    EXPECT_EQ(again->change, Change::unchanged);
    const auto after = stat_of(dir / "prod.crt");
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(after.st_mtim.tv_sec, 1000000000);
}

TEST(CertStore, AppliesTheModeWhateverTheUmask) {
    TempDir dir;
    CertStore store(dir.path());
    const mode_t old = ::umask(077);
    ASSERT_TRUE(store.install("a.crt", "x", FileOwnership{.mode = 0644}).ok());
    ASSERT_TRUE(store.install("b.crt", "x", FileOwnership{.mode = 0640}).ok());
    ::umask(old);
    EXPECT_EQ(stat_of(dir / "a.crt").st_mode & 07777, 0644u);
    EXPECT_EQ(stat_of(dir / "b.crt").st_mode & 07777, 0640u);
}

TEST(CertStore, ReplacesASymlinkWithoutWritingThroughIt) {
    TempDir dir, elsewhere;
    const auto victim = elsewhere.write("victim", "precious");
    std::filesystem::create_symlink(victim, dir / "prod.crt");
    CertStore store(dir.path());
    auto r = store.install("prod.crt", "new CA", default_owner);
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(read_file(victim), "precious");
    EXPECT_TRUE(S_ISREG(stat_of(dir / "prod.crt").st_mode));
    EXPECT_EQ(read_file(dir / "prod.crt"), "new CA");
}

TEST(CertStore, AFailedWriteKeepsTheOldFileAndNoTemp) {
    TempDir dir;
    CertStore store(dir.path());
    ASSERT_TRUE(store.install("prod.crt", "old good CA", default_owner).ok());

    // A file-size limit makes write(2) fail with EFBIG, as a full disk fails with ENOSPC.
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit saved{};
    ::getrlimit(RLIMIT_FSIZE, &saved);
    rlimit tiny{16, saved.rlim_max};
    ::setrlimit(RLIMIT_FSIZE, &tiny);
    auto r = store.install("prod.crt", std::string(4096, 'x'), default_owner);
    ::setrlimit(RLIMIT_FSIZE, &saved);

    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("write " + (dir / "prod.crt").string() + ": File too large"),
              std::string::npos)
        << r.error();
    EXPECT_EQ(read_file(dir / "prod.crt"), "old good CA");
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"prod.crt"});
}

TEST(CertStore, ADirectoryAtTheTargetIsAnError) {
    TempDir dir;
    std::filesystem::create_directory(dir / "prod.crt");
    CertStore store(dir.path());
    auto r = store.install("prod.crt", "x", default_owner);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("is a directory"), std::string::npos) << r.error();
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"prod.crt"});
}

TEST(CertStore, PrepareCreatesTheDirectoryAndRemovesOnlyStaleTemps) {
    TempDir dir;
    const auto certs = dir / "a/b/certs";
    CertStore store(certs);
    auto created = store.prepare();
    ASSERT_TRUE(created.ok()) << created.error();
    EXPECT_EQ(created.value(), 0);
    EXPECT_EQ(stat_of(certs).st_mode & 0755, 0755u);

    // Left by a process that is gone, an hour ago: stale.
    const auto gone = std::to_string(dead_pid());
    const auto stale = dir.write("a/b/certs/.prod.crt.tmp-" + gone + "-0-42", "half");
    std::filesystem::last_write_time(
        stale, std::filesystem::file_time_type::clock::now() - std::chrono::hours(1));
    std::ofstream(certs / "prod.crt") << "whole";
    std::ofstream(certs / ".keep") << "mine";
    std::vector<std::string> names;
    auto removed = store.prepare(&names);
    ASSERT_TRUE(removed.ok());
    EXPECT_EQ(removed.value(), 1);
    EXPECT_EQ(entries(certs), (std::vector<std::string>{".keep", "prod.crt"}));
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{".keep", "prod.crt"})) << "what remains";
}

TEST(CertStore, PrepareKeepsTempsOfInstallsThatMayBeInFlight) {
    // A reload prepares the directory while this process's installs run, and
    // a --once beside the daemon prepares it while the daemon's run.
    TempDir dir;
    CertStore store(dir.path());
    const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
    const auto ours = dir.write(".a.crt.tmp-" + std::to_string(::getpid()) + "-0-1", "mine");
    std::filesystem::last_write_time(ours, old);
    const auto running = dir.write(".b.crt.tmp-1-0-1", "pid 1 runs");
    std::filesystem::last_write_time(running, old);
    dir.write(".c.crt.tmp-" + std::to_string(dead_pid()) + "-0-1", "written just now");
    auto removed = store.prepare();
    ASSERT_TRUE(removed.ok());
    EXPECT_EQ(removed.value(), 0);
    EXPECT_EQ(entries(dir.path()).size(), 3u);
}

TEST(CertStore, PrepareLeavesAnExistingDirectorysModeAlone) {
    TempDir dir;
    const auto certs = dir / "certs";
    std::filesystem::create_directory(certs);
    std::filesystem::permissions(certs, std::filesystem::perms(0750));
    ASSERT_TRUE(CertStore(certs).prepare().ok());
    EXPECT_EQ(stat_of(certs).st_mode & 07777, 0750u);
}

TEST(CertStore, SameBytesStillRepairAGroupThatDrifted) {
    TempDir dir;
    CertStore store(dir.path());
    ASSERT_TRUE(store.install("prod.crt", "CA", default_owner).ok());
    const gid_t wanted = stat_of(dir / "prod.crt").st_gid;
    // Any other group this process may give its file to (as root: any).
    gid_t other = wanted == 0 ? 1 : 0;
    if (::chown((dir / "prod.crt").c_str(), static_cast<uid_t>(-1), other) != 0) {
        GTEST_SKIP() << "cannot change the file's group here";
    }
    auto r = store.install("prod.crt", "CA", FileOwnership{.mode = 0644, .gid = wanted});
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->change, Change::unchanged);
    EXPECT_EQ(stat_of(dir / "prod.crt").st_gid, wanted);
    FileMeta meta;
    ASSERT_TRUE(store.read("prod.crt", &meta).ok());
    EXPECT_TRUE(meta.matches(FileOwnership{.mode = 0644, .gid = wanted}));
    EXPECT_FALSE(meta.matches(FileOwnership{.mode = 0644, .gid = other}));
}

TEST(CertStore, PrepareFailsWhenTheDirectoryIsAFile) {
    TempDir dir;
    dir.write("certs", "not a dir");
    auto r = CertStore(dir / "certs").prepare();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("certs"), std::string::npos) << r.error();
}

TEST(CertStore, ReadReportsMissingAsEmpty) {
    TempDir dir;
    CertStore store(dir.path());
    auto missing = store.read("none.crt");
    ASSERT_TRUE(missing.ok());
    EXPECT_FALSE(missing.value().has_value());
    dir.write("x.crt", "bytes");
    EXPECT_EQ(store.read("x.crt").value(), "bytes");
}

TEST(CertStore, ReadUpToLeavesBiggerFilesUnread) {
    TempDir dir;
    CertStore store(dir.path());
    auto none = store.read_up_to("none.crt", 4);
    ASSERT_TRUE(none && none->ok());
    EXPECT_FALSE(none->value().has_value());
    dir.write("small.crt", "1234");
    FileMeta meta;
    auto small = store.read_up_to("small.crt", 4, &meta);
    ASSERT_TRUE(small && small->ok());
    EXPECT_EQ(small->value(), "1234");
    EXPECT_NE(meta.mode, 0u);
    EXPECT_EQ(meta.uid, ::geteuid());
    dir.write("big.crt", "12345");
    EXPECT_FALSE(store.read_up_to("big.crt", 4).has_value());
    EXPECT_EQ(store.read("big.crt").value(), "12345") << "read() has no limit";
    const std::string large(3 << 20, 'x');  // bigger than the first buffer
    dir.write("large.crt", large);
    EXPECT_EQ(store.read("large.crt").value(), large);
}

TEST(CertStore, InstallAllCommitsABatchAndReportsEachJob) {
    TempDir dir;
    CertStore store(dir.path());
    ASSERT_TRUE(store.install("same.crt", "unchanged", default_owner).ok());
    ASSERT_TRUE(store.install("old.crt", "before", default_owner).ok());
    std::filesystem::create_directory(dir / "blocked.crt");
    auto results = store.install_all({{"new.crt", "fresh", default_owner},
                                      {"same.crt", "unchanged", default_owner},
                                      {"blocked.crt", "x", default_owner},
                                      {"old.crt", "after", default_owner}});
    ASSERT_EQ(results.size(), 4u);
    EXPECT_EQ(results[0]->change, Change::created);
    EXPECT_EQ(results[1]->change, Change::unchanged);
    EXPECT_FALSE(results[2].ok()) << "one failure";
    EXPECT_EQ(results[3]->change, Change::replaced) << "does not spoil the others";
    EXPECT_EQ(results[3]->previous, "before");
    EXPECT_EQ(read_file(dir / "new.crt"), "fresh");
    EXPECT_EQ(read_file(dir / "old.crt"), "after");
    EXPECT_EQ(entries(dir.path()),
              (std::vector<std::string>{"blocked.crt", "new.crt", "old.crt", "same.crt"}))
        << "no temp file remains";
}

TEST(CertStore, RemoveIsDurableAndToleratesAbsence) {
    TempDir dir;
    CertStore store(dir.path());
    dir.write("state.json", "{}");
    EXPECT_TRUE(store.remove("state.json").value());
    EXPECT_FALSE(store.remove("state.json").value());
    EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(CertStore, NeverFollowsOrRemovesWhatIsPlantedAtATempPath) {
    TempDir dir, elsewhere;
    const auto victim = elsewhere.write("victim", "precious");
    const auto dangling = elsewhere.path() / "would-be-created";
    // Every name this store tries is planted: a symlink to a file, a
    // dangling symlink, a regular file.
    int calls = 0;
    CertStore store(dir.path(), [&calls](const std::string& name) {
        return "." + name + ".tmp-planted-" + std::to_string(calls++ % 3);
    });
    ASSERT_TRUE(CertStore::is_temp_name(".prod.crt.tmp-planted-0"));
    std::filesystem::create_symlink(victim, dir / ".prod.crt.tmp-planted-0");
    std::filesystem::create_symlink(dangling, dir / ".prod.crt.tmp-planted-1");
    std::ofstream(dir / ".prod.crt.tmp-planted-2") << "someone else's";

    auto r = store.install("prod.crt", "new CA", default_owner);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("File exists"), std::string::npos) << r.error();
    EXPECT_EQ(calls, 3) << "tries three names, then gives up";
    EXPECT_EQ(read_file(victim), "precious");
    EXPECT_FALSE(std::filesystem::exists(dangling));
    EXPECT_EQ(read_file(dir / ".prod.crt.tmp-planted-2"), "someone else's");
    EXPECT_TRUE(std::filesystem::is_symlink(dir / ".prod.crt.tmp-planted-0"))
        << "what it did not create, it does not remove";
    EXPECT_FALSE(std::filesystem::exists(dir / "prod.crt"));

    // A fresh name past the planted ones: installed, nothing planted touched.
    std::filesystem::remove(dir / ".prod.crt.tmp-planted-2");
    calls = 0;
    r = store.install("prod.crt", "new CA", default_owner);
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(read_file(dir / "prod.crt"), "new CA");
    EXPECT_EQ(read_file(victim), "precious");
    EXPECT_FALSE(std::filesystem::exists(dangling));
}
