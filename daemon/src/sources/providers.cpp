#include "rootcertd/sources/providers.hpp"

#include <algorithm>
#include <cctype>

namespace rootcertd {

namespace {

Reading json(std::string pointer, std::string member = "", bool base64 = false) {
    Reading r;
    r.json_pointer = std::move(pointer);
    r.member = std::move(member);
    r.base64 = base64;
    r.format = CaFormat::pem;  // documented as PEM text
    return r;
}

Reading raw_pem(bool drop_leaves = false) {
    Reading r;
    r.format = CaFormat::pem;
    r.drop_leaves = drop_leaves;
    return r;
}

// "eu-west-1", "us-gov-west-1", "ap-southeast-2": AWS's region names.
bool is_aws_region(const std::string& s) {
    std::vector<std::string_view> parts;
    for (std::size_t at = 0; at <= s.size();) {
        const auto dash = std::min(s.find('-', at), s.size());
        parts.push_back(std::string_view(s).substr(at, dash - at));
        at = dash + 1;
    }
    const auto letters = [](std::string_view p) {
        return !p.empty() &&
               std::all_of(p.begin(), p.end(), [](char c) { return c >= 'a' && c <= 'z'; });
    };
    return parts.size() >= 3 && parts.front().size() == 2 && letters(parts.front()) &&
           std::all_of(parts.begin() + 1, parts.end() - 1, letters) && !parts.back().empty() &&
           std::all_of(parts.back().begin(), parts.back().end(),
                       [](char c) { return c >= '0' && c <= '9'; });
}

// rds: a region, or global.
std::optional<BadValue> check_rds(const PresetValues& values) {
    const auto& region = values.at("region");
    if (region == "global" || is_aws_region(region)) return std::nullopt;
    return BadValue{"region", "'" + region +
                                  "' is not an AWS region like eu-west-1 or us-gov-west-1, nor "
                                  "global"};
}

// ibmcloud: the endpoint type.
std::optional<BadValue> check_ibmcloud(const PresetValues& values) {
    const auto& type = values.at("endpoint_type");
    if (type == "public" || type == "private") return std::nullopt;
    return BadValue{"endpoint_type", "'" + type + "' is not public or private"};
}

// cloudsql: an instance name, not a connection name (project:region:instance;
// the project may hold a ':' itself, as domain-scoped ones do: example.com:proj).
std::optional<BadValue> check_cloudsql(const PresetValues& values) {
    const auto& instance = values.at("instance");
    if (instance.find(':') == std::string::npos) return std::nullopt;
    const auto last = instance.rfind(':');
    const auto region = instance.rfind(':', last - 1);
    return BadValue{"instance", "'" + instance + "' looks like a connection name" +
                                    (region == std::string::npos || region == 0
                                         ? std::string()
                                         : " (project:region:instance): write project: " +
                                               instance.substr(0, region) +
                                               " and instance: " + instance.substr(last + 1))};
}

// tembo: org and id as the Tembo API writes them.
std::optional<BadValue> check_tembo(const PresetValues& values) {
    for (const char* key : {"org", "id"}) {
        if (!is_id(values.at(key))) {
            return BadValue{key, "'" + values.at(key) + "' must match ^[A-Za-z0-9_]+$"};
        }
    }
    return std::nullopt;
}

}  // namespace

const std::vector<Preset>& presets() {
    static const std::vector<Preset> table{
        {"tembo",
         "",
         "/api/v1/orgs/{org}/instances/{id}/secrets/certificate",
         "Bearer",
         json("/ca.crt"),
         {},
         {},
         "Tembo data-plane API",
         {},
         {},
         {},
         {},
         check_tembo},
        {"aiven",
         "https://api.aiven.io",
         "/v1/project/{project}/kms/ca",
         "aivenv1",
         json("/certificate"),
         {},
         {},
         "Aiven API, ProjectKmsGetCA"},
        {"digitalocean",
         "https://api.digitalocean.com",
         "/v2/databases/{cluster}/ca",
         "Bearer",
         json("/ca/certificate", "", true),
         {},
         {},
         "DigitalOcean API, databases_get_ca"},
        {"cloudsql",
         "https://sqladmin.googleapis.com",
         "/v1/projects/{project}/instances/{instance}/listServerCas",
         "Bearer",
         json("/certs", "cert"),
         {},
         {},
         "Cloud SQL Admin API, instances.listServerCas; in a CAS server CA mode "
         "(listServerCas holds no CA), connect.get",
         {},
         {},
         "/v1/projects/{project}/instances/{instance}/connectSettings",
         json("/serverCaCert/cert"),
         check_cloudsql},
        {"crunchybridge",
         "https://api.crunchybridge.com",
         "/teams/{team}.pem",
         "Bearer",
         raw_pem(true),
         {},
         {},
         "Crunchy Bridge API, team certificate"},
        {"ubicloud",
         "https://api.ubicloud.com",
         "/project/{project}/location/{location}/postgres/{database}/ca-certificates",
         "Bearer",
         raw_pem(),
         {},
         {},
         "Ubicloud API, Download CA certificates for a PostgreSQL database"},
        {"ibmcloud",
         "https://api.{region}.databases.cloud.ibm.com",
         "/v4/ibm/deployments/{deployment}/users/{user}/connections/{endpoint_type}",
         "Bearer",
         json("/connection/postgres/certificate/certificate_base64", "", true),
         {},
         {},
         "IBM Cloud Databases API, getConnection",
         {{"user", "admin"}, {"endpoint_type", "public"}},
         {"deployment"},
         {},
         {},
         check_ibmcloud},
        {"rds",
         "https://truststore.pki.rds.amazonaws.com",
         "/{region}/{region}-bundle.pem",
         "",
         raw_pem(),
         {},
         {},
         "Amazon RDS certificate bundles",
         {},
         {},
         {},
         {},
         check_rds},
        {"azure",
         "",
         "",
         "",
         {},
         {"CN=DigiCert Global Root G2,OU=www.digicert.com,O=DigiCert Inc,C=US",
          "CN=Microsoft RSA Root Certificate Authority 2017,O=Microsoft Corporation,C=US"},
         // Still listed for China regions until their 2026 rotation.
         {"CN=DigiCert Global Root CA,OU=www.digicert.com,O=DigiCert Inc,C=US"},
         "Azure Database for PostgreSQL flexible server, TLS root CAs"},
    };
    return table;
}

const Preset* find_preset(std::string_view name) {
    const auto& all = presets();
    const auto it =
        std::find_if(all.begin(), all.end(), [&](const Preset& p) { return p.name == name; });
    return it == all.end() ? nullptr : &*it;
}

std::vector<std::string_view> path_keys(std::string_view path) {
    std::vector<std::string_view> keys;
    for (auto at = path.find('{'); at != std::string_view::npos; at = path.find('{', at + 1)) {
        const auto key = path.substr(at + 1, path.find('}', at) - at - 1);
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
    return keys;
}

std::string percent_encode(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += hex[u >> 4];
            out += hex[u & 15];
        }
    }
    return out;
}

}  // namespace rootcertd
