// Installs bundles under the cert directory atomically and durably.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

enum class Change { unchanged, created, replaced };

struct Installed {
    Change change = Change::unchanged;
    std::optional<std::string> previous;  // the bytes replaced, when there were any
};

// What a file's inode says about who may read and change it.
struct FileMeta {
    mode_t mode = 0;  // permission bits
    uid_t uid = 0;
    gid_t gid = 0;
    // Whether these are what OWNERSHIP asks for; an unset owner or group
    // asks for nothing.
    bool matches(const FileOwnership& ownership) const {
        return mode == ownership.mode && (!ownership.uid || *ownership.uid == uid) &&
               (!ownership.gid || *ownership.gid == gid);
    }
};

struct InstallJob {
    std::string file_name;
    std::string bytes;
    FileOwnership ownership;
};

// All calls block (install() fsyncs): run them off the event loop, except
// read_up_to(loop_read_limit) (see refresh). Safe to call from
// several threads at once for different file names.
class CertStore {
  public:
    // Names a temp file for FILE_NAME: unique per call, recognised by
    // is_temp_name(). The default is random; tests pass their own to plant
    // something at the exact path.
    using TempNamer = std::function<std::string(const std::string& file_name)>;
    static std::string random_temp_name(const std::string& file_name);

    explicit CertStore(std::filesystem::path dir, TempNamer namer = random_temp_name)
        : dir_(std::move(dir)), namer_(std::move(namer)) {}

    const std::filesystem::path& dir() const { return dir_; }

    // Creates the directory (0755) if missing; an existing one keeps its
    // mode. Removes the temp files that are provably stale (is_stale_temp).
    // Returns how many it removed; NAMES, when given, receives the names of
    // all other entries.
    Outcome<int> prepare(std::vector<std::string>* names = nullptr) const;

    // prepare() without creating the directory: removes the provably stale
    // temp files (a writer killed since start-up leaves some behind).
    Outcome<int> sweep(std::vector<std::string>* names = nullptr) const;

    // The current bytes of FILE_NAME, or nullopt when there is no such file.
    // META, when given, receives the file's mode, owner and group.
    Outcome<std::optional<std::string>> read(const std::string& file_name,
                                             FileMeta* meta = nullptr) const;

    // read(FILE_NAME), unless the file is bigger than LIMIT bytes: then
    // nullopt, and nothing read. One open and one fstat either way.
    std::optional<Outcome<std::optional<std::string>>> read_up_to(const std::string& file_name,
                                                                  std::size_t limit,
                                                                  FileMeta* meta = nullptr) const;

    // The most read_up_to() reads on the event loop: rootcertd's own bundles
    // are a few KiB; anything bigger is read on the blocking pool.
    static constexpr std::size_t loop_read_limit = 64 * 1024;

    // Makes FILE_NAME hold exactly BYTES. Equal bytes: nothing is written,
    // but a mode, owner or group that drifted from OWNERSHIP is repaired.
    // Otherwise: temp file in the same directory, write, chmod/chown, fsync,
    // rename over the target, fsync the directory. On any failure the old
    // file stays byte-for-byte and no temp file remains. A symlink at the
    // target is replaced, never written through; anything already at a temp
    // path is left alone and another name is tried.
    Outcome<Installed> install(const std::string& file_name, std::string_view bytes,
                               const FileOwnership& ownership) const;

    // install() for several files with one filesystem flush (group commit):
    // every changed file's temp is written, one syncfs() makes them all
    // durable, then each is renamed over its target and the directory is
    // fsynced once. Every file is as safe as with install(). Results follow
    // the order of JOBS; one job's failure does not affect the others.
    std::vector<Outcome<Installed>> install_all(const std::vector<InstallJob>& jobs) const;

    // Removes FILE_NAME durably; a missing file is not an error.
    Outcome<bool> remove(const std::string& file_name) const;

    // True for names install() uses for its temp files.
    static bool is_temp_name(std::string_view name);

    // Whether temp file NAME, last written at AGE ago, is left over: the
    // process named in it is not this one and no longer runs, and it was
    // written over a minute ago (a writer in another PID namespace, say a
    // --once in another container, finishes an install well within that).
    // A reload, or a --once beside the daemon, never removes an install in
    // flight.
    static bool is_stale_temp(std::string_view name, std::chrono::seconds age);

  private:
    std::filesystem::path dir_;
    TempNamer namer_;
};

}  // namespace rootcertd
