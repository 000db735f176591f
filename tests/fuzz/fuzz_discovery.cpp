// libFuzzer: any list body, read as each provider's list, yields instances
// with safe names and usable sources, or a reason; never a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "rootcertd/sources/discovery.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    rootcertd::Discovery d;
    static constexpr const char* providers[] = {"tembo", "cloudsql", "digitalocean"};
    d.provider = providers[data[0] % 3];
    d.scope = d.provider == "digitalocean" ? "" : "scope_1";
    d.list_api = rootcertd::parse_https_url("https://api.example").value();
    d.name_template = (data[0] & 0x10) != 0 ? "{instance_name}-{name}" : "{name}";
    d.data_plane = "https://api.{dataplane_index}.{region_id}.example";
    const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    auto page = rootcertd::parse_list_page(d, body);
    if (page) {
        for (const auto& inst : page->instances) {
            // Every name is a safe file stem; every target a path.
            if (inst.name.empty() || inst.name.size() > 200 ||
                inst.name.find('/') != std::string::npos ||
                inst.name.find("..") != std::string::npos || inst.target.empty() ||
                inst.target[0] != '/') {
                std::abort();
            }
        }
    }
    rootcertd::sanitise_name(body);
    return 0;
}
