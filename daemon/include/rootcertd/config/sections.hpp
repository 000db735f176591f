// The readers of the configuration's sections, one file each: api and
// credentials, an instance's source, the globals, discover and instances,
// outputs. config.cpp calls them in order.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "rootcertd/config/map_reader.hpp"
#include "rootcertd/config/values.hpp"

namespace rootcertd::config_read {

// `api`: the default origin, the token, trust, proxy, timeouts.
void read_api(const std::string& source, MapReader& top, const std::filesystem::path& base_dir,
              Config& cfg);
// `credentials`: named secrets, each from a file, a variable or a command.
void read_credentials(const std::string& source, MapReader& top,
                      const std::filesystem::path& base_dir, Config& cfg);
// KEY: a credential name that `credentials:` defines.
std::string credential_name(MapReader& m, const char* key, const Config& cfg);

// The request of Tembo instance INST (its org and id; its target is set);
// ORIGIN: its api_url, else api.url.
Source tembo_source(Instance& inst, const std::optional<Endpoint>& origin,
                    std::optional<std::string> credential, const Config& cfg,
                    const MapReader& where);
// The target of Tembo instance INST (its org and id).
std::string tembo_target(const Instance& inst);
// An instance's `source:`: a provider preset, or a custom url.
Source read_source(MapReader& m, const Config& cfg, const std::filesystem::path& base_dir,
                   Instance& inst);

// The top-level settings: directories, defaults for every instance, the
// scheduler's, metrics.
void read_globals(const std::string& source, MapReader& top, const std::filesystem::path& base_dir,
                  Config& cfg);

// One entry of `discover`.
Discovery read_discovery(const std::string& source, MapReader& m, const Config& cfg,
                         const std::filesystem::path& base_dir);
// What reading `instances` keeps from one entry to the next: equal Sources
// become one object, and the Source of the Tembo instances that inherit
// api.url (most of a fleet) is made once, not once per instance.
struct InstancesRead {
    SourcePool sources;
    std::optional<Shared<Source>> inherited_tembo;
};

// One entry of `instances`, with CFG's globals as its defaults; SEEN: the
// entries before it.
Instance read_instance(const std::string& source, MapReader& m, const Config& cfg,
                       const std::filesystem::path& base_dir, const NameLines& seen,
                       InstancesRead& read);

// One entry of `outputs`; TAKEN: instance and output names.
Output read_output(const std::string& source, MapReader& m, const Config& cfg,
                   const NameLines& taken);

}  // namespace rootcertd::config_read
