#include "rootcertd/store/pg_service.hpp"

#include <sys/stat.h>

#include <set>

#include "rootcertd/store/cert_store.hpp"

namespace rootcertd {

namespace {
constexpr std::string_view begin_marker =
    "# BEGIN rootcertd managed block: edits between these lines are overwritten";
constexpr std::string_view end_marker = "# END rootcertd managed block";

// Where each marker line starts and where the line after it starts.
struct Marker {
    std::size_t begin, end;
};
}  // namespace

std::string render_service_block(const Config& config, std::string_view kept) {
    std::string out(begin_marker);
    out += "\n";
    for (const auto& inst : config.instances) {
        if (!inst.server) continue;
        const PgServer& server = *inst.server;
        out += "[" + inst.name + "]\n";
        out += "host=" + server.host + "\n";
        out += "port=" + std::to_string(inst.port) + "\n";
        out += "sslmode=verify-full\n";
        out += "sslrootcert=" + config.cert_path(inst).string() + "\n";
        if (server.dbname) out += "dbname=" + *server.dbname + "\n";
        if (server.user) out += "user=" + *server.user + "\n";
        out += "\n";
    }
    out += kept;
    out += end_marker;
    out += "\n";
    return out;
}

namespace {

// Where EXISTING's marker lines are.
void find_markers(std::string_view existing, std::vector<Marker>& begins,
                  std::vector<Marker>& ends) {
    for (std::size_t at = 0; at < existing.size();) {
        const auto eol = existing.find('\n', at);
        const auto next = eol == std::string_view::npos ? existing.size() : eol + 1;
        auto line = existing.substr(at, next - at);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
        if (line == begin_marker) begins.push_back({at, next});
        if (line == end_marker) ends.push_back({at, next});
        at = next;
    }
}

}  // namespace

std::string sections_not_in(std::string_view existing, const Config& config) {
    std::vector<Marker> begins, ends;
    find_markers(existing, begins, ends);
    if (begins.size() != 1 || ends.size() != 1 || ends[0].begin < begins[0].end) return "";
    const auto block = existing.substr(begins[0].end, ends[0].begin - begins[0].end);
    std::set<std::string_view> current;
    for (const auto& inst : config.instances) {
        if (inst.server) current.insert(inst.name);
    }
    std::string out;
    bool keep = false;
    for (std::size_t at = 0; at < block.size();) {
        const auto eol = block.find('\n', at);
        const auto next = eol == std::string_view::npos ? block.size() : eol + 1;
        const auto line = block.substr(at, next - at);
        if (line.starts_with('[')) {
            const auto name =
                line.substr(1, line.find(']') == std::string_view::npos ? 0 : line.find(']') - 1);
            keep = !name.empty() && !current.contains(name);
        }
        if (keep) out += line;
        at = next;
    }
    if (!out.empty() && out.back() != '\n') out += '\n';
    return out;
}

Outcome<std::string> merge_service_block(std::string_view existing, std::string_view block) {
    std::vector<Marker> begins, ends;
    find_markers(existing, begins, ends);
    if (begins.empty() && ends.empty()) {
        std::string out(existing);
        if (!out.empty() && out.back() != '\n') out += '\n';
        if (!out.empty()) out += '\n';
        return out + std::string(block);
    }
    if (begins.size() != 1 || ends.size() != 1 || ends[0].begin < begins[0].end) {
        return fail("its rootcertd marker lines are not one BEGIN followed by one END (" +
                    std::to_string(begins.size()) + " BEGIN, " + std::to_string(ends.size()) +
                    " END): left untouched; mend or remove the markers by hand");
    }
    return std::string(existing.substr(0, begins[0].begin)) + std::string(block) +
           std::string(existing.substr(ends[0].end));
}

Outcome<bool> update_service_file(const std::filesystem::path& path, const Config& config,
                                  bool keep_others) {
    // A symlink is followed deliberately: the file it names is the one
    // libpq reads, and replacing the link would orphan the user's sections.
    std::error_code ec;
    std::filesystem::path real = path;
    if (std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec))) {
        real = std::filesystem::canonical(path, ec);
        if (ec)
            return fail(path.string() + " is a symlink that cannot be followed: " + ec.message());
    }
    const CertStore dir(real.parent_path());
    const auto name = real.filename().string();
    FileMeta meta;
    auto existing = dir.read(name, &meta);
    if (!existing) return existing.failure();
    const std::string kept = keep_others ? sections_not_in(existing->value_or(""), config) : "";
    auto merged = merge_service_block(existing->value_or(""), render_service_block(config, kept));
    if (!merged) return merged.failure().prefixed(real.string() + ": ");
    // An existing file keeps its mode, owner and group: it may hold
    // passwords in sections of its own, and be private for that reason.
    const FileOwnership keep = existing->has_value() ? FileOwnership{meta.mode, meta.uid, meta.gid}
                                                     : FileOwnership{0644, {}, {}};
    auto done = dir.install(name, merged.value(), keep);
    if (!done) return done.failure();
    return done->change != Change::unchanged;
}

}  // namespace rootcertd
