#include "rootcertd/yaml_tree.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <map>
#include <sstream>

namespace rootcertd {

YamlNode::Kind YamlNode::kind() const { return tree_->nodes_[index_].kind; }
const std::string& YamlNode::Scalar() const { return tree_->nodes_[index_].scalar; }
YAML::Mark YamlNode::Mark() const { return tree_->nodes_[index_].mark; }

std::size_t YamlNode::size() const {
    const auto& n = tree_->nodes_[index_];
    return n.kind == Kind::map ? n.count / 2 : n.count;
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
    std::uint32_t add(YamlNode::Kind kind, const YAML::Mark& mark, const std::string& scalar) {
        tree_.nodes_.push_back({kind, mark, 0, 0, scalar});
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

YamlTree::YamlTree(std::string_view text) {
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
