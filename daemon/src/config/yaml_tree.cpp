#include "rootcertd/config/yaml_tree.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <boost/json/basic_parser_impl.hpp>
#include <limits>
#include <map>
#include <sstream>

namespace rootcertd {

YamlNode::Kind YamlNode::kind() const { return tree_->nodes_[index_].kind; }
std::string_view YamlNode::Scalar() const {
    const auto& n = tree_->nodes_[index_];
    if (n.kind != Kind::scalar) return {};
    return std::string_view(tree_->text_).substr(n.first, n.count);
}
YAML::Mark YamlNode::Mark() const {
    return tree_->has_marks_ ? tree_->marks_[index_] : YAML::Mark::null_mark();
}

std::size_t YamlNode::size() const {
    const auto& n = tree_->nodes_[index_];
    if (n.kind == Kind::map) return n.count / 2;
    return n.kind == Kind::sequence ? n.count : 0;
}

YamlNode YamlNode::child(std::size_t i) const {
    return {tree_, tree_->children_[tree_->nodes_[index_].first + i]};
}
YamlNode YamlNode::operator[](std::size_t i) const { return child(i); }
YamlNode YamlNode::key(std::size_t i) const { return child(2 * i); }
YamlNode YamlNode::value(std::size_t i) const { return child(2 * i + 1); }

// Appends each node as its events arrive. A finished node's index waits on
// `pending_` until its collection ends; the collection then moves the run of
// indices into the tree's child list, so no node allocates a list of its own.
class TreeBuilder final : public YAML::EventHandler {
  public:
    explicit TreeBuilder(YamlTree& tree) : tree_(tree) {}

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        finished(add(YamlNode::Kind::null, mark, {}), anchor);
    }
    void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override {
        // The anchored node itself, as YAML::Load makes it (an unknown anchor
        // is a parser error before it gets here).
        const auto it = anchors_.find(anchor);
        finished(it != anchors_.end() ? it->second
                                      : add(YamlNode::Kind::null, YAML::Mark::null_mark(), {}),
                 YAML::NullAnchor);
    }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  const std::string& value) override {
        finished(add(YamlNode::Kind::scalar, mark, value), anchor);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
        open(YamlNode::Kind::sequence, mark, anchor);
    }
    void OnSequenceEnd() override { close(); }
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value) override {
        open(YamlNode::Kind::map, mark, anchor);
    }
    void OnMapEnd() override { close(); }

  private:
    std::uint32_t add(YamlNode::Kind kind, const YAML::Mark& mark, std::string_view scalar) {
        tree_.nodes_.push_back({kind, static_cast<std::uint32_t>(tree_.text_.size()),
                                static_cast<std::uint32_t>(scalar.size())});
        tree_.text_.append(scalar);
        if (tree_.has_marks_) tree_.marks_.push_back(mark);
        return static_cast<std::uint32_t>(tree_.nodes_.size() - 1);
    }
    void finished(std::uint32_t index, YAML::anchor_t anchor) {
        if (anchor != YAML::NullAnchor) anchors_[anchor] = index;
        if (open_.empty()) {
            tree_.has_root_ = true;  // the root is node 0
        } else {
            pending_.push_back(index);
        }
    }
    void open(YamlNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
        const auto index = add(kind, mark, {});
        // Anchored before its items, so an alias inside it refers to it.
        if (anchor != YAML::NullAnchor) anchors_[anchor] = index;
        open_.push_back({index, pending_.size()});
    }
    void close() {
        const auto [index, from] = open_.back();
        open_.pop_back();
        auto& node = tree_.nodes_[index];
        node.first = static_cast<std::uint32_t>(tree_.children_.size());
        node.count = static_cast<std::uint32_t>(pending_.size() - from);
        tree_.children_.insert(tree_.children_.end(), pending_.begin() + from, pending_.end());
        pending_.resize(from);
        finished(index, YAML::NullAnchor);
    }

    struct Open {
        std::uint32_t index;
        std::size_t from;  // where its children start in pending_
    };
    YamlTree& tree_;
    std::vector<Open> open_;
    std::vector<std::uint32_t> pending_;
    std::map<YAML::anchor_t, std::uint32_t> anchors_;
};

namespace {

// Boost.JSON's parser events, replayed as the YAML events yaml-cpp gives for
// the same JSON text: every string and number is a scalar with its source
// text, `null` is a null node. The fuzzer checks that both agree.
class JsonEvents {
  public:
    static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_object_size = max_array_size;
    static constexpr std::size_t max_string_size = max_array_size;
    static constexpr std::size_t max_key_size = max_array_size;

    explicit JsonEvents(YamlTree& tree) : builder_(tree) {}

