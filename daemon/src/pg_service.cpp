#include "rootcertd/pg_service.hpp"

namespace rootcertd {

namespace {
constexpr std::string_view begin_marker =
    "# BEGIN rootcertd managed block: edits between these lines are overwritten\n";
constexpr std::string_view end_marker = "# END rootcertd managed block\n";
}  // namespace

std::string render_service_block(const Config& config) {
    std::string out(begin_marker);
    for (const auto& inst : config.instances) {
        if (!inst.host) continue;
        out += "[" + inst.name + "]\n";
        out += "host=" + *inst.host + "\n";
        out += "port=" + std::to_string(inst.port) + "\n";
        out += "sslmode=verify-full\n";
        out += "sslrootcert=" + config.cert_path(inst).string() + "\n";
        if (inst.dbname) out += "dbname=" + *inst.dbname + "\n";
        if (inst.user) out += "user=" + *inst.user + "\n";
        out += "\n";
    }
    out += end_marker;
    return out;
}

std::string merge_service_block(std::string_view existing, std::string_view block) {
    const auto begin = existing.find(begin_marker);
    const auto end = begin == std::string_view::npos ? begin : existing.find(end_marker, begin);
    if (begin == std::string_view::npos || end == std::string_view::npos) {
        std::string out(existing);
        if (!out.empty() && out.back() != '\n') out += '\n';
        if (!out.empty()) out += '\n';
        return out + std::string(block);
    }
    return std::string(existing.substr(0, begin)) + std::string(block) +
           std::string(existing.substr(end + end_marker.size()));
}

}  // namespace rootcertd
