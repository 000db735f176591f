// Maintains rootcertd's block of a pg_service.conf, so `psql service=NAME` works.
#pragma once

#include <string>
#include <string_view>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

// One [name] section per instance with a host: host, port,
// sslmode=verify-full, sslrootcert=<its file>, and dbname/user when set,
// then KEPT (sections as they were), between BEGIN/END marker lines.
std::string render_service_block(const Config& config, std::string_view kept = {});

// The sections of EXISTING's managed block that CONFIG has no instance with
// a host for, as they are ("" without a well-formed block).
std::string sections_not_in(std::string_view existing, const Config& config);

// EXISTING with its managed block replaced by BLOCK (appended when absent).
// Everything outside the markers is preserved byte for byte. Fails when the
// marker lines are not exactly one BEGIN followed by one END (an orphan
// marker left by a hand edit): replacing from it would delete the user's
// sections, so the file must be mended by hand first.
Outcome<std::string> merge_service_block(std::string_view existing, std::string_view block);

// Brings PATH's managed block in step with CONFIG. The file is replaced
// atomically and durably, keeping its mode, owner and group (a new file is
// 0644); a symlink is followed and the file it names is replaced, the link
// kept. On any failure the file stays as it was. Returns whether it changed.
// KEEP_OTHERS: the block's sections of other instances stay (a discovery
// source has not listed since start: they may be its). Blocking.
Outcome<bool> update_service_file(const std::filesystem::path& path, const Config& config,
                                  bool keep_others = false);

}  // namespace rootcertd