    bool on_document_begin(boost::json::error_code&) { return true; }
    bool on_document_end(boost::json::error_code&) { return true; }
    bool on_array_begin(boost::json::error_code&) {
        builder_.OnSequenceStart(none, "?", YAML::NullAnchor, YAML::EmitterStyle::Flow);
        return true;
    }
    bool on_array_end(std::size_t, boost::json::error_code&) {
        builder_.OnSequenceEnd();
        return true;
    }
    bool on_object_begin(boost::json::error_code&) {
        builder_.OnMapStart(none, "?", YAML::NullAnchor, YAML::EmitterStyle::Flow);
        return true;
    }
    bool on_object_end(std::size_t, boost::json::error_code&) {
        builder_.OnMapEnd();
        return true;
    }
    bool on_string_part(boost::json::string_view s, std::size_t, boost::json::error_code&) {
        text_.append(s.data(), s.size());
        return true;
    }
    bool on_string(boost::json::string_view s, std::size_t, boost::json::error_code&) {
        return scalar(s);
    }
    bool on_key_part(boost::json::string_view s, std::size_t n, boost::json::error_code& ec) {
        return on_string_part(s, n, ec);
    }
    bool on_key(boost::json::string_view s, std::size_t, boost::json::error_code&) {
        return scalar(s);
    }
    bool on_number_part(boost::json::string_view s, boost::json::error_code&) {
        text_.append(s.data(), s.size());
        return true;
    }
    bool on_int64(std::int64_t, boost::json::string_view s, boost::json::error_code&) {
        return scalar(s);
    }
    bool on_uint64(std::uint64_t, boost::json::string_view s, boost::json::error_code&) {
        return scalar(s);
    }
    bool on_double(double, boost::json::string_view s, boost::json::error_code&) {
        return scalar(s);
    }
    bool on_bool(bool b, boost::json::error_code&) { return scalar(b ? "true" : "false"); }
    bool on_null(boost::json::error_code&) {
        builder_.OnNull(none, YAML::NullAnchor);
        return true;
    }
    // Comments are not enabled: never called.
    bool on_comment_part(boost::json::string_view, boost::json::error_code&) { return true; }
    bool on_comment(boost::json::string_view, boost::json::error_code&) { return true; }

  private:
    bool scalar(boost::json::string_view last) {
        text_.append(last.data(), last.size());
        builder_.OnScalar(none, "?", YAML::NullAnchor, text_);
        text_.clear();
        return true;
    }

    static inline const YAML::Mark none = YAML::Mark::null_mark();
    TreeBuilder builder_;
    std::string text_;  // a string or number delivered in parts
};

// Worth trying as JSON: a collection where JSON and yaml-cpp cannot read
// different nodes. The fuzzer found two such texts: a \uD800-\uDFFF escape
// (JSON joins a surrogate pair into one character, yaml-cpp encodes each
// half) and a CR without an LF (white space to JSON; to yaml-cpp a line
// break, which it may keep in a scalar). Both keep the yaml-cpp path.
bool json_candidate(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos || (text[first] != '{' && text[first] != '[')) {
        return false;
    }
    for (auto cr = text.find('\r'); cr != std::string_view::npos; cr = text.find('\r', cr + 1)) {
        if (cr + 1 == text.size() || text[cr + 1] != '\n') return false;
    }
    for (auto at = text.find("\\u"); at != std::string_view::npos; at = text.find("\\u", at + 2)) {
        const auto hex = text.substr(at + 2, 2);
        if (hex.size() == 2 && (hex[0] == 'd' || hex[0] == 'D') &&
            std::string_view("89abcdefABCDEF").find(hex[1]) != std::string_view::npos) {
            return false;
        }
    }
    return true;
}

}  // namespace

YamlTree::YamlTree(std::string_view text, Marks marks) {
    text_.reserve(text.size());  // scalars are at most the text that holds them
    if (marks == Marks::optional && json_candidate(text)) {
        has_marks_ = false;
        boost::json::basic_parser<JsonEvents> parser(boost::json::parse_options{}, *this);
        boost::json::error_code ec;
        const auto used = parser.write_some(false, text.data(), text.size(), ec);
        if (!ec && used == text.size()) return;
        nodes_.clear();  // not JSON after all: read it as YAML, from nothing
        children_.clear();
        text_.clear();
        has_root_ = false;
        has_marks_ = true;
    }
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    TreeBuilder builder(*this);
    parser.HandleNextDocument(builder);
}

std::optional<YamlNode> YamlTree::root() const {
    if (!has_root_) return std::nullopt;
    return YamlNode(this, 0);
}

}  // namespace rootcertd
