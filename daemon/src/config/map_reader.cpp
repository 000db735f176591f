#include "rootcertd/config/map_reader.hpp"

namespace rootcertd::config_read {

[[noreturn]] void raise(const Site& s, const std::string& what) {
    std::ostringstream out;
    out << s.source;
    if (!s.mark.is_null()) out << ':' << s.mark.line + 1 << ':' << s.mark.column + 1;
    out << ": ";
    if (!s.key.empty()) out << s.key << ": ";
    out << what;
    throw ConfigError(out.str(), s.source, s.mark.is_null() ? 0 : s.mark.line + 1, s.key);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                                d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

std::filesystem::path resolve(const std::filesystem::path& base_dir, const std::string& p) {
    const std::filesystem::path path(p);
    return path.is_absolute() ? path : base_dir / path;
}

}  // namespace rootcertd::config_read
