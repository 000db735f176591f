// Maintains rootcertd's block of a pg_service.conf, so `psql service=NAME` works.
#pragma once

#include <string>
#include <string_view>

#include "rootcertd/config.hpp"

namespace rootcertd {

// One [name] section per instance with a host: host, port,
// sslmode=verify-full, sslrootcert=<its file>, and dbname/user when set,
// between BEGIN/END marker lines.
std::string render_service_block(const Config& config);

// EXISTING with its managed block replaced by BLOCK (appended when absent).
// Everything outside the markers is preserved byte for byte.
std::string merge_service_block(std::string_view existing, std::string_view block);

}  // namespace rootcertd
