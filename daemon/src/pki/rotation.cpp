#include "rootcertd/pki/rotation.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace rootcertd {

namespace json = boost::json;

namespace {

bool contains(const CertBundle& b, const std::string& sha256) {
    return std::any_of(b.certs.begin(), b.certs.end(),
                       [&](const CertInfo& c) { return c.sha256 == sha256; });
}

std::int64_t to_seconds(SysTime t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

Composition compose(const RotationState& previous, const CertBundle& served, Duration keep_previous,
                    SysTime now) {
    Composition c;
    c.state.served = served.pem;
    const bool rotated = previous.served != served.pem;
    // Parsing X.509 is costly in OpenSSL 3: only a rotation needs the prior set.
    const auto prior = rotated ? parse_bundle(previous.served) : Outcome<CertBundle>(fail(""));

    auto still_kept = [&](const KeptCert& k) {
        return keep_previous.count() > 0 && k.until > now && !contains(served, k.sha256);
    };
    for (const auto& k : previous.kept) {
        if (still_kept(k)) {
            c.state.kept.push_back(k);
        } else if (!contains(served, k.sha256)) {
            c.dropped.push_back(k.sha256 + " (" + k.subject + ")");
        }
    }
    if (rotated && prior) {
        for (const auto& old : prior->certs) {
            if (contains(served, old.sha256)) continue;
            const bool already =
                std::any_of(c.state.kept.begin(), c.state.kept.end(),
                            [&](const KeptCert& k) { return k.sha256 == old.sha256; });
            KeptCert k{old.pem, old.sha256, old.subject,
                       std::min(now + std::chrono::ceil<std::chrono::seconds>(keep_previous),
                                old.not_after)};
            if (already) continue;
            if (still_kept(k)) {
                c.state.kept.push_back(std::move(k));
            } else {
                c.dropped.push_back(old.sha256 + " (" + old.subject + ")");
            }
        }
        for (const auto& cert : served.certs) {
            if (!prior->certs.empty() && !contains(*prior, cert.sha256)) c.added.push_back(cert);
        }
    } else if (rotated) {
        c.added = served.certs;
    }
    c.pem = served.pem;
    for (const auto& k : c.state.kept) c.pem += k.pem;
    c.kept = c.state.kept;
    return c;
}

std::string serialize_state(const RotationState& state) {
    json::array kept;
    for (const auto& k : state.kept) {
        kept.push_back(json::object{{"pem", k.pem},
                                    {"sha256", k.sha256},
                                    {"subject", k.subject},
                                    {"until", to_seconds(k.until)}});
    }
    return json::serialize(json::object{{"version", 1}, {"served", state.served}, {"kept", kept}}) +
           "\n";
}

Outcome<RotationState> parse_state(std::string_view text) {
    boost::system::error_code ec;
    const auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return fail("state is not a JSON object");
    const auto& o = v.get_object();
    const auto* served = o.if_contains("served");
    const auto* kept = o.if_contains("kept");
    if (!served || !served->is_string() || !kept || !kept->is_array()) {
        return fail("state lacks 'served' or 'kept'");
    }
    RotationState s;
    s.served = std::string(served->get_string());
    for (const auto& item : kept->get_array()) {
        const auto* k = item.if_object();
        if (!k) return fail("state has a malformed 'kept' entry");
        const auto* pem = k->if_contains("pem");
        const auto* sha = k->if_contains("sha256");
        const auto* subject = k->if_contains("subject");
        const auto* until = k->if_contains("until");
        // Anything past 9999-12-31T23:59:59Z is not a real time.
        constexpr std::int64_t max_until = 253402300799;
        if (!pem || !pem->is_string() || !sha || !sha->is_string() || !until ||
            !until->is_int64() || until->get_int64() < 0 || until->get_int64() > max_until) {
            return fail("state has a malformed 'kept' entry");
        }
        s.kept.push_back(
            KeptCert{std::string(pem->get_string()), std::string(sha->get_string()),
                     subject && subject->is_string() ? std::string(subject->get_string()) : "",
                     SysTime{std::chrono::seconds(until->get_int64())}});
    }
    return s;
}

}  // namespace rootcertd
